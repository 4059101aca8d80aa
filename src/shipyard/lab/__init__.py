"""shipyard.lab"""
