"""
The L{IChainStore} contract run against L{MemoryStore}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.storecontract import ChainStoreContractMixin
from timecoin.storage.memory import MemoryStore


class MemoryStoreContractTests(ChainStoreContractMixin, unittest.TestCase):
    """
    L{MemoryStore} meets the chain store contract.
    """

    def make_store(self) -> defer.Deferred[Any]:
        """
        Fire with an opened L{MemoryStore}, closed at cleanup.
        """
        store = MemoryStore()
        self.addCleanup(store.close)
        return store.open().addCallback(lambda _: store)
