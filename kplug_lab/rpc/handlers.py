"""Tornado handlers for SiYuan's plugin routes (spec §5.1) and kplug_lab's admin API.

Handlers only translate the wire: every decision is the host's (:class:`kplug_lab.host.api.HostAPI`).
The logic lives in mixins over :class:`KplugHandlerBase`, so the Jupyter extension can combine the same
mixins with jupyter_server's authenticated handlers.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import inspect
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import tornado.http1connection
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket

from ..errors import INTERNAL_ERROR, KplugError, PluginCallError, PluginNotLoaded
from ..host import route_answers
from ..host.api import NO_PARAMS, HostAPI, LogRecord, PluginInfo, PluginState
from ..host.calls import NOTIFICATION, process, start
from ..host.runtime.bounds import MAX_PENDING_BYTES as _MAX_PENDING_BYTES
from ..host.runtime.bounds import human_bytes, utf8_size
from ..protocol.jsonrpc import MESSAGES, Limits, error_response
from ..protocol.routes import RouteKind, RouteMatch
from .cors import ALLOWED_HEADERS, ALLOWED_METHODS, PREFLIGHT_MAX_AGE, CORSPolicy
from .private import (
    EventStream,
    PrivateSocket,
    ResponseError,
    SocketPort,
    apply_page_policy,
    cancel_body_stream,
    request_object,
    write_response,
)
from .secrets_in_logs import SUBPROTOCOL, token_from_subprotocols

__all__ = [
    "AdminRPCHandler",
    "AdminWebSocketHandler",
    "BoundedBodyHandler",
    "CrossOriginHandler",
    "KplugHandlerBase",
    "PluginInfoHandler",
    "PluginListHandler",
    "PluginRPCHandler",
    "PluginRPCWebSocket",
    "Principal",
    "PrivateHandler",
    "TokenAuth",
    "needs_streaming",
    "streamed",
]

log = logging.getLogger("kplug_lab.rpc")

AUTH_FAILED = {"code": -1, "msg": "Auth failed [session=0]", "data": None}


@dataclass(frozen=True)
class Principal:
    can_call: bool = True
    can_admin: bool = False


class TokenAuth:
    """Standalone auth: an admin token (all routes) and an optional call-only token (plugin calls only).

    Accepted as ``Authorization: Token|token|Bearer|bearer <t>``, a WebSocket's ``kplug.token.<base64url>``
    subprotocol (:mod:`kplug_lab.rpc.secrets_in_logs`), ``?token=<t>`` (redacted in the access log) or
    ``X-Auth-Token``; compared in constant time.
    """

    def __init__(self, admin_token: str, call_token: str | None = None) -> None:
        self.admin_token = admin_token
        self.call_token = call_token

    def authenticate(self, handler: tornado.web.RequestHandler) -> Principal | None:
        given = ""
        header = handler.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme in ("Token", "token", "Bearer", "bearer") and value:
            given = value.strip()
        if not given:
            given = token_from_subprotocols(handler.request.headers.get("Sec-WebSocket-Protocol", "")) or ""
        if not given:
            given = handler.get_query_argument("token", "") or ""
        if not given:
            given = handler.request.headers.get("X-Auth-Token", "")
        if given and hmac.compare_digest(given.encode(), self.admin_token.encode()):
            return Principal(can_call=True, can_admin=True)
        if given and self.call_token and hmac.compare_digest(given.encode(), self.call_token.encode()):
            return Principal(can_call=True, can_admin=False)
        return None


def _standalone_principal(handler: tornado.web.RequestHandler) -> Principal | None:
    auth: TokenAuth | None = handler.settings.get("kplug_auth")
    return auth.authenticate(handler) if auth is not None else None


def write_envelope_error(handler: tornado.web.RequestHandler, status_code: int, **kwargs: Any) -> None:
    """An error tornado raises before or around a handler (a URL that is not UTF-8, an unknown method...) as
    SiYuan's ``{code, msg, data}`` envelope, never tornado's HTML page; the exception's text stays in the log."""
    exc = kwargs.get("exc_info", (None, None, None))[1]
    msg = exc.log_message if isinstance(exc, tornado.web.HTTPError) and exc.log_message else handler._reason
    handler.set_header("Content-Type", "application/json; charset=utf-8")
    handler.finish(json.dumps({"code": -1, "msg": msg, "data": None}))


def _json(handler: tornado.web.RequestHandler, obj: Any, status: int = 200) -> None:
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json; charset=utf-8")
    handler.finish(json.dumps(obj, ensure_ascii=False))


