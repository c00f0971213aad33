"""The wire half of ``/plugin/private/<name>/<path>`` (spec §3.8): the request object, the HTTP response kinds,
and the WebSocket / SSE ends of ``request.port``. :class:`~kplug_lab.rpc.handlers.PrivateHandler` uses these.

[better] choices over SiYuan, all from the spec: Basic credentials, ``Authorization``/``Cookie``/``X-Auth-Token``
headers and the server's own session cookies never reach the plugin; urlencoded forms are parsed; multi-value
response headers are appended; ``body.file`` is confined to the plugin's storage or the workspace (404
outside, no directory listings); ``body.proxy`` refuses private, loopback and link-local targets unless the
``kplug_proxy_allow_private`` application setting is true (tests use loopback).

Plugin content is untrusted content served on a privileged origin (Jupyter's, where the user is logged in by
cookie; or kplug's own). So every private response carries :data:`PAGE_CSP`, a ``sandbox`` policy without
``allow-same-origin``: the page runs in an opaque origin, with no access to the server's cookies or same-origin
APIs. The plugin cannot remove, weaken or duplicate it; headers that change how the browser treats the origin
(:func:`host_owned_header`) are the host's; cookies cannot shadow the server's session cookies and are scoped to
``/plugin/private/<name>/`` (:func:`plugin_cookie`). See docs/sandbox.md.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.utils
import ipaddress
import json
import logging
import mimetypes
import os
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import tornado.httpclient
import tornado.httputil
import tornado.iostream
import tornado.netutil
import tornado.simple_httpclient
import tornado.web
import tornado.websocket

from ..host.private_ports import Deliver, PortError
from .secrets_in_logs import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX

__all__ = ["PAGE_CSP", "EventStream", "PrivateSocket", "ResponseError", "SocketPort", "apply_page_policy",
           "cookie_scope", "go_format", "host_owned_header", "plugin_cookie", "request_object", "write_response"]

log = logging.getLogger("kplug_lab.rpc")

#: the server's own session cookies (SiYuan's, Jupyter's XSRF and login cookies) are not the plugin's business
_SESSION_COOKIE = re.compile(r"^(siyuan|_xsrf|username-.*)$")
_CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "x-auth-token"})
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                         "transfer-encoding", "upgrade", "proxy-connection", "set-cookie", "content-length"})
#: what a plugin's page may do in the browser: scripts, forms, popups and downloads, all inside an opaque origin
#: (never ``allow-same-origin``); jupyter-server serves user files under ``sandbox allow-scripts`` likewise
PAGE_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
#: response headers only the host sets: they decide how the browser treats the server's origin
_HOST_OWNED = re.compile(
    r"^(content-security-policy(-report-only)?|set-cookie|set-cookie2|access-control-.*|cross-origin-.*"
    r"|clear-site-data|service-worker-allowed|strict-transport-security|origin-agent-cluster"
    r"|public-key-pins(-report-only)?)$", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: session cookies of the servers kplug_lab runs in (and their prefixed forms): a plugin may not shadow them
_SERVER_COOKIE = re.compile(r"^(__host-|__secure-)?(siyuan|_xsrf|username-.*|jupyterhub-.*|kplug.*)$", re.IGNORECASE)
_PROXY_DIAL_TIMEOUT = 30.0
_PROXY_TOTAL_TIMEOUT = 3600.0
_SAME_SITE = {2: "Lax", 3: "Strict", 4: "None"}


class ResponseError(Exception):
    """The plugin's response cannot be served: ``status`` and the text the client gets."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


# ---- request -----------------------------------------------------------------------------------------------

def _strings(values: dict[str, list[bytes]]) -> dict[str, list[str]]:
    return {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in values.items()}


