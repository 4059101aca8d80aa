"""shipyard: zero-downtime micro blue-green deploys of Docker images behind each host's haproxy."""

__version__ = "0.1.0"
