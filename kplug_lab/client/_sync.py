"""The blocking client. It never touches an asyncio loop (httpx's sync client; websockets' threaded client), so
it is safe inside ipykernel, whose loop is already running."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx
import websockets.exceptions
import websockets.sync.client

from ._base import BatchEntries, Endpoint, check_status
from ._exceptions import ConnectionFailed, ProtocolError, ResponseTimeout
from ._models import (
    CallHistory,
    LogEntry,
    Notification,
    PluginStatus,
    dumps,
    make_params,
    make_request,
    next_id,
    record,
    result_of,
)

__all__ = ["AdminSocket", "Batch", "Client", "PluginSocket"]


class Batch:
    """Collects calls and notifications, sends them as one JSON-RPC batch with :meth:`send`."""

    def __init__(self, prefix: str, send: Callable[[list[dict[str, Any]]], Any]) -> None:
        self._entries = BatchEntries(prefix)
        self._send = send

    def call(self, method: str, *args: Any, **kwargs: Any) -> Batch:
        self._entries.add(method, args, kwargs, notify=False)
        return self

    def notify(self, method: str, *args: Any, **kwargs: Any) -> Batch:
        self._entries.add(method, args, kwargs, notify=True)
        return self

    def send(self) -> list[Any]:
        """One entry per :meth:`call`, in order: the result, or the ``RPCError`` that call got (not raised)."""
        if not self._entries.requests:
            raise ValueError("an empty batch cannot be sent (JSON-RPC rejects an empty array)")
        return self._entries.outcomes(self._send(self._entries.requests))


class Client:
    """A blocking JSON-RPC client for one kplug_lab server (standalone ``kplug serve`` or inside Jupyter).

    ``url`` is the server's base URL (``http://127.0.0.1:8765/``, or a Jupyter server's URL with its base_url);
    ``token`` the admin token (or, for plugin calls only, the call token).

    >>> with Client("http://127.0.0.1:8765/", "secret") as c:    # doctest: +SKIP
    ...     c.call("hello", "echo", "hi")
    'hi'
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0,
                 history: CallHistory | None = None) -> None:
        self.endpoint = Endpoint(url, token)
        self.timeout = timeout
        self.history = history if history is not None else CallHistory()
        self._http = httpx.Client(base_url=self.endpoint.url, headers=self.endpoint.headers, timeout=timeout)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport -----------------------------------------------------------------------------------

    def _post(self, path: str, body: Any, target: str) -> Any:
        try:
            response = self._http.post(path, content=dumps(body).encode(),
                                       headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            raise ResponseTimeout(f"{target}: no answer from {self.url} within {self.timeout} s") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{target}: cannot reach kplug_lab at {self.url} ({exc}); "
                                   "is the server running?") from None
        return check_status(response.status_code, response.content, target, self.url)

    def _request(self, path: str, target: str, method: str, params: Any) -> Any:
        started = time.perf_counter()
        try:
            result = result_of(self._post(path, make_request(method, params, next_id()), target), target)
        except Exception as exc:
            self.history.add(record(target, params, time.perf_counter() - started, error=exc))
            raise
        self.history.add(record(target, params, time.perf_counter() - started, result))
        return result

    # ---- plugin calls (SiYuan's routes) --------------------------------------------------------------

    def call(self, plugin: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` of ``plugin``: positional arguments are spread, keyword arguments arrive as one object."""
        return self._request(self.endpoint.plugin_path(plugin), f"{plugin}.{method}", method,
                             make_params(args, kwargs))

    def notify(self, plugin: str, method: str, *args: Any, **kwargs: Any) -> None:
        """Send a notification (no id): the server runs the method and answers nothing (HTTP 204)."""
        target = f"{plugin}.{method}"
        started = time.perf_counter()
        params = make_params(args, kwargs)
        self._post(self.endpoint.plugin_path(plugin), make_request(method, params, None), target)
        self.history.add(record(target, params, time.perf_counter() - started))

    def batch(self, plugin: str) -> Batch:
        """A batch of calls to ``plugin``: ``client.batch("hello").call("echo", 1).notify("x").send()``."""
        path = self.endpoint.plugin_path(plugin)
        return Batch(plugin, lambda reqs: self._post(path, reqs, f"{plugin} (batch)"))

    def connect(self, plugin: str) -> PluginSocket:
        """A WebSocket to ``plugin``: calls, and the plugin's ``siyuan.rpc.broadcast`` notifications."""
        return PluginSocket(self.endpoint.ws_plugin_url(plugin), self.endpoint.headers, self.timeout, plugin,
                            self.history)

    # ---- admin API (kplug.*) -------------------------------------------------------------------------

    def admin(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call one method of the admin API (``kplug.list``, ``rpc.discover``, ...)."""
        return self._request(self.endpoint.admin_path, method, method, make_params(args, kwargs))

    def list_plugins(self) -> list[PluginStatus]:
        return [PluginStatus.from_json(p) for p in self.admin("kplug.list")]

    def state(self, name: str) -> PluginStatus:
        return PluginStatus.from_json(self.admin("kplug.state", name=name))

    def load(self, path: str) -> PluginStatus:
        """Load (or restart) the plugin folder at ``path``, a path on the server's machine."""
        return PluginStatus.from_json(self.admin("kplug.load", path=str(path)))

    def unload(self, name: str) -> None:
        self.admin("kplug.unload", name=name)

    def reload(self, name: str) -> PluginStatus:
        return PluginStatus.from_json(self.admin("kplug.reload", name=name))

    def logs(self, name: str, limit: int = 200) -> list[LogEntry]:
        return [LogEntry.from_json(r) for r in self.admin("kplug.logs", name=name, limit=limit)]

    def tools(self) -> list[dict[str, Any]]:
        return list(self.admin("kplug.tools"))

    def invoke_tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.admin("kplug.invokeTool", name=name, arguments=arguments or {}))

    def eval(self, name: str, code: str) -> Any:
        """Run JS inside plugin ``name``'s VM and return its (awaited) value; the server must run with ``--dev``."""
        return self.admin("kplug.eval", name=name, code=code)

    def discover(self) -> dict[str, Any]:
        return dict(self.admin("rpc.discover"))

    def admin_socket(self) -> AdminSocket:
        """A WebSocket to the admin API; :meth:`AdminSocket.subscribe` streams states, logs and broadcasts."""
        return AdminSocket(self.endpoint.ws_admin_url(), self.endpoint.headers, self.timeout, "", self.history)


class _Socket:
    """A JSON-RPC WebSocket with a reader thread: answers are matched to calls by id (they may arrive out of
    order), notifications go to a queue and to callbacks."""

    def __init__(self, uri: str, headers: dict[str, str], timeout: float, prefix: str,
                 history: CallHistory) -> None:
        self.prefix = prefix
        self.timeout = timeout
        self.history = history
        self._pending: dict[Any, Future[Any]] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Notification] = queue.Queue()
        self._callbacks: list[Callable[[Notification], None]] = []
        self._closed_reason: str | None = None
        try:
            self._ws = websockets.sync.client.connect(uri, additional_headers=headers, open_timeout=timeout,
                                                      max_size=None)
        except websockets.exceptions.InvalidStatus as exc:
            answer = check_status(exc.response.status_code, bytes(exc.response.body or b""), prefix or "kplug", uri)
            raise result_of_error(answer, prefix or "kplug", uri) from None
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise ConnectionFailed(f"cannot open a WebSocket to {uri} ({exc}); is the server running?") from None
        self._reader = threading.Thread(target=self._read, name=f"kplug-ws-{prefix or 'admin'}", daemon=True)
        self._reader.start()

    def _target(self, method: str) -> str:
        return f"{self.prefix}.{method}" if self.prefix else method

    def _read(self) -> None:
        try:
            for message in self._ws:
                try:
                    obj = json.loads(message)
                except ValueError:
                    continue
                self._dispatch(obj)
            reason = "the server closed the WebSocket"
            close = self._ws.protocol.close_rcvd
            if close is not None and close.reason:
                reason += f": {close.reason}"
        except websockets.exceptions.ConnectionClosed as exc:
            reason = f"the WebSocket closed ({exc})"
        except Exception as exc:  # the reader must always fail the pending calls, never die silently
            reason = f"the WebSocket failed ({exc!r})"
        with self._lock:
            self._closed_reason = reason
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionFailed(reason))

    def _dispatch(self, obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                self._dispatch(item)
            return
        if not isinstance(obj, dict):
            return
        if "method" in obj and "id" not in obj:
            note = Notification(str(obj["method"]), obj.get("params"))
            self._queue.put(note)
            for cb in list(self._callbacks):
                try:
                    cb(note)
                except Exception:  # a failing callback must not stop the reader
                    pass
            return
        with self._lock:
            fut = self._pending.pop(obj.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(obj)

    def _expect(self, id_: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._lock:
            if self._closed_reason is not None:
                raise ConnectionFailed(self._closed_reason)
            self._pending[id_] = fut
        return fut

    def _send(self, payload: Any, target: str) -> None:
        try:
            self._ws.send(dumps(payload))
        except websockets.exceptions.ConnectionClosed as exc:
            raise ConnectionFailed(f"{target}: the WebSocket is closed ({exc})") from None

    def _wait(self, fut: Future[Any], target: str) -> Any:
        try:
            return fut.result(timeout=self.timeout)
        except FutureTimeout:
            raise ResponseTimeout(f"{target}: no answer within {self.timeout} s") from None

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target = self._target(method)
        params = make_params(args, kwargs)
        id_ = next_id()
        started = time.perf_counter()
        try:
            fut = self._expect(id_)
            self._send(make_request(method, params, id_), target)
            result = result_of(self._wait(fut, target), target)
        except Exception as exc:
            with self._lock:
                self._pending.pop(id_, None)
            self.history.add(record(target, params, time.perf_counter() - started, error=exc))
            raise
        self.history.add(record(target, params, time.perf_counter() - started, result))
        return result

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._send(make_request(method, make_params(args, kwargs), None), self._target(method))

    def batch(self) -> Batch:
        def send(requests: list[dict[str, Any]]) -> Any:
            futs = [self._expect(r["id"]) for r in requests if "id" in r]
            self._send(requests, f"{self.prefix} (batch)")
            return [self._wait(f, f"{self.prefix} (batch)") for f in futs]

        return Batch(self.prefix, send)

    def on_notification(self, callback: Callable[[Notification], None]) -> Callable[[], None]:
        """Call ``callback`` (on the reader thread) for every notification; returns a function that stops it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def next_notification(self, timeout: float | None = None) -> Notification:
        """The next notification not yet taken; ``ResponseTimeout`` if none arrives within ``timeout`` s."""
        try:
            return self._queue.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise ResponseTimeout(f"no notification within {timeout} s") from None

    def notifications(self, timeout: float) -> Iterator[Notification]:
        """Notifications as they arrive, until none came for ``timeout`` s or the socket closed."""
        while True:
            try:
                yield self._queue.get(timeout=timeout)
            except queue.Empty:
                return

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def close(self) -> None:
        self._ws.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def result_of_error(answer: Any, target: str, uri: str) -> Exception:
    """The error for a refused WebSocket handshake whose body is a JSON-RPC error (plugin not loaded/running)."""
    try:
        result_of(answer, target)
    except Exception as exc:
        return exc
    return ProtocolError(f"{target}: the server refused the WebSocket at {uri}")


class PluginSocket(_Socket):
    """A WebSocket to one plugin (``GET /ws/plugin/rpc/<name>``). The server closes it when the plugin stops."""

    def __enter__(self) -> PluginSocket:
        return self


class AdminSocket(_Socket):
    """A WebSocket to the admin API (``/kplug/api/ws``)."""

    def subscribe(self, topics: list[str] | None = None) -> list[str]:
        """Start the ``kplug.state``, ``kplug.log`` and ``kplug.broadcast`` notifications (default: all three)."""
        return list(self.call("kplug.subscribe", topics=topics or ["state", "log", "broadcast"]))

    def __enter__(self) -> AdminSocket:
        return self
