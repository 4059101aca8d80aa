"""shipyard.domain"""
