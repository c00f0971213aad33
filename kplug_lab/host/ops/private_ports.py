"""``request.port`` of ``siyuan.server.private`` WebSocket and SSE requests (spec §3.8.3, §3.8.4): the host half.

The wire end of a connection (a tornado handler, in ``rpc/``) implements :class:`WebSocketPort` or
:class:`EventStreamPort` and is registered here for the duration of the request; the plugin's JS port object
(prelude) reaches it through the ``port_*`` host operations, and what arrives from the wire is delivered back
to the plugin's actor as ``__kplug.portEvent(id, event)`` jobs. A delivery is awaitable, so the wire end can
wait for the plugin to take a message before it reads the next one (SiYuan's ``RunSync`` back-pressure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import HostOpError, PortError
from ...protocol.sse import encode_event
from ..runtime.api import Deliver, EventStreamPort, WebSocketPort
from ..runtime.bounds import ByteBudget, human_bytes, utf8_size
from ..runtime.context import Capability, Op, PluginContext
from .encoding import unb64, utf8

__all__ = ["Deliver", "EventStreamPort", "PortError", "PrivatePorts", "WebSocketPort"]

class PrivatePorts(Capability):
    """The open ``request.port`` connections of one plugin instance."""

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self._ports: dict[int, WebSocketPort | EventStreamPort] = {}
        self._next = 1
        self._waiting: set[asyncio.Future[None]] = set()
        # SSE events handed to the loop and not yet written (the loop may be behind): host memory, bounded
        self._handoff = ByteBudget(ctx.config.max_pending_bytes)

    def sync_ops(self) -> dict[str, Op]:
        return {"port_sse_send": self.port_sse_send, "port_sse_close": self.port_sse_close}

    def async_ops(self) -> dict[str, Op]:
        return {"port_send": self.port_send, "port_ping": self.port_ping, "port_pong": self.port_pong,
                "port_close": self.port_close}

    async def port_send(self, pid: int, data: str, binary: bool) -> None:
        await self._port_io(int(pid), lambda port: port.send(unb64(data) if binary else str(data)))

    async def port_ping(self, pid: int, data: str) -> None:
        await self._port_io(int(pid), lambda port: port.ping(utf8(str(data))))

    async def port_pong(self, pid: int, data: str) -> None:
        await self._port_io(int(pid), lambda port: port.pong(utf8(str(data))))

    async def port_close(self, pid: int, code: int, reason: str) -> None:
        await self._port_io(int(pid), lambda port: port.close(int(code), str(reason)))

    async def _port_io(self, pid: int, operation: Callable[[WebSocketPort], Awaitable[None]]) -> None:
        try:
            await operation(self.websocket(pid))
        except PortError as exc:
            raise HostOpError(str(exc)) from None

    def port_sse_send(self, pid: int, event: dict[str, Any]) -> None:
        port = self.event_stream(int(pid))
        if port is not None:  # after the stream ended, events go nowhere (as in SiYuan)
            text = encode_event(event)
            size = utf8_size(text)
            if not self._handoff.take(size):
                raise HostOpError(f"{human_bytes(self._handoff.used)} of events are still waiting to be sent (at "
                                  f"most {human_bytes(self._handoff.limit)}); send less at once")
            self.ctx.loop.call_soon_threadsafe(self._send_event, port, text, size)

    def _send_event(self, port: EventStreamPort, text: str, size: int) -> None:
        try:
            port.send_event(text)
        finally:
            self._handoff.give(size)

    def port_sse_close(self, pid: int) -> None:
        port = self.event_stream(int(pid))
        if port is not None:
            self.ctx.loop.call_soon_threadsafe(port.end)

    def register(self, port: WebSocketPort | EventStreamPort) -> int:
        pid = self._next
        self._next += 1
        self._ports[pid] = port
        port.attach(lambda event: self._deliver(pid, event))
        return pid

    def websocket(self, pid: int) -> WebSocketPort:
        port = self._ports.get(pid)
        if port is None or isinstance(port, EventStreamPort):
            raise PortError("WebSocket is closed")
        return port

    def event_stream(self, pid: int) -> EventStreamPort | None:
        port = self._ports.get(pid)
        return port if isinstance(port, EventStreamPort) else None

    async def end_event_streams(self, timeout: float) -> None:
        """The plugin is stopping in order: end every SSE stream and let its ``onclose`` run (spec §3.8.4: the
        stream stays open until ``close()``, the client leaves, or the plugin stops; then ``onclose``), waiting at
        most ``timeout`` seconds, before the VM goes. Call on the loop."""
        streams = [pid for pid, port in self._ports.items() if isinstance(port, EventStreamPort)]
        if not streams:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for port in [self._ports[pid] for pid in streams]:
            if isinstance(port, EventStreamPort):
                port.end()
        # each stream's handler wakes, finishes the response, and delivers {"type": "close"} (which drops it here)
        while any(pid in self._ports for pid in streams) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        waiting = [fut for fut in self._waiting if not fut.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=max(0.0, deadline - loop.time()))

    def close_all(self) -> None:
        """The plugin is stopping: close every connection (1001 for WebSockets); no events are delivered."""
        ports = list(self._ports.values())
        self._ports.clear()
        for fut in self._waiting:
            if not fut.done():
                fut.set_result(None)
        loop = self.ctx.loop
        for port in ports:
            if isinstance(port, EventStreamPort):
                loop.call_soon_threadsafe(port.end)
            else:
                asyncio.run_coroutine_threadsafe(port.close(1001, "plugin stopping"), loop)

    def _deliver(self, pid: int, event: dict[str, Any]) -> Awaitable[None]:
        """Run ``__kplug.portEvent`` on the plugin's thread; the result is done once it ran (called on the loop)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if event.get("type") == "close":
            self._ports.pop(pid, None)
        if not self.ctx.running or (event.get("type") != "close" and pid not in self._ports):
            done.set_result(None)
            return done
        self._waiting.add(done)
        done.add_done_callback(self._waiting.discard)

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        self.ctx.call_js("__kplug.portEvent", pid, event, api="siyuan.server.private port",
                         then=lambda: loop.call_soon_threadsafe(settle))
        return done
