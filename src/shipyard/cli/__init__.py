"""shipyard.cli"""