def request_object(handler: tornado.web.RequestHandler, name: str, path: str) -> dict[str, Any]:
    """The JSON of §3.8.1 (binary parts as base64; the prelude turns them into data objects)."""
    req = handler.request
    parts = urlsplit(req.uri or "")
    headers: dict[str, list[str]] = {}
    for key, value in req.headers.get_all():
        if key.lower() == "sec-websocket-protocol":  # a kplug client's token rides here: not the plugin's
            value = ", ".join(v.strip() for v in value.split(",") if not v.strip().startswith(TOKEN_SUBPROTOCOL_PREFIX))
            if not value:
                continue
        if key.lower() not in _CREDENTIAL_HEADERS:
            headers.setdefault(key, []).append(value)
    cookies: dict[str, list[str]] = {}
    for morsel in req.cookies.values():
        if not _SESSION_COOKIE.match(morsel.key):
            cookies.setdefault(morsel.key, []).append(morsel.value)
    query = {k: v for k, v in _strings(req.query_arguments).items() if k != "token"}
    ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
    body: dict[str, Any] = {"form": None, "dataBase64": base64.b64encode(req.body or b"").decode("ascii")}
    if ctype == "multipart/form-data":
        body = {"form": {"values": _strings(req.body_arguments), "files": {
            field: [{"filename": f.filename, "size": len(f.body), "dataBase64": base64.b64encode(f.body).decode(),
                     "headers": {"Content-Disposition": [f'form-data; name="{field}"; filename="{f.filename}"'],
                                 "Content-Type": [f.content_type]}} for f in files]
            for field, files in req.files.items()}}, "data": None}
    elif ctype == "application/x-www-form-urlencoded":  # [better] SiYuan loses these
        body["form"] = {"values": _strings(req.body_arguments), "files": {}}
    sub = "/" + path
    return {
        "url": {"user": None, "host": req.host, "path": unquote(parts.path), "pathname": parts.path,
                "fragment": "", "hash": "", "search": parts.query, "query": query},
        "request": {"method": req.method, "uri": req.uri, "proto": req.version,
                    "protoMajor": 1, "protoMinor": 0 if req.version == "HTTP/1.0" else 1,
                    "headers": headers, "cookies": cookies,
                    "contentType": ctype, "contentLength": len(req.body) if req.body else -1,
                    "referer": req.headers.get("Referer", ""), "userAgent": req.headers.get("User-Agent", ""),
                    "body": body},
        "context": {"path": sub, "fullPath": "/plugin/private/:name/*path", "clientIp": req.remote_ip,
                    "remoteIp": req.remote_ip, "remoteAddr": req.remote_ip,
                    "params": {"name": [name], "path": [sub]}},
        "port": None,
    }


# ---- HTTP response -----------------------------------------------------------------------------------------

def host_owned_header(name: str) -> bool:
    """True for a response header only the host may set (CSP, cookies, CORS, cross-origin isolation, ...)."""
    return bool(_HOST_OWNED.match(name))


def apply_page_policy(handler: tornado.web.RequestHandler) -> None:
    """Put the host's policy on a private response, over whatever was set before: one sandbox CSP, nothing
    report-only. Called on every flush, so nothing the plugin (or an upstream it proxies) set survives."""
    handler.clear_header("Content-Security-Policy-Report-Only")
    handler.set_header("Content-Security-Policy", PAGE_CSP)


def cookie_scope(handler: tornado.web.RequestHandler, name: str) -> str:
    """The path a plugin's cookies are confined to: ``<base>/plugin/private/<name>/`` of this request."""
    path = handler.request.path
    marker = f"/plugin/private/{quote(name)}"
    at = path.find(marker)
    return (path[:at] if at > 0 else "") + marker + "/"


