"""Request and response bodies of the controller API, shared by the server and the client."""
