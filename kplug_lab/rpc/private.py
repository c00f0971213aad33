"""The wire half of ``/plugin/private/<name>/<path>`` (spec §3.8): reading the request, writing the response,
and the WebSocket / SSE ends of ``request.port``. :class:`~kplug_lab.rpc.handlers.PrivateHandler` uses these; what
the request and response *are* (and what a plugin may not set) is :mod:`kplug_lab.protocol.private`.

[better] choices over SiYuan, all from the spec: credentials and the server's own session cookies never reach the
plugin; urlencoded forms are parsed; multi-value response headers are appended; ``body.file`` is confined to the
plugin's storage or the workspace (404 outside, no directory listings); ``body.proxy`` refuses private, loopback
and link-local targets unless the ``kplug_proxy_allow_private`` application setting is true (tests use loopback).

Every private response carries :data:`~kplug_lab.protocol.private.PAGE_CSP` (:func:`apply_page_policy`, on every
flush), a ``sandbox`` policy without ``allow-same-origin``, which the plugin cannot remove or weaken; host-owned
headers and cookies that would shadow the server's are dropped. See docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import functools
import ipaddress
import logging
import mimetypes
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import tornado.httpclient
import tornado.httputil
import tornado.iostream
import tornado.netutil
import tornado.simple_httpclient
import tornado.web
import tornado.websocket

from ..errors import KplugError
from ..host.private_ports import Deliver, PortError
from ..host.runtime.bounds import MAX_FETCH_BODY, MAX_PENDING_BYTES, human_bytes, utf8_size
from ..protocol import private as model
from ..protocol.private import HOP_BY_HOP, PAGE_CSP, UNSATISFIABLE, ResponseError, UploadedFile, host_owned_header
from .secrets_in_logs import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX

if TYPE_CHECKING:
    from ..host.runtime.api import BodyStream

__all__ = ["EventStream", "PrivateSocket", "ResponseError", "SocketPort", "apply_page_policy", "request_object",
           "write_response"]

log = logging.getLogger("kplug_lab.rpc")

_PROXY_DIAL_TIMEOUT = 30.0
_PROXY_TOTAL_TIMEOUT = 3600.0


# ---- request -----------------------------------------------------------------------------------------------

def _max_pending(handler: tornado.web.RequestHandler) -> int:
    """Bytes a plugin may have queued for one client connection (``HostConfig.max_pending_bytes``)."""
    return int(handler.settings.get("kplug_max_pending_bytes") or MAX_PENDING_BYTES)


def _headers(headers: tornado.httputil.HTTPHeaders) -> list[tuple[str, str]]:
    """The request's headers, without a kplug client's token offered as a WebSocket subprotocol: not the plugin's
    (the other credentials are left out by :func:`kplug_lab.protocol.private.request_object`)."""
    out = []
    for key, value in headers.get_all():
        if key.lower() == "sec-websocket-protocol":
            value = ", ".join(v.strip() for v in value.split(",") if not v.strip().startswith(TOKEN_SUBPROTOCOL_PREFIX))
            if not value:
                continue
        out.append((key, value))
    return out


def request_object(handler: tornado.web.RequestHandler, name: str, path: str) -> dict[str, Any]:
    """The JSON of §3.8.1 for this handler's request (:func:`kplug_lab.protocol.private.request_object`)."""
    req = handler.request
    files = {field: [UploadedFile(f.filename, f.content_type, f.body) for f in uploaded]
             for field, uploaded in req.files.items()}
    return model.request_object(
        name, path, method=req.method or "GET", uri=req.uri or "", version=req.version, host=req.host,
        remote_ip=req.remote_ip or "", headers=_headers(req.headers),
        cookies=[(morsel.key, morsel.value) for morsel in req.cookies.values()], query=req.query_arguments,
        body=req.body or b"", form=req.body_arguments, files=files)


# ---- HTTP response -----------------------------------------------------------------------------------------

def apply_page_policy(handler: tornado.web.RequestHandler) -> None:
    """Put the host's policy on a private response, over whatever was set before: one sandbox CSP, nothing
    report-only. Called on every flush, so nothing the plugin (or an upstream it proxies) set survives."""
    handler.clear_header("Content-Security-Policy-Report-Only")
    handler.set_header("Content-Security-Policy", PAGE_CSP)


