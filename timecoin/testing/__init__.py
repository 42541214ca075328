"""
Testing tools that ship with the node: the deterministic whole-network
simulator (L{timecoin.testing.simulation}) and the network-namespace
harness of real processes (L{timecoin.testing.netns}).  They may import
any part of the node; no node code imports them.
"""
