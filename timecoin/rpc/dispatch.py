"""
JSON-RPC over bytes: L{Dispatcher} parses a request body, runs its
requests (one, or a batch in order) against the method table, and
answers in each request's version (1.0 or 2.0) with Bitcoin Core's HTTP
status, without HTTP: L{timecoin.rpc.server} feeds it the bodies.

Imports the RPC's errors, codec, limits and deferred helpers, and the
node's error types it translates to RPC errors.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.address import AddressError
from timecoin.admission import NODE_BUSY
from timecoin.chain import TxInvalid
from timecoin.rpc.codec import dumps, error_body
from timecoin.rpc.deferreds import settle
from timecoin.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RPC_IN_WARMUP,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_VERIFY_REJECTED,
    RPCError,
)
from timecoin.rpc.limits import LONG_POLLS, TOO_MANY_WAITING, Refusals
from timecoin.rpc.settings import RPCSettings
from timecoin.wallet import WalletError

log = Logger()

MAX_BATCH = 1_000
"""Most requests one batch may hold."""
MAX_JSON_DEPTH = 128
"""Deepest nesting of arrays and objects a request body may have; deeper
is a parse error (Bitcoin Core's limit is 512: ours is lower so that an
echoed C{id} always encodes within Python's recursion limit)."""

_LEGACY = "1.0"
_V2 = "2.0"


class Dispatcher:
    """
    Runs JSON-RPC request bodies against a method table, with at most
    C{limits.max_waiting} long-polls at once (see L{timecoin.rpc.limits});
    positional and named params bind to each method's signature.

    @ivar counters: the dict that counts C{calls} and C{errors} (the
        server's, which counts its HTTP requests in it too).
    @ivar waiting: long-polls (L{LONG_POLLS}) running now.
    @ivar observe: called with C{(method, seconds)} as each call of a known
        method completes, successful or not (the RPC-latency metric).
    """

    def __init__(self, methods: dict[str, Callable[..., Any]],
                 counters: dict[str, int],
                 ready: Callable[[], bool] = lambda: True,
                 max_batch: int = MAX_BATCH,
                 observe: Callable[[str, float], None] | None = None,
                 limits: RPCSettings | None = None,
                 refusals: Refusals | None = None) -> None:
        self.methods = methods
        self.counters = counters
        self.ready = ready
        self.max_batch = max_batch
        self.observe = observe
        self.limits = limits if limits is not None else RPCSettings()
        self.refusals = refusals
        self.waiting = 0
        self._signatures: dict[str, tuple[
            Callable[..., Any], inspect.Signature,
            tuple[int, int] | None]] = {}

    def handle_body(self, body: bytes) -> defer.Deferred[Any]:
        """
        Run a request body; fire with C{(HTTP status, response body or
        None)}.
        """
        return defer.maybeDeferred(self.run, body)

    def run(self, body: bytes, error_member: bool = False) -> Any:
        """
        L{handle_body}'s work: its outcome at once when no method had to
        wait (the common case), else a Deferred of it.  With
        C{error_member} (a client known to read C{"error"} in every
        reply: L{timecoin.rpc.server.LEGACY_REPLY_AGENTS}) 2.0 replies of
        a batch carry C{"error": null} on success.
        """
        try:
            payload = parse_body(body)
        except (ValueError, RecursionError, ArithmeticError):
            # ArithmeticError: decimal.InvalidOperation for a number whose
            # exponent Decimal cannot hold (1e99999999999999999999).
            return 500, error_body(PARSE_ERROR, "Parse error")
        if _too_deep(body, payload):
            return 500, error_body(PARSE_ERROR, f"Parse error: nested "
                                   f"deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(payload, list):
            if not payload:
                return 400, error_body(INVALID_REQUEST, "Empty batch")
            if len(payload) > self.max_batch:
                return 400, error_body(
                    INVALID_REQUEST, f"Batch of {len(payload)} requests "
                    f"exceeds {self.max_batch}")
            return self._run_batch(payload, 0, [], error_member)
        reply = self._call(payload)
        if isinstance(reply, defer.Deferred):
            return reply.addCallback(_single_outcome)
        return _single_outcome(reply)

    def _run_batch(self, items: list[Any], start: int,
                   replies: list[Any], error_member: bool = False) -> Any:
        """
        Run C{items[start:]} in order, adding their replies to
        C{replies}; the batch's outcome, or a Deferred of it from the
        first call that waits.
        """
        call = self._call
        for index in range(start, len(items)):
            reply = call(items[index])
            if isinstance(reply, defer.Deferred):
                return reply.addCallback(self._batch_resumed, items, index,
                                         replies, error_member)
            if reply is not None:
                replies.append(reply)
        if not replies:
            return 204, None
        if error_member:
            for reply in replies:
                reply.setdefault("error", None)
        return 200, dumps(replies)

    def _batch_resumed(self, reply: Any, items: list[Any], index: int,
                       replies: list[Any], error_member: bool) -> Any:
        if reply is not None:
            replies.append(reply)
        return self._run_batch(items, index + 1, replies, error_member)

    def call(self, obj: Any) -> defer.Deferred[Any]:
        """
        Run one request object; fire with its response object, or C{None}
        for a notification.
        """
        return defer.maybeDeferred(self._call, obj)

    def _call(self, obj: Any) -> Any:
        """
        L{call}'s work: the response object (or C{None}) at once, or a
        Deferred of it when the method waits.
        """
        if not isinstance(obj, dict):
            return _reply(_LEGACY, None, error=(
                INVALID_REQUEST, "Invalid Request object"))
        version = _LEGACY
        if "jsonrpc" in obj:
            if obj["jsonrpc"] == _V2:
                version = _V2
            elif obj["jsonrpc"] != _LEGACY:
                return _reply(_LEGACY, obj.get("id"), error=(
                    INVALID_REQUEST, "JSON-RPC version not supported"))
        request_id = obj.get("id")
        notification = version == _V2 and "id" not in obj
        try:
            result = self._dispatch(obj)
        except RPCError as e:
            reply = self._error_reply(e, obj, version, request_id)
        else:
            if isinstance(result, defer.Deferred):
                return result.addCallbacks(
                    self._result_reply, self._failed_reply,
                    (version, request_id, notification),
                    errbackArgs=(obj, version, request_id, notification))
            reply = _reply(version, request_id, result=result)
        return None if notification else reply

    @staticmethod
    def _result_reply(result: Any, version: str, request_id: Any,
                      notification: bool) -> Any:
        return None if notification else _reply(version, request_id,
                                                 result=result)

    def _failed_reply(self, failure: Failure, obj: dict[str, Any],
                      version: str, request_id: Any,
                      notification: bool) -> Any:
        failure.trap(RPCError)
        error = failure.value
        assert isinstance(error, RPCError)
        reply = self._error_reply(error, obj, version, request_id)
        return None if notification else reply

    def _error_reply(self, e: RPCError, obj: dict[str, Any], version: str,
                     request_id: Any) -> dict[str, Any]:
        self.counters["errors"] += 1
        if not e.message.startswith(NODE_BUSY):
            # Busy refusals come by the thousand under overload: the node
            # counts them and logs when it turns busy (Admission.check).
            log.debug("RPC {method} failed: {code} {message}",
                      method=loggable(obj.get("method")), code=e.code,
                      message=loggable(e.message))
        return _reply(version, request_id, error=(e.code, e.message))

    def _bind(self, method: str, function: Callable[..., Any],
              args: list[Any], kwargs: dict[str, Any]) -> tuple[
                  tuple[Any, ...], dict[str, Any]]:
        """
        The arguments to call C{function} with, checked against its
        signature (computed once per method).

        @raise RPCError: C{INVALID_PARAMS} if they do not fit.
        """
        cached = self._signatures.get(method)
        if cached is None or cached[0] != function:
            signature = inspect.signature(function)
            kinds = {p.kind for p in signature.parameters.values()}
            simple: tuple[int, int] | None = None
            if kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD}:
                values = signature.parameters.values()
                simple = (sum(p.default is inspect.Parameter.empty
                              for p in values), len(values))
            cached = self._signatures[method] = (function, signature, simple)
        _, signature, simple = cached
        if simple is not None and not kwargs and \
                simple[0] <= len(args) <= simple[1]:
            # What bind() would accept, without its cost.
            return tuple(args), {}
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            raise RPCError(INVALID_PARAMS, f"Invalid params for {method}: "
                           f"{e}") from None
        return bound.args, bound.kwargs

    def _dispatch(self, obj: dict[str, Any]) -> Any:  # noqa: C901
        """
        Run the method C{obj} calls: its result at once, or a Deferred of
        it when the method waits.

        @raise RPCError: what the reply's error is (at once or, for a
            method that waits, as the Deferred's failure).
        """
        method = obj.get("method")
        if not isinstance(method, str):
            raise RPCError(INVALID_REQUEST, "Method must be a string")
        raw = obj.get("params")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if isinstance(raw, list):
            args = raw
        elif isinstance(raw, dict):
            kwargs = raw
        elif raw is not None:
            raise RPCError(INVALID_REQUEST, "Params must be an array or "
                           "object")
        function = self.methods.get(method)
        if function is None:
            raise RPCError(METHOD_NOT_FOUND, "Method not found")
        if not getattr(function, "any_time", False) and not self.ready():
            raise RPCError(RPC_IN_WARMUP, "The node is still starting")
        call_args, call_kwargs = self._bind(method, function, args, kwargs)
        long_poll = method in LONG_POLLS
        if long_poll:
            limit = self.limits.max_waiting
            if limit and self.waiting >= limit:
                if self.refusals is not None:
                    self.refusals.refused("too-many-waiting", "-",
                                          method=method)
                raise RPCError(TOO_MANY_WAITING, f"Too many waiting calls: "
                               f"{self.waiting} long-polls are running, the "
                               f"limit ([rpc] max_waiting); retry later")
            self.waiting += 1
        self.counters["calls"] += 1
        started = time.monotonic()
        try:
            result = function(*call_args, **call_kwargs)
            if isinstance(result, defer.Deferred):
                result = settle(result)
        except Exception:
            result = Failure()
        if isinstance(result, defer.Deferred):
            if long_poll:
                result.addBoth(self._wait_over)
            return result.addBoth(self._finished, method, started)
        if long_poll:
            self.waiting -= 1
        return self._finished(result, method, started)

    def _wait_over(self, result: Any) -> Any:
        """
        A long-poll ended (answered, failed or cancelled).
        """
        self.waiting -= 1
        return result

    def _finished(self, result: Any, method: str, started: float) -> Any:
        """
        Record the call's latency; translate a failure into the
        L{RPCError} to answer (raised).
        """
        if self.observe is not None:
            self.observe(method, time.monotonic() - started)
        if not isinstance(result, Failure):
            return result
        error = result.value
        if isinstance(error, RPCError):
            raise error
        if isinstance(error, WalletError):
            raise RPCError(error.code, str(error))
        if isinstance(error, TxInvalid):
            raise RPCError(RPC_VERIFY_REJECTED, str(error))
        if isinstance(error, AddressError):
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           f"Invalid address: {error}")
        if isinstance(error, defer.CancelledError):
            result.raiseException()
        log.failure("RPC method {method} failed", result, method=method)
        raise RPCError(INTERNAL_ERROR, "Internal error")