class KplugHandlerBase(tornado.web.RequestHandler):
    """Settings used: ``kplug_host`` (HostAPI), ``kplug_auth`` (the standalone auth policy, a
    :class:`TokenAuth`), ``kplug_limits``, ``kplug_dev_mode``, ``kplug_cors`` (standalone only: the
    :class:`~kplug_lab.rpc.cors.CORSPolicy` of ``--allow-origin``).

    Authentication is the one thing that differs between modes: :meth:`kplug_principal` asks ``kplug_auth``
    here; the Jupyter extension's handlers (:mod:`kplug_lab.server.handlers`) override it with the server's
    identity and authorizer. Without either, every request is refused.
    """

    need_admin = False

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        write_envelope_error(self, status_code, **kwargs)

    @property
    def host(self) -> HostAPI:
        return self.settings["kplug_host"]  # type: ignore[no-any-return]

    @property
    def limits(self) -> Limits:
        return self.settings.get("kplug_limits") or Limits()

    def kplug_principal(self) -> Principal | None:
        return _standalone_principal(self)

    def prepare(self) -> None:
        if self.request.method == "OPTIONS" and isinstance(self, CrossOriginHandler):
            return  # a CORS preflight carries no credentials; it only says which requests may follow
        principal = self.kplug_principal()
        if principal is None:
            _json(self, AUTH_FAILED, 401)
            return
        if self.need_admin and not principal.can_admin:
            self.set_status(403)
            self.finish()
            return
        self.principal = principal

    def plugin_name(self, name: str | None) -> str | None:
        return name if name else self.get_query_argument("name", None)


#: tornado's own cap on a request body (``HTTPServer(max_body_size=...)``), applied unless a handler raises it
_TORNADO_MAX_BODY = 100 * 1024 * 1024


