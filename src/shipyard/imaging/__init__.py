"""shipyard.imaging"""
