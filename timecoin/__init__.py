"""
timecoin: a TIME Coin masternode node on Twisted.

The package is split into a pure core (``encoding``, ``keys``, ``address``,
``tx``, ``block``, ``genesis``, ``params``, ``rewards``), state that is fed by
the core (``chain``, ``mempool``, ``finality``), adapters to the outside world
(``storage``, ``rpc``, ``cli``), and the wiring in ``node`` and ``tap``.
"""

__version__ = "0.1.0"
