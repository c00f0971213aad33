"""What the sync and async clients share, everything but the I/O: URLs and headers, request building, status
and response decoding, the mapping of transport failures to our errors, batch bookkeeping, call history, and a
WebSocket's routing of answers and notifications. ``_sync`` and ``_async`` add only the sending and waiting."""

from __future__ import annotations

import abc
import contextlib
import json
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from ._exceptions import AuthenticationFailed, ConnectionFailed, ProtocolError, ResponseTimeout
from ._models import (
    _OMITTED,
    CallHistory,
    Notification,
    dumps,
    make_params,
    make_request,
    next_id,
    outcome_of,
    record,
    result_of,
)

if TYPE_CHECKING:
    import websockets.exceptions
    import websockets.frames

__all__ = ["BaseBatch", "BaseClient", "BaseSocket", "BatchEntries", "Endpoint", "recorded_call",
           "result_of_error"]


class Endpoint:
    """Where a kplug_lab server lives: ``url`` (ending in ``/``, any base_url included) and its token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"kplug_lab URL must look like http://127.0.0.1:8765/ (with any base_url), got {url!r}")
        self.url = url if url.endswith("/") else url + "/"
        self.token = token or None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"} if self.token else {}

    def plugin_path(self, plugin: str) -> str:
        if not plugin:
            raise ValueError("plugin name must not be empty")
        return "api/plugin/rpc/" + quote(plugin, safe="")

    admin_path = "kplug/api/rpc"

    def ws_url(self, path: str) -> str:
        return "ws" + self.url[len("http"):] + path

    def ws_plugin_url(self, plugin: str) -> str:
        return self.ws_url("ws/plugin/rpc/" + quote(plugin, safe=""))

    def ws_admin_url(self) -> str:
        return self.ws_url("kplug/api/ws")

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r})"


def check_status(status: int, body: bytes, target: str, url: str) -> Any:
    """The decoded JSON body of an HTTP answer, ``None`` for 204; raise for statuses without a JSON-RPC body."""
    if status == 204:
        return None
    if status == 401:
        raise AuthenticationFailed(f"{target}: the server at {url} refused the token (HTTP 401); "
                                   "check the token given to %kplug connect or KPLUG_LAB_TOKEN", status)
    if status == 403:
        raise AuthenticationFailed(f"{target}: this token may not use that route (HTTP 403): the admin API needs "
                                   "the admin token, not the call-only one", status)
    try:
        return json.loads(body)
    except ValueError:
        raise ProtocolError(f"{target}: HTTP {status} from {url} with a body that is not JSON: "
                            f"{body[:200].decode('utf-8', 'replace')!r}") from None


class BatchEntries:
    """Requests collected for one batch, and how to read the answers back in request order."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.requests: list[dict[str, Any]] = []
        self.ids: list[int] = []
        self.targets: list[str] = []

    def add(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], notify: bool) -> None:
        id_ = None if notify else next_id()
        self.requests.append(make_request(method, make_params(args, kwargs), id_))
        if id_ is not None:
            self.ids.append(id_)
            self.targets.append(f"{self.prefix}.{method}" if self.prefix else method)

    def outcomes(self, answer: Any) -> list[Any]:
        """One result (or RPCError instance) per call, in the order the calls were added."""
        if answer is None:
            answer = []
        if isinstance(answer, dict):  # the whole batch was refused (e.g. too large): every call failed alike
            return [outcome_of(answer, t) for t in self.targets]
        if not isinstance(answer, list):
            raise ProtocolError(f"{self.prefix}: batch answer is not a JSON array: {str(answer)[:200]}")
        by_id = {r.get("id"): r for r in answer if isinstance(r, dict)}
        out = []
        for id_, target in zip(self.ids, self.targets, strict=True):
            r = by_id.get(id_)
            out.append(outcome_of(r, target) if r is not None else
                       ProtocolError(f"{target}: the batch answer has no response with id {id_}"))
        return out

    @property
    def params_omitted(self) -> Any:
        return _OMITTED


class BaseBatch:
    """Collects calls and notifications for one JSON-RPC batch; a subclass sends them (blocking or awaited)."""

    def __init__(self, prefix: str, send: Callable[[list[dict[str, Any]]], Any]) -> None:
        self._entries = BatchEntries(prefix)
        self._send = send

    def call(self, method: str, *args: Any, **kwargs: Any) -> Self:
        self._entries.add(method, args, kwargs, notify=False)
        return self

    def notify(self, method: str, *args: Any, **kwargs: Any) -> Self:
        self._entries.add(method, args, kwargs, notify=True)
        return self

    def _requests(self) -> list[dict[str, Any]]:
        if not self._entries.requests:
            raise ValueError("an empty batch cannot be sent (JSON-RPC rejects an empty array)")
        return self._entries.requests


@dataclass
class CallOutcome:
    """What :func:`recorded_call` writes into the history when the call returns."""

    result: Any = None


@contextlib.contextmanager
def recorded_call(history: CallHistory, target: str, params: Any) -> Iterator[CallOutcome]:
    """Time the call made in the ``with`` block and add its record to ``history``, whether it returns (with
    the ``result`` set on the yielded outcome) or raises."""
    outcome = CallOutcome()
    started = time.perf_counter()
    try:
        yield outcome
    except Exception as exc:
        history.add(record(target, params, time.perf_counter() - started, error=exc))
        raise
    history.add(record(target, params, time.perf_counter() - started, outcome.result))


