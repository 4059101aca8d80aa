"""What a host needs to talk to the fleet controller: the HTTP clients, the API's bodies, URL and TLS rules.

Imported by the agent and the CLI, and by the controller for the shared bodies; it imports nothing of the
controller itself, so a host installs neither the web server nor the database drivers.
"""
