"""``siyuan.client.event``: Server-Sent Events subscriptions from a plugin to the SiYuan kernel (spec §3.7).

The JS object lives in the prelude; this is its host half. Each subscription is one task on the host's asyncio
loop (``httpx`` streaming, the stream read by :class:`kplug_lab.protocol.sse.EventStreamParser`); every event is
posted to the plugin's actor as ``__kplug.eventSourceEvent(id, ev)``.

Semantics are the spec's [better] ones, and differ from SiYuan on purpose:

* ``open`` fires as soon as the kernel answers 200 (SiYuan waits for the first event);
* a stream the kernel ends cleanly ends the subscription with ``close`` (SiYuan stays silent);
* a dropped connection is retried with back-off (0.5 s, x1.5, or the stream's ``retry:``) and
  ``Last-Event-ID``, at most :data:`MAX_RETRIES` times in a row; then ``error`` and ``close`` (SiYuan retries
  for 15 minutes before saying anything);
* a non-200 answer fails at once (``error`` then ``close``), as a browser's EventSource does;
* ``close()`` cancels the task immediately (SiYuan's background task keeps spinning).

A subscription to a plugin's private SSE route (``/plugin/private/<name>/...``) is answered by that plugin's
``siyuan.server.private.es`` handler in-process (:class:`kplug_lab.host.route_sockets.LocalPrivateEventStream`),
not by the kernel at ``siyuan_url``: in SiYuan the kernel plugins live in the kernel, here they live in this host.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from functools import partial
from typing import Any

import httpx

from ...errors import EventStreamError, HostOpError
from ...protocol import routes
from ...protocol.sse import EventStreamParser
from ..route_sockets import LocalPrivateEventStream
from ..runtime.bounds import human_bytes
from ..runtime.context import Capability, Op, PluginContext
from .kernel import kernel_headers, kernel_url

__all__ = ["MAX_RETRIES", "RETRY_FACTOR", "RETRY_INITIAL", "ClientEvents", "EventStreamError"]

#: consecutive failed (re)connection attempts before the subscription gives up
MAX_RETRIES = 3
#: first reconnection delay and its growth, seconds
RETRY_INITIAL = 0.5
RETRY_FACTOR = 1.5
_CONNECT_TIMEOUT = 5.0


class ClientEvents(Capability):
    """The ``siyuan.client.event`` subscriptions of one plugin instance."""

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self._tasks: dict[int, concurrent.futures.Future[None]] = {}

    def sync_ops(self) -> dict[str, Op]:
        return {"event_open": self.event_open, "event_close": self.event_close}

    def event_open(self, sid: int, path: str) -> None:
        try:
            self.open(int(sid), str(path))
        except EventStreamError as exc:
            raise HostOpError(str(exc)) from None

    def event_close(self, sid: int) -> None:
        self.close(int(sid))

    def url(self, path: str) -> str:
        """The kernel URL of ``path``; refuses anything that would reach another host."""
        return kernel_url(self.ctx.config, path, EventStreamError)

    def open(self, sid: int, path: str) -> None:
        """Start subscription ``sid`` (called on the plugin's thread; the work runs on the host loop)."""
        url = self.url(path)
        route = routes.match("GET", path)
        run: Coroutine[Any, Any, None]
        if route is not None and route.kind is routes.RouteKind.PRIVATE:  # the kernel plugins live here
            run = self._run_local(sid, LocalPrivateEventStream(self.ctx.host, route.name, route.rest or "", path,
                                                               url, partial(self._post, sid)))
        else:
            run = self._run(sid, url)
        self._tasks[sid] = asyncio.run_coroutine_threadsafe(run, self.ctx.loop)
        self._tasks[sid].add_done_callback(lambda _f: self._tasks.pop(sid, None))

    def close(self, sid: int) -> None:
        task = self._tasks.pop(sid, None)
        if task is not None:
            task.cancel()

    def close_all(self) -> None:
        """The plugin is stopping: end every subscription (no events are delivered any more)."""
        for sid in list(self._tasks):
            self.close(sid)

    async def _run(self, sid: int, url: str) -> None:
        parser = EventStreamParser()
        failures = 0
        delay = RETRY_INITIAL
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **kernel_headers(self.ctx.config)}
        timeout = httpx.Timeout(_CONNECT_TIMEOUT, read=None)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=True) as client:
            while True:
                if parser.last_event_id:
                    headers["Last-Event-ID"] = parser.last_event_id
                try:
                    async with client.stream("GET", url, headers=headers) as resp:
                        if resp.status_code != 200:
                            self._fail(sid, f"GET {url}: unexpected status {resp.status_code} {resp.reason_phrase}")
                            return
                        failures, delay = 0, RETRY_INITIAL
                        self._post(sid, {"type": "open"})
                        inbound = self.ctx.inbound
                        async for chunk in resp.aiter_bytes():
                            for event in parser.feed(chunk):
                                size = len(event.data) + len(event.event) + len(event.last_event_id)
                                if not inbound.take(size):  # the plugin is not keeping up: end, do not buffer
                                    self._fail(sid, f"GET {url}: the plugin did not take {human_bytes(inbound.used)} "
                                                    f"of events (at most {human_bytes(inbound.limit)} may wait): "
                                                    "the connection was closed")
                                    return
                                self._post(sid, {"type": "message", "event": event.event, "data": event.data,
                                                 "lastEventId": event.last_event_id}, size)
                    self._post(sid, {"type": "close"})  # the kernel ended the stream cleanly
                    return
                except httpx.HTTPError as exc:
                    parser.end_of_stream()
                    failures += 1
                    if failures > MAX_RETRIES:
                        self._fail(sid, f"GET {url}: {exc or type(exc).__name__}")
                        return
                self._post(sid, {"type": "connecting"})
                await asyncio.sleep(parser.retry_ms / 1000 if parser.retry_ms is not None else delay)
                delay *= RETRY_FACTOR

    async def _run_local(self, sid: int, stream: LocalPrivateEventStream) -> None:
        try:
            await stream.run()
        except EventStreamError as exc:
            self._fail(sid, str(exc))
            return
        self._post(sid, {"type": "close"})  # the handler closed the stream, or its plugin stopped

    def _fail(self, sid: int, message: str) -> None:
        self._post(sid, {"type": "error", "error": message})
        self._post(sid, {"type": "close"})

    def _post(self, sid: int, event: dict[str, Any], size: int = 0) -> None:
        then = (lambda: self.ctx.inbound.give(size)) if size else None
        self.ctx.call_js("__kplug.eventSourceEvent", sid, event, api="siyuan.client.event", then=then)
