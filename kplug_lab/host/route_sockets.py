"""SiYuan's RPC WebSocket route (``/ws/plugin/rpc/<name>``, spec §5.4) answered by the host itself, for a plugin's
``siyuan.client.socket``.

In SiYuan the kernel plugins live inside the kernel, so a plugin that opens ``siyuan.client.socket(
"/ws/plugin/rpc/<itself>")`` (SiYuan's plugin-sample does, in ``onrunning``) reaches its own RPC socket. Under
kplug_lab the plugins live here, not in the kernel at ``siyuan_url``, so the connection is made in-process: frames
the plugin sends are JSON-RPC calls answered through :mod:`kplug_lab.host.calls` exactly as the wire answers them
(``rpc/handlers.py``), the plugin's broadcasts arrive as notifications, and the connection closes (1001) when the
target plugin leaves ``running``. No HTTP, no token: as the kernel does for its own plugins.

A plugin's private routes (``/plugin/private/<name>/...``) are served in-process the same way: a
``siyuan.client.socket`` to one reaches that plugin's ``siyuan.server.private.ws`` handler
(:class:`LocalPrivateSocket`), a ``siyuan.client.event`` reaches its ``siyuan.server.private.es`` handler
(:class:`LocalPrivateEventStream`), as the request SiYuan's kernel hands to those slots.

Everything runs on the host's asyncio loop; events are handed to ``deliver`` (which posts them to the calling
plugin's thread), in the shape :mod:`kplug_lab.host.ops.client_socket` (and :mod:`~kplug_lab.host.ops.client_events`)
uses for real connections.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import EventStreamError, PortError, SocketError
from ..protocol import private as private_model
from ..protocol.jsonrpc import NO_PARAMS, Limits
from ..protocol.sse import EventStreamParser
from .api import HostAPI, PluginState, Unsubscribe
from .calls import process
from .runtime.api import Deliver as PortDeliver

__all__ = ["LocalPrivateEventStream", "LocalPrivateSocket", "LocalRpcSocket"]

Deliver = Callable[[dict[str, Any]], None]


class LocalRpcSocket:
    """One in-process connection of a plugin to the RPC socket of plugin ``name``."""

    def __init__(self, host: HostAPI, name: str | None, url: str, deliver: Deliver,
                 limits: Limits | None = None) -> None:
        self.host = host
        self.name = name or ""
        self._deliver = deliver
        self._limits = limits or Limits()
        self._unsubs: list[Unsubscribe] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        info = host.get_plugin(self.name) if self.name else None
        if info is None or info.state != PluginState.RUNNING:
            # the wire refuses the upgrade with 404 and a JSON-RPC error (-32001 / -32002), before upgrading
            raise SocketError(f"dial {url}: bad handshake (HTTP 404)")
        self._unsubs = [host.subscribe_broadcasts(self.name, self._on_broadcast),
                        host.subscribe_states(self._on_state)]

    def send(self, data: str | bytes) -> None:
        """A frame from the plugin: a JSON-RPC call (or batch), answered with a text frame unless it asks none."""
        if self.closed:
            raise SocketError("WebSocket is closed")
        task = asyncio.get_running_loop().create_task(self._answer(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def ping(self) -> None:
        if self.closed:
            raise SocketError("WebSocket is closed")

    def close(self, code: int = 1000, reason: str = "", *, deliver: bool = True) -> None:
        """End the connection; ``deliver`` the close event (not when the calling plugin itself is going away)."""
        if self.closed:
            return
        self.closed = True
        for unsub in self._unsubs:
            unsub()
        self._unsubs = []
        for task in list(self._tasks):
            task.cancel()
        if deliver:
            self._deliver({"type": "close", "code": code, "reason": reason, "wasClean": True})

    async def _answer(self, data: str | bytes) -> None:
        async def caller(method: str, params: Any) -> Any:
            return await self.host.call(self.name, method, params, timeout=self._limits.call_timeout)

        text = await process(data, caller, plugin=self.name, limits=self._limits)
        if text is not None and not self.closed:
            self._deliver({"type": "text", "data": text})

    def _on_broadcast(self, method: str, params: Any) -> None:
        if self.closed:
            return
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not NO_PARAMS:
            msg["params"] = params
        self._deliver({"type": "text", "data": json.dumps(msg, ensure_ascii=False)})

    def _on_state(self, name: str, state: PluginState) -> None:
        if name == self.name and state != PluginState.RUNNING:
            self.close(1001, f"plugin [{name}] is {state.label}")


class LocalPrivateSocket:
    """One in-process connection of a plugin to plugin ``name``'s private WebSocket route
    (``/plugin/private/<name>/...``, served by its ``siyuan.server.private.ws`` handler): the target's
    ``request.port`` (a :class:`~kplug_lab.host.api.WebSocketPort`) on one side, the caller's
    ``siyuan.client.socket`` events on the other."""

    def __init__(self, host: HostAPI, name: str | None, rest: str, target: str, url: str, deliver: Deliver) -> None:
        self.host = host
        self.name = name or ""
        self._rest = rest
        self._target = target
        self._url = url
        self._to_caller = deliver
        self._to_handler: PortDeliver | None = None
        self.closed = False

    async def open(self) -> None:
        info = self.host.get_plugin(self.name) if self.name else None
        if info is None or info.state != PluginState.RUNNING:
            status = 404 if info is None else 503
            raise SocketError(f"dial {self._url}: bad handshake (HTTP {status})")
        request = private_model.request_object(
            self.name, self._rest, method="GET", uri=self._target, version="HTTP/1.1", host="127.0.0.1",
            remote_ip="127.0.0.1", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")], cookies=[],
            query={}, body=b"", form={}, files={})
        try:
            await self.host.http_request(self.name, "ws", request, port=self)
        except Exception as exc:  # the handler failed: SiYuan drops the connection
            self.closed = True
            raise SocketError(f"dial {self._url}: the plugin's ws handler failed: {exc}") from None

    # ---- the caller's side (siyuan.client.socket) ------------------------------------------------------

    async def send_from_caller(self, data: str | bytes) -> None:
        if self.closed or self._to_handler is None:
            raise SocketError("WebSocket is closed")
        if isinstance(data, bytes):
            await self._to_handler({"type": "binary", "data": base64.b64encode(data).decode("ascii")})
        else:
            await self._to_handler({"type": "text", "data": data})

    async def close_from_caller(self, code: int, reason: str, *, deliver: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        if self._to_handler is not None:
            await self._to_handler({"type": "close", "code": code, "reason": reason, "wasClean": True})
        if deliver:
            self._to_caller({"type": "close", "code": code, "reason": reason, "wasClean": True})

    # ---- the handler's side (request.port, WebSocketPort) ---------------------------------------------

    def attach(self, deliver: PortDeliver) -> None:
        self._to_handler = deliver

    async def send(self, data: str | bytes) -> None:
        if self.closed:
            raise PortError("WebSocket is closed")
        if isinstance(data, bytes):
            self._to_caller({"type": "binary", "data": base64.b64encode(data).decode("ascii")})
        else:
            self._to_caller({"type": "text", "data": data})

    async def ping(self, data: bytes) -> None:
        if self.closed:
            raise PortError("WebSocket is closed")

    async def pong(self, data: bytes) -> None:
        if self.closed:
            raise PortError("WebSocket is closed")

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._to_caller({"type": "close", "code": code, "reason": reason, "wasClean": True})
        if self._to_handler is not None:
            await self._to_handler({"type": "close", "code": code, "reason": reason, "wasClean": True})


class LocalPrivateEventStream:
    """One in-process subscription of a plugin (``siyuan.client.event``) to plugin ``name``'s private SSE route
    (``/plugin/private/<name>/...`` with ``Accept: text/event-stream``, served by its ``siyuan.server.private.es``
    handler): the target's ``request.port`` (a :class:`~kplug_lab.host.api.EventStreamPort`) on one side, the
    caller's ``open``/``message``/``close`` events on the other. Events cross as the wire encodes them, so ids,
    event names and multi-line data arrive as over HTTP."""

    def __init__(self, host: HostAPI, name: str | None, rest: str, target: str, url: str, deliver: Deliver) -> None:
        self.host = host
        self.name = name or ""
        self._rest = rest
        self._target = target
        self._url = url
        self._to_caller = deliver
        self._to_handler: PortDeliver | None = None
        self._parser = EventStreamParser()
        self._ended = asyncio.Event()
        self.opened = False

    async def run(self) -> None:
        """Hand the request to the target's ``es`` handler and relay its events until the stream ends (the handler
        closes it, or the target stops); raises :class:`EventStreamError` with the status the wire would answer
        when the stream never starts. Cancelling the task (the caller's ``close()``) ends the stream too; either
        way the handler's ``onclose`` runs."""
        info = self.host.get_plugin(self.name) if self.name else None
        if info is None or info.state != PluginState.RUNNING:
            self._refuse(HTTPStatus.NOT_FOUND if info is None else HTTPStatus.SERVICE_UNAVAILABLE)
        request = private_model.request_object(
            self.name, self._rest, method="GET", uri=self._target, version="HTTP/1.1", host="127.0.0.1",
            remote_ip="127.0.0.1", headers=[("Accept", "text/event-stream"), ("Cache-Control", "no-cache")],
            cookies=[], query=_query(self._target), body=b"", form={}, files={})
        try:
            try:
                await self.host.http_request(self.name, "es", request, port=self)
            except Exception:
                if not self.opened:  # the wire answers 500 before any event: the subscription fails
                    self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR)
                self.end()
            self._open()
            await self._ended.wait()
        finally:
            self._ended.set()
            await self._close_handler()

    def _refuse(self, status: HTTPStatus) -> None:
        raise EventStreamError(f"GET {self._url}: unexpected status {status.value} {status.phrase}")

    def _open(self) -> None:
        if not self.opened:
            self.opened = True
            self._to_caller({"type": "open"})

    async def _close_handler(self) -> None:
        deliver, self._to_handler = self._to_handler, None
        if deliver is not None:
            try:
                await deliver({"type": "close"})
            except Exception:  # the target is going away: its onclose has nowhere to run
                pass

    # ---- the handler's side (request.port, EventStreamPort) -----------------------------------------------

    def attach(self, deliver: PortDeliver) -> None:
        self._to_handler = deliver

    def send_event(self, text: str) -> None:
        if self._ended.is_set():
            return
        self._open()
        for event in self._parser.feed(text.encode("utf-8")):
            self._to_caller({"type": "message", "event": event.event, "data": event.data,
                             "lastEventId": event.last_event_id})

    def end(self) -> None:
        self._ended.set()


def _query(target: str) -> dict[str, list[bytes]]:
    query = urlsplit(target).query
    return {k: [v.encode() for v in vs] for k, vs in parse_qs(query, keep_blank_values=True).items()}