class BoundedBodyHandler(KplugHandlerBase):
    """A route whose request body is limited to ``Limits.max_body_bytes``.

    Normally tornado reads the body and the size is checked in :meth:`prepare`. When the standalone application
    (:class:`kplug_lab.rpc.app.KplugApplication`) sees from the headers that the body is too large, or cannot
    know (chunked), the request goes to the :func:`streamed` variant of the handler instead, which takes the body
    as it arrives and refuses it as soon as that is known: from ``Content-Length`` before any of it is read, or
    once a chunked body passes the limit. (Streaming every request cost 20-40 us per call: ADR 0004.)

    A streamed refusal goes out at once. The rest of the body is then read and dropped, never kept, so that a
    client that sends its whole body before it reads (most do) gets the answer, not a reset connection, and the
    connection stays usable. Two cases are cut off instead (answer, then close): a client waiting for
    ``100 Continue`` (it will not send the body) and a declared body over tornado's cap, not worth reading.
    """

    _received = 0
    _chunks: list[bytes] | None = None
    _refused = False

    def prepare(self) -> None:
        super().prepare()
        if self._finished:
            return
        limit = self.limits.max_body_bytes
        if not getattr(type(self), "_stream_request_body", False):
            if len(self.request.body) > limit:
                self._answer_too_large(f"{len(self.request.body)} bytes", drain=False)
            return
        connection = self.request.connection
        http1 = connection if isinstance(connection, tornado.http1connection.HTTP1Connection) else None
        if http1 is not None and limit >= _TORNADO_MAX_BODY:
            http1.set_max_body_size(limit + 1)  # so that our answer refuses, not tornado's bare 400
        declared = self.request.headers.get("Content-Length", "")
        if not (declared.isdigit() and int(declared) > limit):
            return
        size = int(declared)
        if self.request.headers.get("Expect", "").lower() == "100-continue" or size > _TORNADO_MAX_BODY:
            if http1 is not None:
                http1.set_max_body_size(size)  # else tornado writes its own 400 after our answer
            self._answer_too_large(f"{size} bytes", drain=False)
        else:
            self._answer_too_large(f"{size} bytes", drain=True)

    def data_received(self, chunk: bytes) -> None:
        """Only in the :func:`streamed` variant."""
        if self._refused or self._finished:
            return  # dropped
        self._received += len(chunk)
        if self._received > self.limits.max_body_bytes:
            self._chunks = None
            self._answer_too_large(f"more than {self.limits.max_body_bytes} bytes", drain=True)
            return
        if self._chunks is None:
            self._chunks = []
        self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        if not getattr(type(self), "_stream_request_body", False):
            return self.request.body
        chunks = self._chunks
        if not chunks:
            return b""
        if len(chunks) > 1:
            chunks[:] = [b"".join(chunks)]
        return chunks[0]

    def refused(self) -> bool:
        """Call first in a method handler: True if the body was refused (the request is then finished)."""
        if self._refused and not self._finished:
            self.finish()
        return self._refused

    def too_large_answer(self, size: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer to a body over the limit (``size`` says how large it is)."""
        return 413, error_response(-32600, f"RPC request is too large: {size}, the limit is "
                                           f"{self.limits.max_body_bytes}")

    def _answer_too_large(self, size: str, *, drain: bool) -> None:
        status, answer = self.too_large_answer(size)
        self._refused = True
        if not drain:
            _json(self, answer, status)
            return
        text = json.dumps(answer, ensure_ascii=False).encode()
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Content-Length", str(len(text)))  # complete now: the client may read it mid-upload
        self.write(text)
        self.flush()


_STREAMED: dict[type[BoundedBodyHandler], type[BoundedBodyHandler]] = {}


def streamed(cls: type[BoundedBodyHandler]) -> type[BoundedBodyHandler]:
    """``cls`` taking its body as it arrives (``@stream_request_body``), for requests too large to buffer."""
    variant = _STREAMED.get(cls)
    if variant is None:
        variant = _STREAMED[cls] = tornado.web.stream_request_body(type(cls.__name__, (cls,), {"__doc__": cls.__doc__}))
    return variant


def needs_streaming(headers: tornado.httputil.HTTPHeaders, limit: int) -> bool:
    """Whether a body with these headers must be taken as it arrives: declared over the limit (or over tornado's
    own cap, which the streamed handler lifts), or chunked (its size is known only at the end)."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return True
    declared = headers.get("Content-Length", "")
    return declared.isdigit() and int(declared) > min(limit, _TORNADO_MAX_BODY)


def _cors_policy(handler: tornado.web.RequestHandler) -> CORSPolicy | None:
    policy: CORSPolicy | None = handler.settings.get("kplug_cors")
    return policy if policy else None


class CrossOriginHandler(BoundedBodyHandler):
    """A route a browser page on another origin may call when the standalone server allows that origin
    (``kplug serve --allow-origin``): the plugin calls, plugin info and the plugin list. Without allowed
    origins, nothing changes (same-origin only). In Jupyter mode the server's ``allow_origin`` applies instead
    (jupyter_server sets its CORS headers in ``prepare``; ``kplug_cors`` is not set there)."""

    def set_default_headers(self) -> None:
        policy = _cors_policy(self)
        if policy is None:
            return
        allowed = policy.allow_origin_header(self.request.headers.get("Origin"))
        if allowed is not None:
            self.set_header("Access-Control-Allow-Origin", allowed)
        if not policy.any:
            self.set_header("Vary", "Origin")  # the answer depends on the asking origin: caches must keep it apart

    def options(self, *args: Any, **kwargs: Any) -> None:
        """The CORS preflight of a cross-origin call (answered before authentication, see :meth:`prepare`)."""
        policy = _cors_policy(self)
        origin = self.request.headers.get("Origin")
        if policy is None or policy.allow_origin_header(origin) is None:
            self.set_status(403)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"origin {origin or '(none)'} may not call this server from a browser; to allow it, start "
                        f"kplug serve with --allow-origin {origin or 'ORIGIN'}")
            return
        self.set_header("Access-Control-Allow-Methods", ALLOWED_METHODS)
        self.set_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.set_header("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE))
        self.set_status(204)
        self.finish()


def _precheck(host: HostAPI, name: str | None) -> dict[str, Any] | None:
    info = host.get_plugin(name) if name else None
    if info is None:
        return error_response(-32001)
    if info.state != PluginState.RUNNING:
        return error_response(-32002)
    return None


class PluginRPCHandler(CrossOriginHandler):
    """``POST /api/plugin/rpc/<name>`` and ``?name=``: JSON-RPC over HTTP."""

    def too_large_answer(self, size: str) -> tuple[int, dict[str, Any]]:
        pre = _precheck(self.host, self.plugin_name(self.path_args[0] if self.path_args else None))
        if pre is not None:
            return 200, pre  # the pre-check answers first, as for a body that was read
        return BoundedBodyHandler.too_large_answer(self, size)  # JSON-RPC's (getLoadedPlugin's is next in the MRO)

    _client_gone = False
    _calls: set[asyncio.Future[Any]] | None = None

    async def post(self, name: str | None = None) -> None:
        if self.refused():
            return
        name = self.plugin_name(name)
        pre = _precheck(self.host, name)
        if pre is not None:
            _json(self, pre)
            return
        body = self.body
        host = self.host
        calls: set[asyncio.Future[Any]] = set()
        self._calls = calls

        async def caller(method: str, params: Any) -> Any:
            if NOTIFICATION.get():  # runs under the plugin's context: not cancelled with the request (changes §3)
                return await host.call(name, method, params, timeout=self.limits.call_timeout)  # type: ignore[arg-type]
            # a task, so that cancelling it cancels the call it waits for (a queued call is then skipped)
            call = asyncio.ensure_future(host.call(name, method, params,  # type: ignore[arg-type]
                                                   timeout=self.limits.call_timeout))
            calls.add(call)
            try:
                return await call
            except asyncio.CancelledError:
                if not self._client_gone:
                    raise
                raise PluginCallError(f'error invoking method "{method}": context canceled') from None
            finally:
                calls.discard(call)

        text = await process(body, caller, plugin=name or "", limits=self.limits)
        if not self._client_gone:
            _finish_rpc(self, text)

    def on_connection_close(self) -> None:
        """The HTTP client went away: its calls are cancelled, as SiYuan cancels them with the request's context
        (changes §3): a queued call never runs, a running one is answered -32603 ``context canceled`` (to nobody)."""
        self._client_gone = True
        for call in list(self._calls or ()):
            call.cancel()
        super().on_connection_close()


async def _route_answer(handler: KplugHandlerBase, route: RouteMatch, body: bytes | None) -> None:
    """Answer with what the host answers to ``route`` (the same answer ``siyuan.client.fetch`` gets)."""
    answer = await route_answers.answer(handler.host, route, body)
    handler.set_status(answer.status)
    for header, value in answer.headers.items():
        handler.set_header(header, value)
    handler.finish(answer.body)


class PluginInfoHandler(CrossOriginHandler):
    """``GET /api/plugin/rpc/<name>`` (or ``?name=``) and ``POST /api/plugin/getLoadedPlugin`` (the name may
    also be in the JSON body: ``{"name": ...}``)."""

    async def get(self, name: str | None = None) -> None:
        if self.refused():  # an oversized body was already answered with 413
            return
        await _route_answer(self, RouteMatch(RouteKind.INFO, self.plugin_name(name)), None)

    async def post(self, name: str | None = None) -> None:
        if self.refused():
            return
        await _route_answer(self, RouteMatch(RouteKind.INFO, self.plugin_name(name)), self.body)

    def too_large_answer(self, size: str) -> tuple[int, dict[str, Any]]:
        return 413, {"code": -1, "msg": f"request body is too large: {size}, the limit is "
                                        f"{self.limits.max_body_bytes}", "data": None}


class PluginListHandler(CrossOriginHandler):
    """``GET /api/plugin`` and ``POST /api/plugin/listLoadedPlugins``."""

    async def get(self) -> None:
        if self.refused():
            return
        await _route_answer(self, RouteMatch(RouteKind.LIST), None)

    post = get
    too_large_answer = PluginInfoHandler.too_large_answer


class _BoundedSocket(tornado.websocket.WebSocketHandler):
    """A WebSocket with a bounded send queue: a client too slow to read is disconnected, not buffered. The bound
    is in messages (``max_pending``) and in bytes (the ``kplug_max_pending_bytes`` setting, the host's
    ``max_pending_bytes``): a few large broadcasts fill it as surely as many small ones."""

    max_pending = 1000

    def open_bounded(self) -> None:
        self._pending = 0
        self._pending_bytes = 0
        self._max_pending_bytes: int = self.settings.get("kplug_max_pending_bytes") or _MAX_PENDING_BYTES
        self._closed_by_us = False
        # tornado leaves Nagle on for WebSockets: an answer written right after a broadcast (or any two frames
        # in a row) then waited for the client's delayed ACK, 40 ms on Linux (docs/adr/0004-rpc-benchmark.md)
        self.set_nodelay(True)

    def send(self, text: str) -> None:
        if self.ws_connection is None or self._closed_by_us:
            return
        size = utf8_size(text)
        if self._pending >= self.max_pending or (
                self._pending and self._pending_bytes + size > self._max_pending_bytes):
            self._closed_by_us = True
            log.warning("closing a WebSocket: its client did not read %d queued messages (%s)", self._pending,
                        human_bytes(self._pending_bytes))
            self.close(1008, "send queue full: the client reads too slowly")
            return
        self._pending += 1
        self._pending_bytes += size
        try:
            fut = self._write_text(text)
        except (tornado.websocket.WebSocketClosedError, tornado.iostream.StreamClosedError):
            self._pending -= 1
            self._pending_bytes -= size
            return
        fut.add_done_callback(functools.partial(self._sent, size))

    def _write_text(self, text: str) -> asyncio.Future[None]:
        """``write_message(text)``, or with the ``kplug_ws_direct_frames`` setting (an opt-in tuning switch, ADR
        0004) the same frame written without ``write_message``'s wrapper coroutine and task (two loop callbacks per
        message) through tornado's private ``_write_frame``; that falls back to ``write_message`` where the
        protocol object is not the one it was written against."""
        conn = self.ws_connection
        if (not self.settings.get("kplug_ws_direct_frames", False)
                or type(conn) is not tornado.websocket.WebSocketProtocol13 or not hasattr(conn, "_compressor")):
            return self.write_message(text)  # type: ignore[return-value]
        data = text.encode()
        conn._message_bytes_out += len(data)
        flags = 0
        if conn._compressor:
            data = conn._compressor.compress(data)
            flags |= conn.RSV1
        return conn._write_frame(True, 0x1, data, flags=flags)  # type: ignore[no-any-return]

    def _sent(self, size: int, fut: asyncio.Future[None]) -> None:
        self._pending -= 1
        self._pending_bytes -= size
        if fut.exception() is not None:
            self._pending = 0
            self._pending_bytes = 0

    def check_xsrf_cookie(self) -> None:
        pass

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        write_envelope_error(self, status_code, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        """``kplug`` when the client offered it (with its token as ``kplug.token.<base64url>``)."""
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    def kplug_principal(self) -> Principal | None:
        return _standalone_principal(self)


def _cross_site(socket: tornado.websocket.WebSocketHandler,
                answer: tornado.web.RequestHandler | None = None) -> bool:
    """Answer 400 (on ``answer``, by default the socket's own request) and say True when the upgrade comes from an
    Origin the socket does not accept: SiYuan checks Origin on the RPC WebSocket and on private WebSocket routes
    with 400 (changes §2.8, §3), where tornado's own check would answer 403."""
    headers = socket.request.headers
    origin = headers.get("Origin") if "Origin" in headers else headers.get("Sec-Websocket-Origin")
    check = getattr(socket, "_check_cross_origin", None)  # tornado >= 6.6: its own same-origin test comes first
    if check is not None:
        if check(socket.check_origin) is None:
            return False
    elif origin is None or socket.check_origin(origin):
        return False
    target = answer or socket
    target.set_status(400)
    target.finish(f"cross-site WebSocket request refused: Origin {origin} is not this server's")
    return True


class PluginRPCWebSocket(_BoundedSocket):
    """``GET /ws/plugin/rpc/<name>`` (or ``?name=``): JSON-RPC over WebSocket, with broadcasts.

    [better] Messages of one connection are processed concurrently; responses may arrive out of order
    (match them by ``id``). SiYuan processes them one after another.
    """

    kplug_name: str = ""

    @property
    def host(self) -> HostAPI:
        return self.settings["kplug_host"]  # type: ignore[no-any-return]

    async def get(self, name: str | None = None, *args: Any, **kwargs: Any) -> None:
        if self.kplug_principal() is None:
            _json(self, AUTH_FAILED, 401)
            return
        name = name or self.get_query_argument("name", None)
        pre = _precheck(self.host, name)
        if pre is not None:
            _json(self, pre, 404)
            return
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            self.set_status(400)
            self.finish("This endpoint only accepts WebSocket connections")
            return
        if _cross_site(self):
            return
        self.kplug_name = name or ""
        await super().get(name, *args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.open_bounded()
        self._limits: Limits = self.settings.get("kplug_limits") or Limits()
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._room: asyncio.Future[None] | None = None  # set while reading waits for a call to finish
        self._unsubs = [
            self.host.subscribe_broadcasts(self.kplug_name, self._on_broadcast),
            self.host.subscribe_states(self._on_state),
        ]

    def _on_broadcast(self, method: str, params: Any) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not NO_PARAMS:
            msg["params"] = params
        self.send(json.dumps(msg, ensure_ascii=False))

    def check_origin(self, origin: str) -> bool:
        """Same-origin, or an origin the standalone server allows (``--allow-origin``; browsers apply no CORS to
        WebSockets, so the server checks). In Jupyter mode the server's own origin check runs instead."""
        policy = _cors_policy(self)
        return super().check_origin(origin) or (policy is not None and policy.allow_origin_header(origin) is not None)

    def _on_state(self, name: str, state: PluginState) -> None:
        if name == self.kplug_name and state != PluginState.RUNNING and self.ws_connection is not None:
            self.close(1001, f"plugin [{name}] is {state.label}")

    #: calls of one connection answered concurrently; beyond this, the next message is read only when one
    #: finishes (back-pressure on the socket instead of unbounded tasks for a client that floods)
    max_in_flight = 128

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        # a single request is answered from its call's done-callback, no task per message (ADR 0004)
        pending = start(message, self._start_call, self._call, self.send, plugin=self.kplug_name,
                        limits=self._limits)
        if pending is None:
            return None
        self._in_flight.add(pending)
        pending.add_done_callback(self._call_done)
        if len(self._in_flight) >= self.max_in_flight:
            self._room = asyncio.get_running_loop().create_future()
            return self._room  # tornado waits for this before it reads the next message
        return None

    def _start_call(self, method: str, params: Any) -> asyncio.Future[Any]:
        return self.host.start_call(self.kplug_name, method, params, timeout=self._limits.call_timeout)

    async def _call(self, method: str, params: Any) -> Any:
        return await self.host.call(self.kplug_name, method, params, timeout=self._limits.call_timeout)

    def _call_done(self, done: asyncio.Future[Any]) -> None:
        self._in_flight.discard(done)
        room = self._room
        if room is not None and len(self._in_flight) < self.max_in_flight:
            self._room = None
            if not room.done():
                room.set_result(None)

    def on_close(self) -> None:
        for unsub in getattr(self, "_unsubs", []):
            unsub()
        for pending in list(getattr(self, "_in_flight", ())):
            pending.cancel()


class PrivateHandler(KplugHandlerBase):
    """``ANY /plugin/private/<name>/<path>``: the plugin's ``siyuan.server.private`` slots (spec §3.8): a
    WebSocket upgrade goes to ``ws``, ``Accept: text/event-stream`` (exactly) to ``es``, anything else to
    ``http``. Authentication happens here for all three, before any upgrade (the wire half is
    :mod:`kplug_lab.rpc.private`)."""

    need_admin = True
    _events: EventStream | None = None

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        #: set when the client closes the connection
        self._gone = asyncio.Event()

    def flush(self, include_footers: bool = False) -> asyncio.Future[None]:
        apply_page_policy(self)  # whatever the plugin set, the browser gets the host's sandbox (docs/sandbox.md)
        return super().flush(include_footers)

    async def _serve(self, name: str, path: str) -> None:
        info = self.host.get_plugin(name)
        if info is None:
            self.set_status(404)
            self.finish(f"[plugin:{name}] not found")
            return
        if info.state != PluginState.RUNNING:
            self.set_status(503)
            self.finish(f"[plugin:{name}] is not running")
            return
        request = request_object(self, name, path)
        headers = self.request.headers
        connection = {v.strip().lower() for v in headers.get("Connection", "").split(",")}
        if headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in connection:
            await self._serve_websocket(name, request)
        elif headers.get("Accept", "") == "text/event-stream":
            await self._serve_events(name, request)
        else:
            await self._serve_http(name, request)

    def _abandoned(self, name: str) -> None:
        """SiYuan's answer to a request whose client left before the handler settled: 500, empty body."""
        log.info("[plugin:%s] the client left before the private HTTP handler settled: 500, empty body", name)
        self.set_status(500)
        self.finish()

    def _failed(self, name: str, kind: str, exc: Exception) -> None:
        self.set_status(500)
        self.finish(f"[plugin:{name}] Error occurred while handling {kind} request: {exc}")

    async def _serve_http(self, name: str, request: dict[str, Any]) -> None:
        try:
            res = await self.host.http_request(name, "http", request)
        except Exception as exc:
            if self._gone.is_set():
                self._abandoned(name)
                return
            self._failed(name, "HTTP", exc)
            return
        if self._gone.is_set():  # the client left before the handler settled (changes page §2.8)
            await cancel_body_stream(res)
            self._abandoned(name)
            return
        try:
            await write_response(self, name, res, self._gone)
        except (ResponseError, ValueError, TypeError, AttributeError) as exc:
            if not isinstance(exc, ResponseError):
                exc = ResponseError(500, f"[plugin:{name}] Error occurred while handling HTTP request: "
                                         f"invalid response format ({exc})")
            self.clear()
            self.set_status(exc.status)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(exc.text)

    async def _serve_websocket(self, name: str, request: dict[str, Any]) -> None:
        async def run_handler(port: SocketPort) -> None:
            await self.host.http_request(name, "ws", request, port=port)

        socket = PrivateSocket(self.application, self.request, run_handler=run_handler)
        if _cross_site(socket, answer=self):
            return
        # the upgrade and the connection belong to the socket handler from here on; this handler must not
        # finish the (detached) request
        self._auto_finish = False
        await socket.get()

    async def _serve_events(self, name: str, request: dict[str, Any]) -> None:
        stream = self._events = EventStream(self)
        try:
            await self.host.http_request(name, "es", request, port=stream)
        except Exception as exc:
            if not stream.started:
                self._failed(name, "SSE", exc)
            stream.end()
            await stream.finish()
            return
        await stream.ended.wait()
        await stream.finish()

    def on_connection_close(self) -> None:
        self._gone.set()
        if self._events is not None:
            self._events.lost()
        super().on_connection_close()

    async def get(self, name: str, path: str = "") -> None:
        await self._serve(name, path)

    post = put = delete = patch = head = options = get  # type: ignore[assignment]


def _finish_rpc(handler: tornado.web.RequestHandler, text: str | None) -> None:
    """A JSON-RPC answer over HTTP: 200 with the JSON, or 204 when there is nothing to return (spec §5.3)."""
    if text is None:
        handler.set_status(204)
        handler.finish()
        return
    handler.set_header("Content-Type", "application/json; charset=utf-8")
    handler.finish(text)


# ---- admin API -------------------------------------------------------------------------------------------

def _info_dict(info: PluginInfo) -> dict[str, Any]:
    return {"name": info.name, "state": info.state.label, "stateCode": int(info.state), "error": info.error,
            "version": info.version, "displayName": info.display_name, "hookErrors": list(info.hook_errors),
            "kplugOnly": list(info.kplug_only),
            "methods": [{"name": m.name, "descriptions": m.descriptions} for m in info.methods]}


def _log_dict(r: LogRecord) -> dict[str, Any]:
    return {"plugin": r.plugin, "level": r.level, "message": r.message, "time": r.time}


def _call_event(plugin: str, method: str, params: Any, result: Any, error: BaseException | None) -> dict[str, Any]:
    """A ``kplug.call`` notification: one finished call of any client, its error as the caller got it."""
    event: dict[str, Any] = {"plugin": plugin, "method": method, "params": None if params is NO_PARAMS else params}
    if error is None:
        event["result"] = result
    elif isinstance(error, KplugError):
        data = str(error) if error.code not in (-32001, -32002) else None
        event["error"] = error_response(error.code, data, message=MESSAGES.get(error.code, "Server error"))["error"]
    else:
        internal = f'error invoking method "{method}": internal host error'
        event["error"] = error_response(INTERNAL_ERROR, internal)["error"]
    return event


class AdminAPI:
    """The ``kplug.*`` methods, shared by the HTTP and WebSocket admin endpoints."""

    def __init__(self, host: HostAPI, dev_mode: bool) -> None:
        self.host = host
        self.dev_mode = dev_mode

    async def call(self, method: str, params: Any) -> Any:
        args: list[Any] = params if isinstance(params, list) else []
        kwargs: dict[str, Any] = params if isinstance(params, dict) else {}
        fn = self.methods.get(method)
        if fn is None:
            from ..errors import MethodNotFound

            raise MethodNotFound(f"method [{method}] not found in the kplug admin API")
        signature = inspect.signature(fn)  # type: ignore[arg-type]
        try:
            signature.bind(self, *args, **kwargs)
        except TypeError:
            from ..errors import InvalidParams

            expected = ", ".join(p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
                                 for p in list(signature.parameters.values())[1:])
            raise InvalidParams(f"Invalid params for {method}: expected ({expected}), as an array in this "
                                "order or an object with these names") from None
        return await fn(self, *args, **kwargs)  # type: ignore[operator]

    def _info(self, name: str) -> PluginInfo:
        info = self.host.get_plugin(name)
        if info is None:
            raise PluginNotLoaded(f"plugin [{name}] is not loaded")
        return info

    async def list(self) -> Any:
        return [_info_dict(i) for i in self.host.list_plugins()]

    async def state(self, name: str) -> Any:
        return _info_dict(self._info(name))

    async def load(self, path: str) -> Any:
        return _info_dict(await self.host.load(path))

    async def unload(self, name: str) -> Any:
        await self.host.unload(name)
        return None

    async def reload(self, name: str) -> Any:
        return _info_dict(await self.host.reload(name))

    async def logs(self, name: str, limit: int = 200) -> Any:
        return [_log_dict(r) for r in self.host.logs(name, limit)]

    async def call_method(self, name: str, method: str, params: Any = None) -> Any:
        return await self.host.call(name, method, NO_PARAMS if params is None else params)

    async def tools(self) -> Any:
        return self.host.tools()

    async def invoke_tool(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        return await self.host.invoke_tool(name, arguments or {})

    async def eval_js(self, name: str, code: str) -> Any:
        if not self.dev_mode:
            raise PluginCallError("kplug.eval is only available when the server runs in dev mode (--dev)")
        return await self.host.eval(name, code)

    async def stats(self) -> Any:
        return await self.host.plugin_stats()

    async def discover(self) -> Any:
        methods = []
        for info in self.host.list_plugins():
            if info.state != PluginState.RUNNING:
                continue
            for m in info.methods:
                methods.append({"name": f"{info.name}.{m.name}", "summary": m.descriptions[0] if m.descriptions else "",
                                "description": "\n".join(m.descriptions), "params": [],
                                "result": {"name": "result", "schema": {}}})
        return {"openrpc": "1.2.6", "info": {"title": "kplug_lab plugins", "version": "1"}, "methods": methods}

    methods = {
        "kplug.list": list, "kplug.state": state, "kplug.load": load, "kplug.unload": unload,
        "kplug.reload": reload, "kplug.logs": logs, "kplug.call": call_method, "kplug.tools": tools,
        "kplug.invokeTool": invoke_tool, "kplug.eval": eval_js, "kplug.stats": stats, "rpc.discover": discover,
    }


class AdminRPCHandler(BoundedBodyHandler):
    """``POST <base>/kplug/api/rpc``: the admin API over HTTP (admin permission)."""

    need_admin = True

    async def post(self) -> None:
        if self.refused():
            return
        api = AdminAPI(self.host, bool(self.settings.get("kplug_dev_mode")))
        _finish_rpc(self, await process(self.body, api.call, plugin="kplug", limits=self.limits))


class AdminWebSocketHandler(_BoundedSocket):
    """``GET <base>/kplug/api/ws``: the admin API over WebSocket, with ``kplug.subscribe`` push."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        principal = self.kplug_principal()
        if principal is None:
            _json(self, AUTH_FAILED, 401)
            return
        if not principal.can_admin:
            self.set_status(403)
            self.finish()
            return
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.open_bounded()
        self._unsubs: list[Any] = []
        self._tasks: set[asyncio.Task[None]] = set()
        host: HostAPI = self.settings["kplug_host"]
        self.api = AdminAPI(host, bool(self.settings.get("kplug_dev_mode")))

    def _push(self, method: str, params: Any) -> None:
        self.send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}, ensure_ascii=False))

    async def _subscribe(self, topics: list[str] | None = None) -> Any:
        host: HostAPI = self.settings["kplug_host"]
        topics = topics or ["state", "log", "broadcast"]
        if "state" in topics:
            self._unsubs.append(host.subscribe_states(
                lambda n, s: self._push("kplug.state", {"name": n, "state": s.label, "stateCode": int(s)})))
        if "log" in topics:
            self._unsubs.append(host.subscribe_logs(lambda r: self._push("kplug.log", _log_dict(r))))
        if "call" in topics:
            self._unsubs.append(host.subscribe_calls(
                lambda n, m, p, r, e: self._push("kplug.call", _call_event(n, m, p, r, e))))
        if "broadcast" in topics:
            for info in host.list_plugins():
                name = info.name
                self._unsubs.append(host.subscribe_broadcasts(
                    name, lambda m, p, name=name: self._push(  # type: ignore[misc]
                        "kplug.broadcast", {"plugin": name, "method": m, "params": None if p is NO_PARAMS else p})))
        return topics

    async def _call(self, method: str, params: Any) -> Any:
        if method == "kplug.subscribe":
            args = params if isinstance(params, list) else [params.get("topics")] if isinstance(params, dict) else []
            return await self._subscribe(*args)
        return await self.api.call(method, params)

    def on_message(self, message: str | bytes) -> None:
        async def handle() -> None:
            text = await process(message, self._call, plugin="kplug")
            if text is not None:
                self.send(text)

        task = asyncio.ensure_future(handle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_close(self) -> None:
        for unsub in self._unsubs:
            unsub()
