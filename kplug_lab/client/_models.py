"""What the admin API answers, as small typed records, and the record of one call the client made."""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RPCError
from ._exceptions import ProtocolError, error_from_response

__all__ = ["CallHistory", "CallRecord", "LogEntry", "MethodStatus", "Notification", "PluginStatus"]


@dataclass(frozen=True)
class MethodStatus:
    name: str
    descriptions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PluginStatus:
    """One plugin as ``kplug.list`` / ``kplug.state`` report it."""

    name: str
    state: str
    state_code: int
    methods: list[MethodStatus] = field(default_factory=list)
    error: str | None = None
    version: str = ""
    display_name: str = ""
    hook_errors: list[str] = field(default_factory=list)  # lifecycle hooks that failed; the plugin went on
    kplug_only: list[str] = field(default_factory=list)  # kplug_lab's own globals it touched (absent in SiYuan)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PluginStatus:
        return cls(name=obj["name"], state=obj["state"], state_code=int(obj.get("stateCode", -1)),
                   methods=[MethodStatus(m["name"], list(m.get("descriptions") or []))
                            for m in obj.get("methods") or []],
                   error=obj.get("error"), version=obj.get("version") or "",
                   display_name=obj.get("displayName") or "",
                   hook_errors=list(obj.get("hookErrors") or []),
                   kplug_only=list(obj.get("kplugOnly") or []))


@dataclass(frozen=True)
class LogEntry:
    plugin: str
    level: str
    message: str
    time: float

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LogEntry:
        return cls(obj["plugin"], obj["level"], obj["message"], float(obj["time"]))


@dataclass(frozen=True)
class Notification:
    """A server-pushed JSON-RPC notification: a plugin's ``siyuan.rpc.broadcast``, or ``kplug.state``/``kplug.log``
    /``kplug.broadcast`` on the admin socket. ``params`` is ``None`` when the message had none."""

    method: str
    params: Any = None


@dataclass(frozen=True)
class CallRecord:
    """One request the client sent: where, what, how long it took and how it ended."""

    target: str  # "hello.echo" or "kplug.list"
    params: Any
    seconds: float
    ok: bool
    result: Any = None
    error: str | None = None
    error_type: str | None = None  # the exception's class name, when it failed


class CallHistory:
    """The last ``maxlen`` calls, newest last; thread-safe. ``listeners`` are told about each new record."""

    def __init__(self, maxlen: int = 50) -> None:
        self._records: deque[CallRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.listeners: list[Callable[[CallRecord], None]] = []

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)
        for listener in list(self.listeners):
            listener(record)

    def records(self) -> list[CallRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


_ids = itertools.count(1)


def next_id() -> int:
    return next(_ids)


_OMITTED: Any = object()


def make_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """JSON-RPC ``params``: positional arguments as an array, keyword arguments as one object (the plugin
    function then receives that object as its single argument); ``_OMITTED`` when there are none."""
    if args and kwargs:
        raise TypeError("give positional or keyword arguments, not both: JSON-RPC params is an array or an object")
    if kwargs:
        return kwargs
    if args:
        return list(args)
    return _OMITTED


def make_request(method: str, params: Any, id_: int | None) -> dict[str, Any]:
    req: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not _OMITTED:
        req["params"] = params
    if id_ is not None:
        req["id"] = id_
    return req


def dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"arguments must be JSON-compatible: {exc}") from None


def result_of(response: Any, target: str) -> Any:
    """The ``result`` of a single response, or raise the mapped error."""
    if not isinstance(response, dict) or response.get("jsonrpc") != "2.0":
        raise ProtocolError(f"{target}: the server answered something that is not a JSON-RPC response: "
                            f"{str(response)[:200]}")
    if "error" in response:
        raise error_from_response(response["error"], target)
    if "result" not in response:
        raise ProtocolError(f"{target}: JSON-RPC response without result or error: {str(response)[:200]}")
    return response["result"]


def outcome_of(response: Any, target: str) -> Any:
    """Like :func:`result_of`, but returns the error instead of raising it (for batches)."""
    try:
        return result_of(response, target)
    except (RPCError, ProtocolError) as exc:
        return exc


def record(target: str, params: Any, seconds: float, result: Any = None, error: BaseException | None = None
           ) -> CallRecord:
    return CallRecord(target=target, params=None if params is _OMITTED else params, seconds=seconds,
                      ok=error is None, result=result, error=None if error is None else str(error),
                      error_type=None if error is None else type(error).__name__)
