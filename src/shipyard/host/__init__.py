"""shipyard.host"""
