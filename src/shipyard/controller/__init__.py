"""shipyard.controller"""