def plugin_cookie(record: Any, scope: str) -> str | None:
    """A Go ``http.Cookie`` record (member names case-insensitive) as a ``Set-Cookie`` value, confined to
    ``scope`` ([better]: no ``Domain``; a path outside the plugin's own becomes its own), or None for a cookie
    that would shadow the server's session cookies."""
    if not isinstance(record, dict):
        raise ResponseError(500, "invalid response format")
    c = {str(k).lower(): v for k, v in record.items()}
    name = str(c.get("name") or "")
    if not name or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
        raise ResponseError(500, f"invalid cookie name {name!r}")
    if _SERVER_COOKIE.match(name):
        return None
    value = str(c.get("value") or "")
    if not re.fullmatch(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*", value):
        raise ResponseError(500, f"invalid cookie value for {name!r}")
    path = str(c.get("path") or "")
    if not (path == scope.rstrip("/") or path.startswith(scope)) or not re.fullmatch(r"[\x21-\x3a\x3c-\x7e]*", path):
        path = scope
    out = [f'{name}="{value}"' if c.get("quoted") else f"{name}={value}", f"Path={path}"]
    expires = c.get("expires")
    if isinstance(expires, str) and expires and not expires.startswith("0001-01-01"):
        try:
            when = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            raise ResponseError(500, f"invalid cookie expiry {expires!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        out.append("Expires=" + email.utils.format_datetime(when.astimezone(datetime.UTC), usegmt=True))
    max_age = c.get("maxage")
    if isinstance(max_age, (int, float)) and not isinstance(max_age, bool) and max_age:
        out.append(f"Max-Age={int(max_age)}" if max_age > 0 else "Max-Age=0")
    if c.get("httponly"):
        out.append("HttpOnly")
    if c.get("secure"):
        out.append("Secure")
    if c.get("samesite") in _SAME_SITE:
        out.append(f"SameSite={_SAME_SITE[c['samesite']]}")
    if c.get("partitioned"):
        out.append("Partitioned")
    return "; ".join(out)


def _plugin_headers(handler: tornado.web.RequestHandler, name: str, headers: dict[str, Any]) -> None:
    for key, values in headers.items():
        if not isinstance(key, str) or not _HEADER_NAME.match(key):
            raise ResponseError(500, f"[plugin:{name}] invalid response header name {key!r}")
        if host_owned_header(key) or key.lower() in _HOP_BY_HOP:
            log.info("[plugin:%s] response header %s is the host's: ignored", name, key)
            continue
        for v in values:
            try:
                if v == "":
                    handler.clear_header(key)
                else:
                    handler.add_header(key, str(v))  # [better] multi-value headers are appended
            except ValueError:
                raise ResponseError(500, f"[plugin:{name}] invalid value for response header {key!r}") from None


async def write_response(handler: tornado.web.RequestHandler, name: str, res: Any) -> None:
    """Serve the value the ``http`` handler returned (§3.8.2). Raises :class:`ResponseError` before anything
    was written."""
    if not isinstance(res, dict):
        raise ResponseError(500, f"[plugin:{name}] Error occurred while handling HTTP request: invalid response format")
    status = res.get("statusCode") or 0
    if isinstance(status, bool) or not isinstance(status, (int, float)) or int(status) != status:
        raise ResponseError(500, "invalid response format")
    status = int(status)
    headers = res.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, list) for v in headers.values()):
        raise ResponseError(500, "invalid response format")
    cookies = res.get("cookies") or []
    if not isinstance(cookies, list):
        raise ResponseError(500, "invalid response format")
    scope = cookie_scope(handler, name)
    set_cookies = [plugin_cookie(c, scope) for c in cookies]
    _plugin_headers(handler, name, headers)
    for cookie in set_cookies:
        if cookie is None:
            log.warning("[plugin:%s] a cookie named like the server's session cookies was dropped", name)
        else:
            handler.add_header("Set-Cookie", cookie)
    body = res.get("body") or {}
    if not isinstance(body, dict):
        raise ResponseError(500, "invalid response format")
    if body.get("data") is not None:
        _write_data(handler, status, body["data"])
    elif body.get("file") is not None:
        await _write_file(handler, body["file"])
    elif body.get("string") is not None:
        handler.set_status(status or 200)
        handler.set_header("Content-Type", "text/plain; charset=utf-8")
        handler.finish(go_format(str(body["string"].get("format", "")), body["string"].get("values") or []))
    elif body.get("raw") is not None:
        raw = body["raw"]
        data = base64.b64decode(raw.get("data", "")) if raw.get("base64") else str(raw.get("data", "")).encode()
        handler.set_status(status or 200)
        handler.set_header("Content-Type", raw.get("contentType") or "application/octet-stream")
        handler.finish(data)
    elif body.get("redirect") is not None:
        if not (300 <= status <= 308 or status == 201):
            raise ResponseError(500, f"[plugin:{name}] invalid redirect status {status}: use 300-308 or 201")
        location = body["redirect"].get("location") if isinstance(body["redirect"], dict) else None
        if not isinstance(location, str) or not location:
            raise ResponseError(500, f"[plugin:{name}] redirect.location must be a non-empty string")
        handler.redirect(location, status=status)
    elif body.get("proxy") is not None:
        await _proxy(handler, body["proxy"])
    else:
        handler.set_status(status or 200)
        handler.finish()