async def write_response(handler: tornado.web.RequestHandler, name: str, res: Any,
                         gone: asyncio.Event | None = None) -> None:
    """Serve the value the ``http`` handler returned (§3.8.2). Raises :class:`ResponseError` before anything
    was written. ``gone`` is set when the client leaves (a ``body.stream`` is then cancelled)."""
    response = model.check_response(name, res, model.cookie_scope(handler.request.path, name))
    for key in response.ignored_headers:
        log.info("[plugin:%s] response header %s is the host's: ignored", name, key)
    for key, value in response.headers:
        try:
            if value is None:
                handler.clear_header(key)
            else:
                handler.add_header(key, value)
        except ValueError:
            raise ResponseError(500, f"[plugin:{name}] invalid value for response header {key!r}") from None
    if response.dropped_cookies:
        log.warning("[plugin:%s] a cookie named like the server's session cookies was dropped", name)
    for cookie in response.set_cookies:
        handler.add_header("Set-Cookie", cookie)
    status, body = response.status, response.body
    if response.body_kind == "data":
        ctype, text = model.data_body(body, handler.get_query_argument("callback", ""))
        handler.set_status(status or 200)
        handler.set_header("Content-Type", ctype)
        handler.finish(text)
    elif response.body_kind == "file":
        await _write_file(handler, name, body)
    elif response.body_kind == "string":
        handler.set_status(status or 200)
        handler.set_header("Content-Type", "text/plain; charset=utf-8")
        handler.finish(model.go_format(str(body.get("format", "")), body.get("values") or []))
    elif response.body_kind == "raw":
        ctype, data = model.raw_body(body)
        handler.set_status(status or 200)
        handler.set_header("Content-Type", ctype)
        handler.finish(data)
    elif response.body_kind == "redirect":
        handler.redirect(body, status=status)
    elif response.body_kind == "proxy":
        await _proxy(handler, body)
    elif response.body_kind == "stream":
        await _write_stream(handler, name, status, body, gone or asyncio.Event())
    else:
        handler.set_status(status or 200)
        handler.finish()


async def cancel_body_stream(res: Any) -> None:
    """Cancel the ``body.stream`` of a handler's response that will not be written (its client left)."""
    body = res.get("body") if isinstance(res, dict) else None
    stream = body.get("stream") if isinstance(body, dict) else None
    reader = stream.get("reader") if isinstance(stream, dict) else None
    if reader is not None:
        await reader.cancel("client disconnected")


async def _write_stream(handler: tornado.web.RequestHandler, name: str, status: int, spec: Any,
                        gone: asyncio.Event) -> None:
    """``body.stream`` (changes page §2.8): status and headers at once, then each chunk flushed as the plugin
    produces it. The next chunk is pulled only once the last one was written to the socket, so a client that reads
    slowly slows the plugin's stream; a client that leaves cancels it."""
    reader: BodyStream | None = spec.get("reader") if isinstance(spec, dict) else None
    if reader is None:
        raise ResponseError(500, f"[plugin:{name}] body.stream needs a stream")
    handler.set_status(status or 200)
    handler.set_header("Content-Type", str(spec.get("contentType") or "application/octet-stream"))
    handler.set_header("X-Accel-Buffering", "no")
    await handler.flush()
    left = asyncio.ensure_future(gone.wait())
    try:
        while True:
            pulled = asyncio.ensure_future(reader.read())
            await asyncio.wait({pulled, left}, return_when=asyncio.FIRST_COMPLETED)
            if left.done():
                pulled.cancel()
                await reader.cancel("client disconnected")
                return
            chunk = pulled.result()
            if chunk is None:
                break
            if chunk:
                handler.write(chunk)
                await handler.flush()
    except tornado.iostream.StreamClosedError:
        await reader.cancel("client disconnected")
        return
    except Exception as exc:  # the plugin's stream failed after the headers went: the client sees a cut body
        log.warning("[plugin:%s] body.stream failed: %s", name, exc)
        handler.request.connection.close()  # type: ignore[union-attr]
        return
    finally:
        left.cancel()
    handler.finish()


