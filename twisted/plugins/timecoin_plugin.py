"""
The ``twistd timecoin`` plugin.
"""

from twisted.application.service import ServiceMaker

timecoin = ServiceMaker("timecoin", "timecoin.tap",
                        "A TIME Coin masternode node", "timecoin")
