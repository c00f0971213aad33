"""The asyncio client: the same API as :class:`kplug_lab.client.Client`, with coroutines."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import websockets.asyncio.client
import websockets.exceptions

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

__all__ = ["AsyncAdminSocket", "AsyncBatch", "AsyncClient", "AsyncPluginSocket"]


class AsyncBatch(BaseBatch):
    """Collects calls and notifications; ``await batch.send()`` sends them as one JSON-RPC batch."""

    async def send(self) -> list[Any]:
        """One entry per :meth:`call`, in order: the result, or the ``RPCError`` that call got (not raised)."""
        return self._entries.outcomes(await self._send(self._requests()))


class AsyncClient(BaseClient):
    """An asyncio JSON-RPC client for one kplug_lab server; see :class:`kplug_lab.client.Client`."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0,
                 history: CallHistory | None = None) -> None:
        super().__init__(url, token, timeout=timeout, history=history)
        self._http = httpx.AsyncClient(base_url=self.endpoint.url, headers=self.endpoint.headers, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _post(self, path: str, body: Any, target: str) -> Any:
        try:
            response = await self._http.post(path, content=self._body(body), headers=JSON_CONTENT)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, target) from None
        return self._answer(response, target)

    async def _request(self, path: str, target: str, method: str, params: Any) -> Any:
        with recorded_call(self.history, target, params) as outcome:
            outcome.result = result_of(await self._post(path, make_request(method, params, next_id()), target),
                                       target)
        return outcome.result

    async def call(self, plugin: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._request(self.endpoint.plugin_path(plugin), f"{plugin}.{method}", method,
                                   make_params(args, kwargs))

    async def notify(self, plugin: str, method: str, *args: Any, **kwargs: Any) -> None:
        target = f"{plugin}.{method}"
        started = time.perf_counter()
        params = make_params(args, kwargs)
        await self._post(self.endpoint.plugin_path(plugin), make_request(method, params, None), target)
        self.history.add(record(target, params, time.perf_counter() - started))

    def batch(self, plugin: str) -> AsyncBatch:
        path = self.endpoint.plugin_path(plugin)
        return AsyncBatch(plugin, lambda reqs: self._post(path, reqs, f"{plugin} (batch)"))

    async def connect(self, plugin: str) -> AsyncPluginSocket:
        sock = AsyncPluginSocket(plugin, self.timeout, self.history)
        await sock._open(self.endpoint.ws_plugin_url(plugin), self.endpoint.headers)
        return sock

    async def admin(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._request(self.endpoint.admin_path, method, method, make_params(args, kwargs))

    async def list_plugins(self) -> list[PluginStatus]:
        return [PluginStatus.from_json(p) for p in await self.admin("kplug.list")]

    async def state(self, name: str) -> PluginStatus:
        return PluginStatus.from_json(await self.admin("kplug.state", name=name))

    async def load(self, path: str) -> PluginStatus:
        return PluginStatus.from_json(await self.admin("kplug.load", path=str(path)))

    async def unload(self, name: str) -> None:
        await self.admin("kplug.unload", name=name)

    async def reload(self, name: str) -> PluginStatus:
        return PluginStatus.from_json(await self.admin("kplug.reload", name=name))

    async def logs(self, name: str, limit: int = 200) -> list[LogEntry]:
        return [LogEntry.from_json(r) for r in await self.admin("kplug.logs", name=name, limit=limit)]

    async def stats(self) -> list[dict[str, Any]]:
        """Health of every plugin (``kplug.stats``): memory, CPU, calls, errors, latencies, restarts."""
        return list(await self.admin("kplug.stats"))

    async def tools(self) -> list[dict[str, Any]]:
        return list(await self.admin("kplug.tools"))

    async def invoke_tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(await self.admin("kplug.invokeTool", name=name, arguments=arguments or {}))

    async def eval(self, name: str, code: str) -> Any:
        return await self.admin("kplug.eval", name=name, code=code)

    async def discover(self) -> dict[str, Any]:
        return dict(await self.admin("rpc.discover"))

    async def admin_socket(self) -> AsyncAdminSocket:
        sock = AsyncAdminSocket("", self.timeout, self.history)
        await sock._open(self.endpoint.ws_admin_url(), self.endpoint.headers)
        return sock


class _AsyncSocket(BaseSocket[asyncio.Future[Any]]):
    """A JSON-RPC WebSocket with a reader task: answers are matched to calls by id, notifications go to a queue
    and to callbacks. When the socket ends, every waiting call fails at once and the notifications end."""

    def __init__(self, prefix: str, timeout: float, history: CallHistory) -> None:
        super().__init__(prefix, timeout, history)
        # None marks the end of the socket, for next_notification/notifications that are waiting on the queue
        self._queue: asyncio.Queue[Notification | None] = asyncio.Queue()

    async def _open(self, uri: str, headers: dict[str, str]) -> None:
        try:
            self._ws = await websockets.asyncio.client.connect(uri, additional_headers=headers,
                                                               open_timeout=self.timeout, max_size=None)
        except websockets.exceptions.InvalidStatus as exc:
            raise self._refused(exc, uri) from None
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise self._unreachable(uri, exc) from None
        self._reader = asyncio.ensure_future(self._read())

    def _new_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _deliver(self, note: Notification) -> None:
        self._queue.put_nowait(note)

    async def _read(self) -> None:
        reason = "the WebSocket reader was cancelled"
        try:
            async for message in self._ws:
                self._receive(message)
            reason = self._closed_by_server(self._ws.protocol.close_rcvd)
        except websockets.exceptions.ConnectionClosed as exc:
            reason = f"the WebSocket closed ({exc})"
        except Exception as exc:  # the reader must always fail the pending calls, never die silently
            reason = f"the WebSocket failed ({exc!r})"
        finally:
            self._fail_pending(reason)
            self._queue.put_nowait(None)

    async def _send(self, payload: Any, target: str) -> None:
        try:
            await self._ws.send(dumps(payload))
        except websockets.exceptions.ConnectionClosed as exc:
            raise self._send_failed(target, exc) from None

    async def _wait(self, fut: asyncio.Future[Any], target: str) -> Any:
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            raise self._no_answer(target) from None

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target = self._target(method)
        params = make_params(args, kwargs)
        id_ = next_id()
        with recorded_call(self.history, target, params) as outcome:
            try:
                fut = self._expect(id_)
                await self._send(make_request(method, params, id_), target)
                outcome.result = result_of(await self._wait(fut, target), target)
            except Exception:
                self._forget(id_)
                raise
        return outcome.result

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        await self._send(make_request(method, make_params(args, kwargs), None), self._target(method))

    def batch(self) -> AsyncBatch:
        async def send(requests: list[dict[str, Any]]) -> Any:
            futs = [self._expect(r["id"]) for r in requests if "id" in r]
            await self._send(requests, f"{self.prefix} (batch)")
            return [await self._wait(f, f"{self.prefix} (batch)") for f in futs]

        return AsyncBatch(self.prefix, send)

    async def _next(self, timeout: float) -> Notification | None:
        """The next notification, or ``None`` once the socket has ended (the end stays queued for the next
        reader); ``TimeoutError`` if nothing arrives within ``timeout`` s."""
        note = await asyncio.wait_for(self._queue.get(), timeout)
        if note is None:
            self._queue.put_nowait(None)
        return note

    async def next_notification(self, timeout: float | None = None) -> Notification:
        """The next notification not yet taken; ``ResponseTimeout`` if none arrives within ``timeout`` s,
        ``ConnectionFailed`` once the socket has ended and every notification it got has been taken."""
        wait = self.timeout if timeout is None else timeout
        try:
            note = await self._next(wait)
        except TimeoutError:
            raise ResponseTimeout(f"no notification within {wait} s") from None
        if note is None:
            raise ConnectionFailed(f"no more notifications: {self._closed_reason}")
        return note

    async def notifications(self, timeout: float) -> AsyncIterator[Notification]:
        """Notifications as they arrive, until none came for ``timeout`` s or the socket ended."""
        while True:
            try:
                note = await self._next(timeout)
            except TimeoutError:
                return
            if note is None:
                return
            yield note

    async def aclose(self) -> None:
        await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class AsyncPluginSocket(_AsyncSocket):
    async def __aenter__(self) -> AsyncPluginSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncAdminSocket(_AsyncSocket):
    async def subscribe(self, topics: list[str] | None = None) -> list[str]:
        return list(await self.call("kplug.subscribe", topics=topics or ["state", "log", "broadcast"]))

    async def __aenter__(self) -> AsyncAdminSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
