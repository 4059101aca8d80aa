"""The controller's persistence: the database, its tables and migrations, and the operations on them."""
