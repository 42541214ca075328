"""
Testing tools that ship with the node: the deterministic whole-network
simulator (L{timecoin.testing.simulation}), the network-namespace
harness of real processes (L{timecoin.testing.netns}), and the one
fixture of whole in-process nodes on a fake network
(L{timecoin.testing.cluster}).  They may import any part of the node;
no node code imports them.
"""