def _single_outcome(reply: Any) -> tuple[int, bytes | None]:
    if reply is None:
        return 204, None
    return _status_of(reply), dumps(reply)


def _too_deep(body: bytes, payload: Any) -> bool:
    """
    Whether C{payload} (parsed from C{body}) nests arrays and objects
    deeper than L{MAX_JSON_DEPTH}; walked level by level, without
    recursion, and only when C{body} has enough brackets to be.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH \
            or not isinstance(payload, (list, dict)):
        return False
    level = [payload]
    for _ in range(MAX_JSON_DEPTH):
        inner: list[Any] = []
        for value in level:
            items = value.values() if isinstance(value, dict) else value
            inner.extend(v for v in items if isinstance(v, (list, dict)))
        if not inner:
            return False
        level = inner
    return True


def loggable(text: Any) -> str:
    """
    A client-supplied value made safe for a log line: printable ASCII
    (escapes for control characters, lone surrogates and the like, so
    nothing can forge a line or break a UTF-8 log file), at most 200
    characters.
    """
    if isinstance(text, str) and text.isascii() and text.isprintable():
        return text[:200]
    return ascii(text)[:200]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_FAST_BODY = msgspec.json.Decoder(float_hook=Decimal)
"""msgspec's decoder with numbers that have a fraction or an exponent as
C{Decimal}, as L{parse_body}'s reference parses them."""


