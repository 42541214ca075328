"""
A deterministic chain for the SQLite crash test, and the child process
that writes it.

Block C{h} is a pure function of C{h}: it creates L{OUTPUTS} outputs of
one transaction and spends a fixed pattern of the outputs of blocks
C{h - 1} and C{h - 2}, so the UTXO set after blocks C{0..h} is computable
by L{expected_utxos}.

Run as C{python -m tests.crashwriter PATH LIMIT}: open the SQLite store at
C{PATH}, print C{resumed H} with the first height it will write, then apply
blocks from there up to C{LIMIT - 1}, printing (and flushing) C{acked H}
after each apply's Deferred has fired.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from timecoin.storage import BlockChange
from timecoin.storage.sqlite import SqliteStore
from timecoin.tx import OutPoint, UtxoEntry

OUTPUTS = 12


def _digest(label: bytes, height: int) -> bytes:
    return hashlib.sha256(label + height.to_bytes(8, "big")).digest()


def block_hash(height: int) -> bytes:
    """
    The hash of the block at C{height}.
    """
    return _digest(b"crash-block", height)


def txid(height: int) -> bytes:
    """
    The txid of the only transaction of the block at C{height}.
    """
    return _digest(b"crash-tx", height)


def created(height: int) -> list[tuple[bytes, bytes]]:
    """
    The outputs the block at C{height} creates.
    """
    return [(OutPoint(txid(height), vout).key(),
             UtxoEntry(1000 * height + vout, f"tc1crash{height % 7}",
                       height, vout == 0).pack())
            for vout in range(OUTPUTS)]


def spent(height: int) -> list[bytes]:
    """
    The outpoints the block at C{height} spends: outputs of block
    C{h - 1} with C{(vout + h) % 3 == 0} and of block C{h - 2} with
    C{(vout + h) % 3 == 2}; these never overlap.
    """
    keys: list[bytes] = []
    for back, residue in ((1, 0), (2, 2)):
        if height >= back:
            keys.extend(OutPoint(txid(height - back), vout).key()
                        for vout in range(OUTPUTS)
                        if (vout + height) % 3 == residue)
    return keys


def change(height: int) -> BlockChange:
    """
    The L{BlockChange} connecting the block at C{height}.
    """
    return BlockChange(
        height=height, block_hash=block_hash(height),
        prev_hash=block_hash(height - 1) if height else b"\x00" * 32,
        block=_digest(b"crash-raw", height) * 64,
        undo=_digest(b"crash-undo", height),
        spent=spent(height), created=created(height), txids=[txid(height)])


def expected_utxos(tip: int) -> dict[bytes, bytes]:
    """
    The UTXO set after blocks C{0..tip}; raises if a block spends an
    output that is not unspent.
    """
    utxos: dict[bytes, bytes] = {}
    for height in range(tip + 1):
        for key in spent(height):
            del utxos[key]
        utxos.update(created(height))
    return utxos


def _result(d: defer.Deferred[Any]) -> Any:
    """
    The result of an already-fired Deferred; raise its failure.
    """
    out: list[Any] = []
    d.addBoth(out.append)
    if not out:
        raise RuntimeError("store returned an unfired Deferred")
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def main(path: str, limit: int) -> None:
    """
    Apply blocks to the store at C{path} from its tip up to C{limit - 1},
    acknowledging each on stdout once its Deferred fired.
    """
    store = SqliteStore(path)
    _result(store.open())
    tip = _result(store.tip())
    start = 0 if tip is None else tip[0] + 1
    sys.stdout.write(f"resumed {start}\n")
    sys.stdout.flush()

    def acked(_: None, height: int) -> None:
        sys.stdout.write(f"acked {height}\n")
        sys.stdout.flush()

    for height in range(start, limit):
        _result(store.apply_block(change(height)).addCallback(acked, height))
    _result(store.close())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