async def _write_file(handler: tornado.web.RequestHandler, name: str, spec: Any) -> None:
    """A file the host found inside the workspace or the plugin's storage (``resolved``), else SiYuan's 404: the
    same answer for a path outside and a missing file (changes page §2.8)."""
    path = spec.get("resolved") if isinstance(spec, dict) else None
    if not isinstance(path, str):
        raise ResponseError(404, f"[plugin:{name}] file not found")
    stat = os.stat(path)
    modified = datetime.datetime.fromtimestamp(int(stat.st_mtime), datetime.UTC)
    handler.set_header("Last-Modified", email.utils.format_datetime(modified, usegmt=True))
    handler.set_header("Accept-Ranges", "bytes")
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    handler.set_header("Content-Type", ctype)
    name = spec.get("name")
    if isinstance(name, str) and name:
        handler.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
    since = handler.request.headers.get("If-Modified-Since")
    if since:
        try:
            if email.utils.parsedate_to_datetime(since) >= modified:
                handler.set_status(304)
                handler.finish()
                return
        except (TypeError, ValueError):
            pass
    start, end = 0, stat.st_size
    ranged = model.single_range(handler.request.headers.get("Range", ""), stat.st_size)
    if ranged == UNSATISFIABLE:
        handler.set_status(416)
        handler.set_header("Content-Range", f"bytes */{stat.st_size}")
        handler.finish()
        return
    if ranged is not None:
        start, end = ranged
        handler.set_status(206)
        handler.set_header("Content-Range", f"bytes {start}-{end - 1}/{stat.st_size}")
    handler.set_header("Content-Length", str(end - start))
    if handler.request.method == "HEAD":
        handler.finish()
        return
    with open(path, "rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = f.read(min(remaining, 64 * 1024))
            if not chunk:
                break
            remaining -= len(chunk)
            handler.write(chunk)
            await handler.flush()
    handler.finish()


class _GuardedResolver(tornado.netutil.Resolver):
    """[better] Resolves like the default resolver, but refuses hosts with any non-public address, so a proxy
    target (or a redirect it follows) cannot reach the host's own network."""

    def initialize(self, allow_private: bool = False) -> None:
        self._inner = tornado.netutil.DefaultLoopResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC,
                      ) -> list[tuple[int, Any]]:
        addresses = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for _family, address in addresses:
                ip = ipaddress.ip_address(address[0])
                if not ip.is_global or ip.is_multicast:
                    raise OSError(f"{host} resolves to the non-public address {ip}: refused")
        return addresses


class _ProxyCutOff(KplugError):
    """Raised in the proxy's body callback to end the upstream request (too large, or a client too slow)."""


async def _proxy(handler: tornado.web.RequestHandler, spec: Any) -> None:
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        raise ResponseError(400, "proxy.url must be a string")
    url = spec["url"]
    if urlsplit(url).scheme not in ("http", "https"):
        raise ResponseError(400, "only http/https proxy url is allowed")
    method = str(spec.get("method") or handler.request.method).upper()
    if method not in ("GET", "HEAD"):
        raise ResponseError(400, f"only GET/HEAD proxy method is allowed, got {method}")
    upstream_headers = tornado.httputil.HTTPHeaders()
    for key, values in (spec.get("headers") or {}).items():
        if key.lower() in HOP_BY_HOP or key.lower() == "host":
            continue
        for v in values if isinstance(values, list) else [values]:
            upstream_headers.add(key, str(v))
    allow_private = bool(handler.settings.get("kplug_proxy_allow_private", False))
    client = tornado.simple_httpclient.SimpleAsyncHTTPClient(
        force_instance=True, resolver=_GuardedResolver(allow_private=allow_private))
    started = False
    status_line: list[tornado.httputil.ResponseStartLine] = []
    received = tornado.httputil.HTTPHeaders()
    max_body = int(handler.settings.get("kplug_max_fetch_body") or MAX_FETCH_BODY)
    max_pending = _max_pending(handler)
    relayed = 0
    pending = 0  # relayed, not yet written to the client's socket
    too_large: list[str] = []

    def on_header(line: str) -> None:
        if not status_line:
            status_line.append(tornado.httputil.parse_response_start_line(line.strip()))
        elif line.strip():
            received.parse_line(line)

    def start() -> None:
        nonlocal started
        if started:
            return
        started = True
        handler.set_status(status_line[0].code if status_line else 502)
        forwarded = [(k, v) for k, v in received.get_all()
                     if k.lower() not in HOP_BY_HOP and not host_owned_header(k)]
        for key, _value in forwarded:
            handler.clear_header(key)  # upstream headers override the handler's
        for key, value in forwarded:
            handler.add_header(key, value)

    def flushed(size: int, _fut: asyncio.Future[None]) -> None:
        nonlocal pending
        pending -= size

    def on_chunk(chunk: bytes) -> None:
        nonlocal relayed, pending
        if too_large:
            return
        relayed += len(chunk)
        length = received.get("Content-Length", "")
        if not started and length.isdigit() and int(length) > max_body:
            too_large.append(f"the proxied response is {human_bytes(int(length))}, more than the "
                             f"{human_bytes(max_body)} a proxy body may relay (max_fetch_body)")
        elif relayed > max_body:
            too_large.append(f"the proxied response passed the {human_bytes(max_body)} a proxy body may relay "
                             "(max_fetch_body)")
        elif pending + len(chunk) > max_pending and pending:
            too_large.append(f"the client did not read {human_bytes(pending)} of the proxied response")
        if too_large:
            raise _ProxyCutOff(too_large[0])  # ends the upstream request
        start()
        pending += len(chunk)
        handler.write(chunk)
        handler.flush().add_done_callback(functools.partial(flushed, len(chunk)))

    request = tornado.httpclient.HTTPRequest(
        url, method=method, headers=upstream_headers, follow_redirects=True, max_redirects=10,
        connect_timeout=_PROXY_DIAL_TIMEOUT, request_timeout=_PROXY_TOTAL_TIMEOUT, decompress_response=False,
        header_callback=on_header, streaming_callback=on_chunk)
    try:
        await client.fetch(request, raise_error=False)
    except Exception as exc:
        if too_large:
            if not started:
                raise ResponseError(502, f"proxy request failed: {too_large[0]}") from None
            log.warning("proxy to %s cut off: %s", url, too_large[0])
            handler.request.connection.close()  # type: ignore[union-attr]
            return
        if not started:
            raise ResponseError(502, f"proxy request failed: {exc}") from None
        log.info("proxy to %s failed after the response started: %s", url, exc)
    finally:
        client.close()
    if not started and not status_line:
        raise ResponseError(502, "proxy request failed: no response")
    start()
    handler.finish()


