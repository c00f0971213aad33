"""The blocking client. It never touches an asyncio loop (httpx's sync client; websockets' threaded client), so
it is safe inside ipykernel, whose loop is already running."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx
import websockets.exceptions
import websockets.sync.client

from ._base import JSON_CONTENT, BaseBatch, BaseClient, BaseSocket, recorded_call
from ._exceptions import ConnectionFailed, ResponseTimeout
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


class Batch(BaseBatch):
    """Collects calls and notifications, sends them as one JSON-RPC batch with :meth:`send`."""

    def send(self) -> list[Any]:
        """One entry per :meth:`call`, in order: the result, or the ``RPCError`` that call got (not raised)."""
        return self._entries.outcomes(self._send(self._requests()))


class Client(BaseClient):
    """A blocking JSON-RPC client for one kplug_lab server (standalone ``kplug serve`` or inside Jupyter).

    ``url`` is the server's base URL (``http://127.0.0.1:8765/``, or a Jupyter server's URL with its base_url);
    ``token`` the admin token (or, for plugin calls only, the call token).

    >>> with Client("http://127.0.0.1:8765/", "secret") as c:    # doctest: +SKIP
    ...     c.call("hello", "echo", "hi")
    'hi'
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0,
                 history: CallHistory | None = None) -> None:
        super().__init__(url, token, timeout=timeout, history=history)
        self._http = httpx.Client(base_url=self.endpoint.url, headers=self.endpoint.headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport -----------------------------------------------------------------------------------

    def _post(self, path: str, body: Any, target: str) -> Any:
        try:
            response = self._http.post(path, content=self._body(body), headers=JSON_CONTENT)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, target) from None
        return self._answer(response, target)

    def _request(self, path: str, target: str, method: str, params: Any) -> Any:
        with recorded_call(self.history, target, params) as outcome:
            outcome.result = result_of(self._post(path, make_request(method, params, next_id()), target), target)
        return outcome.result

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

    def stats(self) -> list[dict[str, Any]]:
        """Health of every plugin (``kplug.stats``): memory, CPU, calls, errors, latencies, restarts."""
        return list(self.admin("kplug.stats"))

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


class _Socket(BaseSocket[Future[Any]]):
    """A JSON-RPC WebSocket with a reader thread: answers are matched to calls by id (they may arrive out of
    order), notifications go to a queue and to callbacks."""

    def __init__(self, uri: str, headers: dict[str, str], timeout: float, prefix: str,
                 history: CallHistory) -> None:
        super().__init__(prefix, timeout, history)
        self._queue: queue.Queue[Notification | None] = queue.Queue()  # None: the socket has ended
        try:
            self._ws = websockets.sync.client.connect(uri, additional_headers=headers, open_timeout=timeout,
                                                      max_size=None)
        except websockets.exceptions.InvalidStatus as exc:
            raise self._refused(exc, uri) from None
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise self._unreachable(uri, exc) from None
        self._reader = threading.Thread(target=self._read, name=f"kplug-ws-{prefix or 'admin'}", daemon=True)
        self._reader.start()

    def _new_future(self) -> Future[Any]:
        return Future()

    def _deliver(self, note: Notification) -> None:
        self._queue.put(note)

    def _read(self) -> None:
        reason = "the WebSocket reader stopped"
        try:
            for message in self._ws:
                self._receive(message)
            reason = self._closed_by_server(self._ws.protocol.close_rcvd)
        except websockets.exceptions.ConnectionClosed as exc:
            reason = f"the WebSocket closed ({exc})"
        except Exception as exc:  # the reader must always fail the pending calls, never die silently
            reason = f"the WebSocket failed ({exc!r})"
        finally:
            self._fail_pending(reason)
            self._queue.put(None)

    def _send(self, payload: Any, target: str) -> None:
        try:
            self._ws.send(dumps(payload))
        except websockets.exceptions.ConnectionClosed as exc:
            raise self._send_failed(target, exc) from None

    def _wait(self, fut: Future[Any], target: str) -> Any:
        try:
            return fut.result(timeout=self.timeout)
        except FutureTimeout:
            raise self._no_answer(target) from None

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target = self._target(method)
        params = make_params(args, kwargs)
        id_ = next_id()
        with recorded_call(self.history, target, params) as outcome:
            try:
                fut = self._expect(id_)
                self._send(make_request(method, params, id_), target)
                outcome.result = result_of(self._wait(fut, target), target)
            except Exception:
                self._forget(id_)
                raise
        return outcome.result

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._send(make_request(method, make_params(args, kwargs), None), self._target(method))

    def batch(self) -> Batch:
        def send(requests: list[dict[str, Any]]) -> Any:
            futs = [self._expect(r["id"]) for r in requests if "id" in r]
            self._send(requests, f"{self.prefix} (batch)")
            return [self._wait(f, f"{self.prefix} (batch)") for f in futs]

        return Batch(self.prefix, send)

    def _next(self, timeout: float) -> Notification | None:
        """The next notification, or ``None`` once the socket has ended (the end stays queued for the next
        reader); ``queue.Empty`` if nothing arrives within ``timeout`` s."""
        note = self._queue.get(timeout=timeout)
        if note is None:
            self._queue.put(None)
        return note

    def next_notification(self, timeout: float | None = None) -> Notification:
        """The next notification not yet taken; ``ResponseTimeout`` if none arrives within ``timeout`` s,
        ``ConnectionFailed`` once the socket has ended and every notification it got has been taken."""
        wait = self.timeout if timeout is None else timeout
        try:
            note = self._next(wait)
        except queue.Empty:
            raise ResponseTimeout(f"no notification within {wait} s") from None
        if note is None:
            raise ConnectionFailed(f"no more notifications: {self._closed_reason}")
        return note

    def notifications(self, timeout: float) -> Iterator[Notification]:
        """Notifications as they arrive, until none came for ``timeout`` s or the socket ended."""
        while True:
            try:
                note = self._next(timeout)
            except queue.Empty:
                return
            if note is None:
                return
            yield note

    def close(self) -> None:
        self._ws.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
