"""
Log observers for ``twistd --logger``.

``twistd --logger timecoin.logs.json_observer timecoin ...`` writes every
event as one JSON object per line (twisted.logger's own format, with the
stable event fields each log call names) to standard output.
"""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver


def json_observer() -> ILogObserver:
    """
    A JSON-lines observer on standard output.
    """
    return jsonFileLogObserver(sys.stdout, recordSeparator="")