# ---- the ws slot's port ------------------------------------------------------------------------------------

class PrivateSocket(tornado.websocket.WebSocketHandler):
    """The accepted connection of a ``ws`` slot request, made by ``PrivateHandler`` for the same request once it
    has authenticated it. As in SiYuan, the plugin's handler runs after the upgrade (in :meth:`open`, given
    :attr:`port`); if it fails, the connection is dropped without a close frame."""

    def initialize(self, run_handler: Callable[[SocketPort], Awaitable[None]]) -> None:
        self._run_handler = run_handler
        self._transforms = []  # normally set by RequestHandler._execute; this handler's get() is called directly
        self.port = SocketPort(self)
        self._protocol: tornado.websocket.WebSocketProtocol | None = None

    async def open(self, *args: Any, **kwargs: Any) -> None:
        self._protocol = self.ws_connection
        self.set_nodelay(True)  # frames the plugin sends in a row must not wait for delayed ACKs (ADR 0004)
        await self._run_handler(self.port)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        log.info("siyuan.server.private.ws handler failed: %s", value)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """``kplug`` when a kplug client offered it (its token rides in ``kplug.token.<base64url>``)."""
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if isinstance(message, bytes):
            return self.port.post({"type": "binary", "data": base64.b64encode(message).decode("ascii")})
        return self.port.post({"type": "text", "data": message})  # the plugin takes it before the next is read

    def on_ping(self, data: bytes) -> None:
        self.port.post({"type": "ping", "data": data.decode("utf-8", "replace")})

    def on_pong(self, data: bytes) -> None:
        self.port.post({"type": "pong", "data": data.decode("utf-8", "replace")})

    def on_close(self) -> None:
        clean = self._protocol is not None and bool(getattr(self._protocol, "client_terminated", False))
        code = self.close_code if self.close_code is not None else (1005 if clean else 1006)
        if not clean:
            self.port.post({"type": "error", "error": "the connection ended without a close handshake"})
        self.port.post({"type": "close", "code": code, "reason": (self.close_reason or "") if clean else "",
                        "wasClean": clean})


