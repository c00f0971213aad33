"""``siyuan.client.fetch``: HTTP requests to the SiYuan kernel (only to it: :mod:`.kernel`), streamed as SiYuan's
v3.8 host streams them (changes page §2.7); the kernel's plugin routes are answered by this host
(:func:`.rpc.answer_plugin_route`).

A request is three operations on the host loop, keyed by an id the JavaScript picks:

* ``fetch_open(id, path, init)`` sends the request and settles when the response headers arrive (or the
  ``timeout`` runs out) with ``{status, statusText, headers, url}``; the body stays unread on the socket.
* ``fetch_read(id)`` reads the next chunk (at most :data:`CHUNK_BYTES`) or ``None`` at the end. The JS stream pulls
  only when the plugin reads, so a plugin that stops reading leaves the rest in the kernel's socket buffers:
  at most one chunk per response is held by the host.
* ``fetch_cancel(id)`` ends the request: a pending open is cancelled, an open response's connection is closed.

Open responses are bounded per plugin (:attr:`HostConfig.max_open_fetches`), request bodies in bytes
(:attr:`HostConfig.max_fetch_body`, checked in :func:`check_body_size` only); everything is closed when the
plugin stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ...errors import HostOpError
from .. import route_answers
from ..runtime.context import Capability, Op, PluginContext
from .encoding import payload, unb64
from .kernel import kernel_headers, kernel_url
from .rpc import answer_plugin_route

__all__ = ["CHUNK_BYTES", "FETCH_TIMEOUT", "FetchOps", "check_body_size", "go_duration"]

#: seconds until the response headers when the plugin gives no ``timeout`` (SiYuan's 60 s)
FETCH_TIMEOUT = 60.0
#: the largest chunk one ``fetch_read`` returns (SiYuan's 32 KiB)
CHUNK_BYTES = 32 * 1024


def check_body_size(size: int, limit: int, path: str) -> None:
    """The one place a request body's size is checked against the host's limit."""
    if size > limit:
        raise HostOpError(f"fetch {path}: the request body is {size} bytes, the limit is {limit} "
                          "(HostConfig.max_fetch_body)")


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` prints it (``1.5s``, ``250ms``, ``1m0s``)."""
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    minutes, rest = divmod(ms, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h{minutes}m" if hours else f"{minutes}m" if minutes else "") + secs


class _Open:
    """One response whose body the plugin may still read."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.chunks: AsyncIterator[bytes] = response.aiter_bytes(CHUNK_BYTES)

    async def close(self) -> None:
        await self.response.aclose()


class FetchOps(Capability):
    """The requests of one plugin instance: those waiting for headers, and the responses still open."""

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self._client: httpx.AsyncClient | None = None
        self._opening: dict[int, asyncio.Task[httpx.Response]] = {}
        self._open: dict[int, _Open] = {}
        self._closed = False

    def async_ops(self) -> dict[str, Op]:
        return {
            "fetch_open": lambda rid, path, init=None: self.open(int(rid), str(path), init or {}),
            "fetch_read": lambda rid: self.read(int(rid)),
            "fetch_cancel": lambda rid: self.cancel(int(rid)),
        }

    async def open(self, rid: int, path: str, init: dict[str, Any]) -> dict[str, Any]:
        if not path.startswith("/"):
            raise HostOpError("path must start with /")
        url = kernel_url(self.ctx.config, path, HostOpError)
        method = str(init.get("method") or "GET").upper()
        headers = {str(k): str(v) for k, v in (init.get("headers") or {}).items()}
        body = init.get("body")
        content = unb64(body) if isinstance(body, str) and init.get("bodyIsBase64") else (
            body.encode("utf-8") if isinstance(body, str) else None)
        if content is not None:
            check_body_size(len(content), self.ctx.config.max_fetch_body, path)
        if method in ("GET", "HEAD", "OPTIONS"):
            content = None
        route = route_answers.match(method, path)
        if route is not None:  # the kernel plugins live here, not in the kernel at siyuan_url
            return await answer_plugin_route(self.ctx, route, path, content, method, headers)
        limit = self.ctx.config.max_open_fetches
        if len(self._open) + len(self._opening) >= limit:
            raise HostOpError(f"fetch {path}: this plugin already has {limit} responses open "
                              "(HostConfig.max_open_fetches); read their bodies to the end or cancel them")
        if self._closed:
            raise HostOpError("context canceled")
        headers.update(kernel_headers(self.ctx.config))
        timeout = init.get("timeout")
        timeout = FETCH_TIMEOUT if timeout is None else float(timeout)
        client = self._http()
        request = client.build_request(method, url, headers=headers, content=content)
        task = asyncio.get_running_loop().create_task(client.send(request, stream=True))
        self._opening[rid] = task
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout or None)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            self._opening.pop(rid, None)
        if not done:
            task.cancel()
            raise HostOpError(f"request timed out after {go_duration(timeout)}: {method} {path}")
        if task.cancelled():
            raise HostOpError("context canceled")
        failure = task.exception()
        if isinstance(failure, httpx.HTTPError):
            raise HostOpError(f"{method} {path}: {failure}")
        response = task.result()
        if self._closed:
            await response.aclose()
            raise HostOpError("context canceled")
        self._open[rid] = _Open(response)
        return {"url": path, "status": response.status_code, "headers": _joined(response.headers),
                "statusText": f"{response.status_code} {response.reason_phrase}".strip(), "id": rid}

    async def read(self, rid: int) -> dict[str, str] | None:
        held = self._open.get(rid)
        if held is None:
            return None
        try:
            chunk = await anext(held.chunks, None)
        except (httpx.HTTPError, httpx.StreamError) as exc:
            self._open.pop(rid, None)
            await held.close()
            raise HostOpError(f"reading the response body: {exc}") from None
        if chunk is None:
            self._open.pop(rid, None)
            await held.close()
            return None
        return payload(chunk)

    async def cancel(self, rid: int) -> None:
        opening = self._opening.pop(rid, None)
        if opening is not None:
            opening.cancel()
        held = self._open.pop(rid, None)
        if held is not None:
            await held.close()

    def close_all(self) -> None:
        """The plugin is stopping: cancel the requests waiting for headers and close every open response."""
        self._closed = True
        if self._client is None or self.ctx.loop.is_closed():  # nothing was ever sent
            return
        asyncio.run_coroutine_threadsafe(self._close_all(), self.ctx.loop)

    async def _close_all(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
        self._opening.clear()
        held, self._open = list(self._open.values()), {}
        for one in held:
            await one.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None), follow_redirects=False, trust_env=False)
        return self._client


def _joined(headers: httpx.Headers) -> dict[str, str]:
    """Response headers as SiYuan gives them: canonical names, repeated values joined with ``", "``."""
    joined: dict[str, str] = {}
    for key, value in headers.multi_items():
        canon = "-".join(part.capitalize() for part in key.split("-"))
        joined[canon] = f"{joined[canon]}, {value}" if canon in joined else value
    return joined
