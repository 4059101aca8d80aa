"""shipyard.adapters"""