JSON_CONTENT = {"Content-Type": "application/json"}


class BaseClient:
    """A client's endpoint, timeout and history, how it builds requests and reads answers; a subclass owns the
    HTTP connection pool and does the posting."""

    def __init__(self, url: str, token: str | None, *, timeout: float, history: CallHistory | None) -> None:
        self.endpoint = Endpoint(url, token)
        self.timeout = timeout
        self.history = history if history is not None else CallHistory()

    @property
    def url(self) -> str:
        return self.endpoint.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @staticmethod
    def _body(payload: Any) -> bytes:
        return dumps(payload).encode()

    def _transport_error(self, exc: httpx.TransportError, target: str) -> Exception:
        if isinstance(exc, httpx.TimeoutException):
            return ResponseTimeout(f"{target}: no answer from {self.url} within {self.timeout} s")
        return ConnectionFailed(f"{target}: cannot reach kplug_lab at {self.url} ({exc}); is the server running?")

    def _answer(self, response: httpx.Response, target: str) -> Any:
        return check_status(response.status_code, response.content, target, self.url)


def result_of_error(answer: Any, target: str, uri: str) -> Exception:
    """The error for a refused WebSocket handshake whose body is a JSON-RPC error (plugin not loaded/running)."""
    try:
        result_of(answer, target)
    except Exception as exc:
        return exc
    return ProtocolError(f"{target}: the server refused the WebSocket at {uri}")


class _Settable(Protocol):
    def done(self) -> bool: ...

    def set_result(self, result: Any, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


FutureT = TypeVar("FutureT", bound=_Settable)


class BaseSocket(abc.ABC, Generic[FutureT]):
    """A JSON-RPC WebSocket without its I/O: answers are matched to calls by id (they may arrive out of order),
    notifications go to a queue (``_deliver``) and to callbacks. A subclass reads, sends and waits."""

    def __init__(self, prefix: str, timeout: float, history: CallHistory) -> None:
        self.prefix = prefix
        self.timeout = timeout
        self.history = history
        self._pending: dict[Any, FutureT] = {}
        self._lock = threading.Lock()  # the sync socket's reader thread and callers share _pending
        self._callbacks: list[Callable[[Notification], None]] = []
        self._closed_reason: str | None = None

    @abc.abstractmethod
    def _new_future(self) -> FutureT: ...

    @abc.abstractmethod
    def _deliver(self, note: Notification) -> None:
        """Queue ``note`` for ``next_notification``/``notifications``."""

    def _target(self, method: str) -> str:
        return f"{self.prefix}.{method}" if self.prefix else method

    def _refused(self, exc: websockets.exceptions.InvalidStatus, uri: str) -> Exception:
        """The error for a handshake the server answered with an HTTP error status."""
        target = self.prefix or "kplug"
        answer = check_status(exc.response.status_code, bytes(exc.response.body or b""), target, uri)
        return result_of_error(answer, target, uri)

    @staticmethod
    def _unreachable(uri: str, exc: Exception) -> ConnectionFailed:
        return ConnectionFailed(f"cannot open a WebSocket to {uri} ({exc}); is the server running?")

    @staticmethod
    def _closed_by_server(close: websockets.frames.Close | None) -> str:
        """Why the socket ended when the server closed it cleanly, with the close code and reason it sent."""
        if close is None:
            return "the server closed the WebSocket"
        if close.reason:
            return f"the server closed the WebSocket (code {close.code}): {close.reason}"
        return f"the server closed the WebSocket (code {close.code})"

    @staticmethod
    def _send_failed(target: str, exc: Exception) -> ConnectionFailed:
        return ConnectionFailed(f"{target}: the WebSocket is closed ({exc})")

    def _no_answer(self, target: str) -> ResponseTimeout:
        return ResponseTimeout(f"{target}: no answer within {self.timeout} s")

    def _receive(self, message: str | bytes) -> None:
        try:
            obj = json.loads(message)
        except ValueError:
            return
        self._dispatch(obj)

    def _dispatch(self, obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                self._dispatch(item)
            return
        if not isinstance(obj, dict):
            return
        if "method" in obj and "id" not in obj:
            note = Notification(str(obj["method"]), obj.get("params"))
            self._deliver(note)
            for cb in list(self._callbacks):
                with contextlib.suppress(Exception):  # a failing callback must not stop the reader
                    cb(note)
            return
        id_ = obj.get("id")
        if not isinstance(id_, Hashable):  # a server bug; looking it up would kill the reader with a TypeError
            return
        with self._lock:
            fut = self._pending.pop(id_, None)
        if fut is not None and not fut.done():
            fut.set_result(obj)

    def _expect(self, id_: Any) -> FutureT:
        fut = self._new_future()
        with self._lock:
            if self._closed_reason is not None:
                raise ConnectionFailed(self._closed_reason)
            self._pending[id_] = fut
        return fut

    def _forget(self, id_: Any) -> None:
        with self._lock:
            self._pending.pop(id_, None)

    def _fail_pending(self, reason: str) -> None:
        """The socket is gone: every call still waiting fails with ``reason``, and so does every later one."""
        with self._lock:
            self._closed_reason = reason
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionFailed(reason))

    def on_notification(self, callback: Callable[[Notification], None]) -> Callable[[], None]:
        """Call ``callback`` (on the reader) for every notification; returns a function that stops it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None
