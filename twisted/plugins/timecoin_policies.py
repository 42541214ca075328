"""
The built-in block-producer selection policies, as Twisted plugins.
"""

from timecoin.selection import RoundRobin, StakeWeightedLottery

round_robin = RoundRobin()
stake_weighted = StakeWeightedLottery()