class SocketPort:
    """:class:`~kplug_lab.host.private_ports.WebSocketPort` over a :class:`PrivateSocket`."""

    def __init__(self, socket: PrivateSocket) -> None:
        self._socket = socket
        self._deliver: Deliver | None = None
        self._pending_bytes = 0  # sent by the plugin, not yet written to the client's socket
        self._cut_off = False

    def attach(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def post(self, event: dict[str, Any]) -> Awaitable[None] | None:
        return self._deliver(event) if self._deliver is not None else None

    async def send(self, data: str | bytes) -> None:
        """Send one message. Messages the client has not read yet are bounded in bytes: past the bound the client
        is cut off (closed with 1008) and this send fails, rather than the host buffering for it."""
        if self._cut_off:
            raise PortError("WebSocket is closed: the client read too slowly (send queue full)")
        size = len(data) if isinstance(data, bytes) else utf8_size(data)
        limit = _max_pending(self._socket)
        if self._pending_bytes and self._pending_bytes + size > limit:
            self._cut_off = True
            log.warning("closing a private WebSocket: its client did not read %s", human_bytes(self._pending_bytes))
            self._socket.close(1008, "send queue full: the client reads too slowly")
            raise PortError(f"WebSocket send queue full: the client did not read {human_bytes(self._pending_bytes)} "
                            f"(at most {human_bytes(limit)} may wait); the connection was closed")
        self._pending_bytes += size
        try:
            await self._socket.write_message(data, binary=isinstance(data, bytes))
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            raise PortError("WebSocket is closed") from None
        finally:
            self._pending_bytes -= size

    async def ping(self, data: bytes) -> None:
        try:
            self._socket.ping(data)
        except tornado.websocket.WebSocketClosedError:
            raise PortError("WebSocket is closed") from None

    async def pong(self, data: bytes) -> None:
        conn = self._socket.ws_connection
        if conn is None or conn.is_closing():
            raise PortError("WebSocket is closed")
        try:
            # tornado has no public call for an unsolicited pong (RFC 6455 §5.5.3 allows one)
            await conn._write_frame(True, 0xA, data)  # type: ignore[attr-defined]
        except tornado.iostream.StreamClosedError:
            raise PortError("WebSocket is closed") from None

    async def close(self, code: int, reason: str) -> None:
        self._socket.close(code, reason)


# ---- the es slot's port ------------------------------------------------------------------------------------

class EventStream:
    """The SSE response of an ``es`` slot request. Headers go out with the first event (as in SiYuan).
    Implements :class:`~kplug_lab.host.private_ports.EventStreamPort`."""

    def __init__(self, handler: tornado.web.RequestHandler) -> None:
        self.handler = handler
        self.started = False
        self.client_gone = False
        self.ended = asyncio.Event()
        self._deliver: Deliver | None = None
        self.pending_bytes = 0  # events written, not yet flushed to the client's socket
        self._max_pending = _max_pending(handler)

    def attach(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def _start(self) -> None:
        if not self.started:
            self.started = True
            stream = getattr(self.handler.request.connection, "stream", None)
            if stream is not None:  # events flushed one after another must not wait for delayed ACKs (ADR 0004)
                stream.set_nodelay(True)
            self.handler.set_status(200)
            self.handler.set_header("Content-Type", "text/event-stream;charset=utf-8")
            self.handler.set_header("Cache-Control", "no-cache")

    def send_event(self, text: str) -> None:
        """Write one event. Events the client has not read are bounded in bytes: past the bound the client is cut
        off (the connection closed; the plugin's ``onclose`` runs), never buffered."""
        if self.ended.is_set():
            return
        size = utf8_size(text)
        if self.pending_bytes and self.pending_bytes + size > self._max_pending:
            log.warning("closing an event stream: its client did not read %s", human_bytes(self.pending_bytes))
            self.lost()
            self.handler.request.connection.close()  # type: ignore[union-attr]
            return
        self._start()
        self.pending_bytes += size
        self.handler.write(text)
        self.handler.flush().add_done_callback(functools.partial(self._flushed, size))

    def _flushed(self, size: int, fut: asyncio.Future[None]) -> None:
        self.pending_bytes -= size
        if fut.exception() is not None:
            self.lost()

    def end(self) -> None:
        self.ended.set()

    def lost(self) -> None:
        self.client_gone = True
        self.ended.set()

    async def finish(self) -> None:
        """After :meth:`end` (or a lost client): finish the response and tell the plugin (``onclose``)."""
        if not self.client_gone and not self.handler._finished:
            self._start()
            self.handler.finish()
        if self._deliver is not None:
            await self._deliver({"type": "close"})
