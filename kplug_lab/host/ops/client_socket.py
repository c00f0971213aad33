"""``siyuan.client.socket``: WebSocket connections from a plugin to the SiYuan kernel (spec §3.7).

The JS object lives in the prelude; this is its host half. Connections are dialled and read on the host's
asyncio loop (the ``websockets`` library); every frame and the final close are posted to the plugin's actor as
``__kplug.socketEvent(id, event)`` jobs, so the plugin's JS still runs on its own thread only.

Closing follows the spec's [better] browser semantics: exactly one ``close`` event per connection (code 1006
when the connection ended without a close handshake) and ``error`` only for failures.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from ...errors import SocketError
from ...protocol import routes
from ..route_sockets import LocalPrivateSocket, LocalRpcSocket
from ..runtime.bounds import human_bytes
from ..runtime.context import Capability, Op, PluginContext
from .kernel import kernel_headers, kernel_url

__all__ = ["ClientSockets", "SocketError"]

_DIAL_TIMEOUT = 5.0


class ClientSockets(Capability):
    """The open ``siyuan.client.socket`` connections of one plugin instance."""

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self._conns: dict[int, ClientConnection] = {}
        self._local: dict[int, LocalRpcSocket] = {}  # connections to this host's own RPC sockets
        self._private: dict[int, LocalPrivateSocket] = {}  # ... and to its plugins' private WebSocket routes
        self._cancelled: set[int] = set()
        self._readers: set[asyncio.Task[None]] = set()

    def sync_ops(self) -> dict[str, Op]:
        return {"socket_url": lambda path: self.url(str(path))}

    def async_ops(self) -> dict[str, Op]:
        return {
            "socket_open": lambda sid, path, protocols=None: self.open(int(sid), str(path),
                                                                        [str(p) for p in protocols or []]),
            "socket_send": lambda sid, data, binary: self.send(int(sid), str(data), bool(binary)),
            "socket_ping": lambda sid, data: self.ping(int(sid), str(data)),
            "socket_pong": lambda sid, data: self.pong(int(sid), str(data)),
            "socket_close": lambda sid, code, reason: self.close(int(sid), int(code), str(reason)),
        }

    def url(self, path: str) -> str:
        """The ``ws://`` URL of a kernel path; refuses anything that would reach another host."""
        parts = urlsplit(kernel_url(self.ctx.config, path, SocketError))
        scheme = "wss" if parts.scheme == "https" else "ws"
        return parts._replace(scheme=scheme).geturl()

    async def open(self, sid: int, path: str, protocols: list[str]) -> dict[str, Any]:
        url = self.url(path)
        route = routes.match("GET", path)
        if route is not None and route.kind is routes.RouteKind.RPC_SOCKET:  # the kernel plugins live here
            self._local[sid] = LocalRpcSocket(self.ctx.host, route.name, url,
                                              functools.partial(self._local_event, sid))
            return {"protocol": ""}
        if route is not None and route.kind is routes.RouteKind.PRIVATE:
            private = LocalPrivateSocket(self.ctx.host, route.name, route.rest or "", path, url,
                                         functools.partial(self._private_event, sid))
            self._private[sid] = private
            try:
                await private.open()
            except SocketError:
                self._private.pop(sid, None)
                raise
            return {"protocol": ""}
        headers = kernel_headers(self.ctx.config)
        try:
            conn = await connect(url, additional_headers=headers, subprotocols=protocols or None,  # type: ignore[arg-type]
                                 open_timeout=_DIAL_TIMEOUT, max_size=16 * 1024 * 1024, proxy=None)
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise SocketError(f"dial {url}: {exc or type(exc).__name__}") from None
        if sid in self._cancelled:
            await conn.close()
            raise SocketError("context canceled")
        self._conns[sid] = conn
        task = asyncio.get_running_loop().create_task(self._read(sid, conn))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)
        return {"protocol": conn.subprotocol or ""}

    async def send(self, sid: int, data: str, binary: bool) -> None:
        private = self._private.get(sid)
        if private is not None:
            await private.send_from_caller(base64.b64decode(data) if binary else data)
            return
        local = self._local.get(sid)
        if local is not None:
            local.send(base64.b64decode(data) if binary else data)
            return
        await self._write(sid, lambda conn: conn.send(base64.b64decode(data) if binary else data))

    async def ping(self, sid: int, data: str) -> None:
        if sid in self._private:
            return  # in-process: there is no wire to keep alive
        local = self._local.get(sid)
        if local is not None:
            local.ping()
            return
        await self._write(sid, lambda conn: conn.ping(data.encode("utf-8")))

    async def pong(self, sid: int, data: str) -> None:
        if sid in self._private:
            return  # in-process: there is no wire to keep alive
        local = self._local.get(sid)
        if local is not None:
            local.ping()
            return
        await self._write(sid, lambda conn: conn.pong(data.encode("utf-8")))

    async def close(self, sid: int, code: int, reason: str) -> None:
        private = self._private.get(sid)
        if private is not None:
            await private.close_from_caller(code, reason)
            return
        local = self._local.get(sid)
        if local is not None:
            local.close(code, reason)
            return
        conn = self._conns.get(sid)
        if conn is None:
            self._cancelled.add(sid)  # still dialling: the dial ends with "context canceled"
            return
        await conn.close(code, reason)

    def close_all(self) -> None:
        """The plugin is stopping: close every connection (no events are delivered any more)."""
        conns = list(self._conns.values())
        self._conns.clear()
        local, self._local = list(self._local.values()), {}
        loop = self.ctx.loop
        for sock in local:
            loop.call_soon_threadsafe(functools.partial(sock.close, 1001, "plugin stopping", deliver=False))
        private, self._private = list(self._private.values()), {}
        for route in private:
            asyncio.run_coroutine_threadsafe(route.close_from_caller(1001, "plugin stopping", deliver=False), loop)
        for conn in conns:
            asyncio.run_coroutine_threadsafe(conn.close(1001, "plugin stopping"), loop)

    def _private_event(self, sid: int, event: dict[str, Any]) -> None:
        if sid not in self._private:
            return
        if event.get("type") == "close":
            del self._private[sid]
        self._post(sid, event)

    def _local_event(self, sid: int, event: dict[str, Any]) -> None:
        if sid not in self._local:
            return
        if event.get("type") == "close":
            del self._local[sid]
        self._post(sid, event)

    def _conn(self, sid: int) -> ClientConnection:
        conn = self._conns.get(sid)
        if conn is None:
            raise SocketError("WebSocket not yet connected")
        return conn

    async def _write(self, sid: int, write: Callable[[ClientConnection], Awaitable[Any]]) -> None:
        """One frame on connection ``sid``; a closed connection is the plugin's ``SocketError``."""
        try:
            await write(self._conn(sid))
        except ConnectionClosed as exc:
            raise SocketError(f"WebSocket is closed: {exc}") from None

    async def _read(self, sid: int, conn: ClientConnection) -> None:
        failure: str | None = None
        inbound = self.ctx.inbound
        try:
            async for message in conn:
                size = len(message)
                if not inbound.take(size):  # the plugin is not keeping up: close rather than buffer for it
                    failure = (f"the plugin did not take {human_bytes(inbound.used)} of frames from the kernel "
                               f"(at most {human_bytes(inbound.limit)} may wait): the connection was closed")
                    await conn.close(1008, "the plugin reads too slowly")
                    break
                if isinstance(message, str):
                    self._post(sid, {"type": "text", "data": message}, size)
                else:
                    self._post(sid, {"type": "binary", "data": base64.b64encode(message).decode("ascii")}, size)
        except ConnectionClosed:
            pass
        except Exception as exc:  # any read failure ends the connection and is reported
            failure = f"read: {exc}"
        if self._conns.pop(sid, None) is None:
            return  # closed by close_all: the plugin is gone
        clean = conn.protocol.close_rcvd is not None and conn.protocol.close_sent is not None
        code = conn.close_code if clean and conn.close_code is not None else 1006
        if not clean and failure is None:
            failure = "the connection ended without a close handshake"
        if failure is not None:
            self._post(sid, {"type": "error", "error": failure})
        self._post(sid, {"type": "close", "code": code, "reason": (conn.close_reason or "") if clean else "",
                         "wasClean": clean})

    def _post(self, sid: int, event: dict[str, Any], size: int = 0) -> None:
        then = (lambda: self.ctx.inbound.give(size)) if size else None
        self.ctx.call_js("__kplug.socketEvent", sid, event, api="siyuan.client.socket", then=then)
