"""`python -m shipyard` runs the `shipyard` command."""

from shipyard.cli.main import run

run()
