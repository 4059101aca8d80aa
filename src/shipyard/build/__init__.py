"""shipyard.build"""
