"""
timecoin: a TIME Coin masternode node on Twisted.

The package is split into a pure core (``encoding``, ``keys``, ``address``,
``tx``, ``block``, ``genesis``, ``params``, ``rewards``), state that is fed by
the core (``chain``, ``mempool``, ``finality``), adapters to the outside world
(``storage``, ``rpc``, ``cli``), and the wiring in ``node``, ``wiring`` and
``tap``.  ``docs/architecture.md`` has the module map.

Imports go one way, down: the pure core imports nothing of timecoin but
itself; state (``chain``, ``mempool``, ``finality``, ``consensus``) imports
the core and ``storage``'s records; ``node`` imports state; the ``p2p``
package imports ``node`` and below; ``rpc``, ``metrics`` and ``notify``
read the node (and ``rpc`` the P2P service); only ``wiring`` and ``tap``
put a node together, and ``testing`` may import anything but nothing
imports it.  ``tests/test_architecture.py`` fails on any import cycle.
"""

__version__ = "0.1.0"
