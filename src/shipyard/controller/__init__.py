"""The fleet controller, in layers: engine (pure rules), store (the database), server (the process)."""
