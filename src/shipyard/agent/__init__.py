"""shipyard.agent"""