def parse_body(body: bytes) -> Any:
    """
    The JSON of a request body, numbers with a fraction or an exponent as
    C{Decimal}: what C{json.loads(body, parse_float=Decimal)} returns and
    raises (C{ValueError}, C{RecursionError}, C{ArithmeticError}), NaN
    and infinities refused.  msgspec parses it (about three times faster);
    whatever it refuses (other encodings, a byte-order mark, escaped lone
    surrogates, bad JSON) is parsed again by C{json.loads}, which returns
    or raises what it always did.
    """
    try:
        return _FAST_BODY.decode(body)
    except (ValueError, RecursionError, ArithmeticError):
        return json.loads(body, parse_float=Decimal,
                          parse_constant=_refuse_constant)


def _reply(version: str, request_id: Any, result: Any = None,
           error: tuple[int, str] | None = None) -> dict[str, Any]:
    err = None if error is None else {"code": error[0], "message": error[1]}
    if version == _V2:
        reply: dict[str, Any] = {"jsonrpc": _V2}
        if err is None:
            reply["result"] = result
        else:
            reply["error"] = err
        reply["id"] = request_id
        return reply
    return {"result": result if err is None else None, "error": err,
            "id": request_id}


def _status_of(reply: dict[str, Any]) -> int:
    """
    The HTTP status of a single reply, as Bitcoin Core sets it.
    """
    error = reply.get("error")
    if "jsonrpc" in reply or error is None:
        return 200
    return {INVALID_REQUEST: 400, METHOD_NOT_FOUND: 404}.get(
        error["code"], 500)
