"""`python -m shipyard` runs the `shipyard` command."""

from shipyard.cli.entry import run

run()
