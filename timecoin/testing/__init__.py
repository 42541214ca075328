"""
Testing tools that ship with the node: the deterministic whole-network
simulator (L{timecoin.testing.simulation}).
"""
