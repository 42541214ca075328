"""
Line framing of one connection: partial lines are buffered as chunks, so a
line of megabytes arriving in small reads costs linear, not quadratic,
time.  Imports nothing of the P2P layer.
"""

from __future__ import annotations


class LineBuffer:
    """
    The bytes of a connection not yet ending in the delimiter.

    @ivar buffered: how many bytes wait for their delimiter.
    """

    def __init__(self, delimiter: bytes = b"\n") -> None:
        self.delimiter = delimiter
        self.buffered = 0
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        """
        Add C{data}; return the lines it completes (without delimiters),
        keeping the rest.
        """
        self._chunks.append(data)
        if self.delimiter not in data:
            self.buffered += len(data)
            return []
        lines = b"".join(self._chunks).split(self.delimiter)
        rest = lines.pop()
        self._chunks = [rest] if rest else []
        self.buffered = len(rest)
        return lines

    def clear(self) -> bytes:
        """
        Forget the partial line; return it.
        """
        partial = b"".join(self._chunks)
        self._chunks = []
        self.buffered = 0
        return partial