def _write_data(handler: tornado.web.RequestHandler, status: int, spec: Any) -> None:
    kind = spec.get("type", "JSON") if isinstance(spec, dict) else None
    data = spec.get("data") if isinstance(spec, dict) else None
    ctype = "application/json; charset=utf-8"
    if kind in ("JSON", "AsciiJSON", "IndentedJSON", "PureJSON", "SecureJSON"):
        text = json.dumps(data, indent=4 if kind == "IndentedJSON" else None, ensure_ascii=kind == "AsciiJSON",
                          separators=None if kind == "IndentedJSON" else (",", ":"))
        if kind == "SecureJSON" and isinstance(data, list):
            text = "while(1);" + text
    elif kind == "JSONP":
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        callback = handler.get_query_argument("callback", "")
        if callback:
            text = f"{callback}({text});"
            ctype = "application/javascript; charset=utf-8"
    else:
        raise ResponseError(500, "Unsupported serialized data type")
    handler.set_status(status or 200)
    handler.set_header("Content-Type", ctype)
    handler.finish(text)


async def _write_file(handler: tornado.web.RequestHandler, spec: Any) -> None:
    """A file the host found inside the plugin's storage or the workspace (``resolved``), else 404."""
    path = spec.get("resolved") if isinstance(spec, dict) else None
    if not isinstance(path, str):
        raise ResponseError(404, "404 page not found")
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
    ranged = _single_range(handler.request.headers.get("Range", ""), stat.st_size)
    if ranged == _UNSATISFIABLE:
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


_UNSATISFIABLE = (-1, -1)


def _single_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` as a half-open range; other forms serve the whole file."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1, size) if m.group(2) else size
    else:
        start, end = max(0, size - int(m.group(2))), size
    if start >= size or start >= end:
        return _UNSATISFIABLE
    return start, end


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
        if key.lower() in _HOP_BY_HOP or key.lower() == "host":
            continue
        for v in values if isinstance(values, list) else [values]:
            upstream_headers.add(key, str(v))
    allow_private = bool(handler.settings.get("kplug_proxy_allow_private", False))
    client = tornado.simple_httpclient.SimpleAsyncHTTPClient(
        force_instance=True, resolver=_GuardedResolver(allow_private=allow_private))
    started = False
    status_line: list[tornado.httputil.ResponseStartLine] = []
    received = tornado.httputil.HTTPHeaders()

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
                     if k.lower() not in _HOP_BY_HOP and not host_owned_header(k)]
        for key, _value in forwarded:
            handler.clear_header(key)  # upstream headers override the handler's
        for key, value in forwarded:
            handler.add_header(key, value)

    def on_chunk(chunk: bytes) -> None:
        start()
        handler.write(chunk)
        handler.flush()

    request = tornado.httpclient.HTTPRequest(
        url, method=method, headers=upstream_headers, follow_redirects=True, max_redirects=10,
        connect_timeout=_PROXY_DIAL_TIMEOUT, request_timeout=_PROXY_TOTAL_TIMEOUT, decompress_response=False,
        header_callback=on_header, streaming_callback=on_chunk)
    try:
        await client.fetch(request, raise_error=False)
    except Exception as exc:
        if not started:
            raise ResponseError(502, f"proxy request failed: {exc}") from None
        log.info("proxy to %s failed after the response started: %s", url, exc)
    finally:
        client.close()
    if not started and not status_line:
        raise ResponseError(502, "proxy request failed: no response")
    start()
    handler.finish()


def go_format(fmt: str, values: list[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the values a plugin can pass (all numbers are doubles, as in SiYuan)."""
    it = iter(values)

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        try:
            v = next(it)
        except StopIteration:
            return f"%!{m.group(0)[-1]}(MISSING)"
        return v if isinstance(v, str) else json.dumps(v) if not isinstance(v, (int, float)) else f"{v:g}"

    return re.sub(r"%[-+# 0-9.]*[vsdqfgetxX%]", sub, fmt)


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

    def attach(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def post(self, event: dict[str, Any]) -> Awaitable[None] | None:
        return self._deliver(event) if self._deliver is not None else None

    async def send(self, data: str | bytes) -> None:
        try:
            await self._socket.write_message(data, binary=isinstance(data, bytes))
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            raise PortError("WebSocket is closed") from None

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
        if self.ended.is_set():
            return
        self._start()
        self.handler.write(text)
        self.handler.flush().add_done_callback(lambda f: self.lost() if f.exception() is not None else None)

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
