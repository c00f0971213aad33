"""The front door: kplug_lab standing in front of a SiYuan kernel (``kplug serve --front-door``).

A user opens SiYuan through kplug_lab's port. Plugin routes (:data:`kplug_lab.protocol.routes.ROUTES`) of the
plugins kplug_lab runs are answered here; every other request -- any HTTP method, the kernel's ``/ws``, SSE,
static files, uploads, range requests, redirects, cookies -- goes to the one configured kernel unchanged and is
streamed both ways (``docs/adr/0007-front-door.md`` records the design and its threats).

Authentication is the kernel's own. A plugin route is served only when the request's SiYuan credential (session
cookie, ``Authorization: Token``, ``?token=``, ``X-Auth-Token``) passes a cheap authenticated kernel call
(:class:`KernelCredentials`, cached briefly per credential); any other route is the kernel's to decide. The
admin API (``/kplug/api/...``) still takes kplug_lab's own token only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import tornado.httpclient
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket

from ..errors import KplugError
from ..host.api import HostAPI
from ..protocol.jsonrpc import Limits
from ..protocol.routes import ROUTES, RouteKind, match, tornado_pattern
from ..rpc.app import _HANDLERS, KplugApplication, make_routes
from ..rpc.handlers import Principal, TokenAuth
from ..rpc.secrets_in_logs import log_request

__all__ = ["FrontDoor", "FrontDoorApplication", "FrontDoorConfig", "KernelCredentials", "KernelProxyHandler",
           "KernelSocketProxy", "forwarded_headers", "make_front_door_app"]

log = logging.getLogger("kplug_lab.front_door")

#: RFC 9110 §7.6.1: meaningful for one connection only, never forwarded (plus what ``Connection`` names)
HOP_BY_HOP = frozenset({"connection", "proxy-connection", "keep-alive", "te", "trailer", "transfer-encoding",
                        "upgrade", "proxy-authenticate", "proxy-authorization"})
#: set by the front door itself; whatever a client sends under these names is dropped (never trusted)
_FORWARDING = frozenset({"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"})
#: negotiated by each WebSocket hop on its own
_WEBSOCKET_HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                                  "sec-websocket-protocol", "sec-websocket-accept"})
#: what carries a SiYuan credential (spec §5.2); the key of the credential cache
_CREDENTIAL_HEADERS = ("Authorization", "Cookie", "X-Auth-Token")
#: WebDAV's methods too: SiYuan serves a WebDAV endpoint
_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS", "PROPFIND", "PROPPATCH", "MKCOL", "COPY",
            "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH")


@dataclass(frozen=True)
class FrontDoorConfig:
    """``kernel_url``: the SiYuan kernel, the only place the front door ever connects to."""

    kernel_url: str
    #: an authenticated kernel call that needs SiYuan's administrator role and changes nothing: the plugin
    #: routes need that role in SiYuan (spec §5.1); ``CheckAuth`` + ``CheckAdminRole`` in SiYuan's router
    probe_path: str = "/api/system/getNetwork"
    #: seconds an accepted credential is trusted before the kernel is asked again (a refusal is never cached)
    credential_ttl: float = 10.0
    max_cached_credentials: int = 1024
    connect_timeout: float = 20.0
    #: largest request or response body passed through (streamed; never held whole)
    max_body_bytes: int = sys.maxsize
    #: largest WebSocket message relayed (a message is relayed whole: WebSocket frames are not streamed)
    max_ws_message_bytes: int = 64 * 1024 * 1024
    #: tornado's buffer per connection for the kernel's response (the stream never waits for more than this)
    max_buffer_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        parts = urlsplit(self.kernel_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError(f"the front door's kernel URL must be http(s)://host[:port], got {self.kernel_url!r}")

    @property
    def origin(self) -> str:
        parts = urlsplit(self.kernel_url)
        return f"{parts.scheme}://{parts.netloc}"

    def target(self, uri: str, *, websocket: bool = False) -> str:
        """The kernel URL of a request-target. Only origin-form (``/path?query``) is taken: an absolute-form
        target (``http://elsewhere/``) or ``*`` raises ValueError, so the front door is never an open proxy."""
        if not uri.startswith("/"):
            raise ValueError(f"not an origin-form request target: {uri[:80]!r}")
        origin = self.origin
        if websocket:
            origin = "ws" + origin[len("http"):]
        url = origin + uri
        if urlsplit(url).netloc != urlsplit(origin).netloc:  # belt and braces: the authority is always the kernel's
            raise ValueError(f"request target leaves the kernel: {uri[:80]!r}")
        return url


def forwarded_headers(request: tornado.httputil.HTTPServerRequest, *,
                      drop: Iterable[str] = ()) -> tornado.httputil.HTTPHeaders:
    """The request's headers as the kernel gets them: hop-by-hop headers (and those ``Connection`` names)
    removed, ``Host`` kept, ``X-Forwarded-For/Host/Proto`` set by the front door alone."""
    named = {t.strip().lower() for t in request.headers.get("Connection", "").split(",") if t.strip()}
    skip = HOP_BY_HOP | _FORWARDING | named | {d.lower() for d in drop}
    out = tornado.httputil.HTTPHeaders()
    for name, value in request.headers.get_all():
        if name.lower() not in skip:
            out.add(name, value)
    if request.remote_ip:
        out["X-Forwarded-For"] = request.remote_ip
    if request.host:
        out["X-Forwarded-Host"] = request.host
    out["X-Forwarded-Proto"] = request.protocol
    return out


def _response_headers(lines: list[str]) -> tuple[int, str, list[tuple[str, str]]]:
    first, *rest = lines
    start = tornado.httputil.parse_response_start_line(first.strip())
    headers = tornado.httputil.HTTPHeaders.parse("".join(rest))
    named = {t.strip().lower() for t in headers.get("Connection", "").split(",") if t.strip()}
    kept = [(k, v) for k, v in headers.get_all() if k.lower() not in HOP_BY_HOP | named]
    return start.code, start.reason, kept


class KernelCredentials:
    """Asks the kernel whether a request's SiYuan credential may use the plugin routes.

    The credential (``Authorization``, ``Cookie``, ``X-Auth-Token``, ``?token=``) and what SiYuan's
    localhost rule looks at (``Host``, ``Origin``, the client's address) are sent on a
    :attr:`FrontDoorConfig.probe_path` call; HTTP 200 with ``code`` 0 means yes. A yes is cached for
    ``credential_ttl`` seconds under a hash of all of that; a no is never cached, so a fresh login works at once.
    Concurrent checks of one credential share one kernel call.
    """

    def __init__(self, config: FrontDoorConfig, client: tornado.httpclient.AsyncHTTPClient) -> None:
        self.config = config
        self._client = client
        self._accepted: OrderedDict[str, float] = OrderedDict()
        self._pending: dict[str, asyncio.Future[bool]] = {}
        #: how many times the kernel was asked (tests look)
        self.probes = 0

    @staticmethod
    def _key(request: tornado.httputil.HTTPServerRequest) -> str | None:
        parts = [request.headers.get(h, "") for h in _CREDENTIAL_HEADERS]
        token = request.query_arguments.get("token", [b""])[0].decode("utf-8", "replace")
        if not any(parts) and not token:
            return None
        parts += [token, request.host or "", request.headers.get("Origin", ""), request.remote_ip or ""]
        return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()

    async def check(self, request: tornado.httputil.HTTPServerRequest) -> bool:
        key = self._key(request)
        if key is None:
            return False  # no credential at all: refused without asking (SiYuan's localhost rule is not extended)
        now = time.monotonic()
        expires = self._accepted.get(key)
        if expires is not None and expires > now:
            return True
        self._accepted.pop(key, None)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(request))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        ok = await asyncio.shield(pending)
        if ok:
            self._accepted[key] = time.monotonic() + self.config.credential_ttl
            self._accepted.move_to_end(key)
            while len(self._accepted) > self.config.max_cached_credentials:
                self._accepted.popitem(last=False)
        return ok

    async def _ask(self, request: tornado.httputil.HTTPServerRequest) -> bool:
        self.probes += 1
        headers = tornado.httputil.HTTPHeaders({"Content-Type": "application/json"})
        for name in (*_CREDENTIAL_HEADERS, "Origin"):
            if name in request.headers:
                headers[name] = request.headers[name]
        if request.host:
            headers["Host"] = request.host
            headers["X-Forwarded-Host"] = request.host
        if request.remote_ip:
            headers["X-Forwarded-For"] = request.remote_ip
        query = ""
        token = request.query_arguments.get("token")
        if token:
            query = "?" + urlencode({"token": token[0].decode("utf-8", "replace")})
        probe = tornado.httpclient.HTTPRequest(
            self.config.target(self.config.probe_path + query), method="POST", headers=headers, body=b"{}",
            follow_redirects=False, connect_timeout=self.config.connect_timeout, request_timeout=30.0)
        try:
            response = await self._client.fetch(probe, raise_error=False)
        except Exception as exc:  # the kernel cannot be asked: refused, and said so in the log
            log.warning("front door: cannot check a credential with the kernel at %s: %s", self.config.origin, exc)
            return False
        if response.code != 200:
            return False
        try:
            envelope = json.loads(response.body or b"")
        except ValueError:
            return False
        return isinstance(envelope, dict) and envelope.get("code") == 0


class FrontDoor:
    """The front door's state: its configuration, its HTTP client, the credential cache, and the proxied
    main-channel ``/ws`` connections a publisher's pushes are merged into (:meth:`inject_main`)."""

    def __init__(self, config: FrontDoorConfig) -> None:
        self.config = config
        self.client = tornado.httpclient.AsyncHTTPClient(
            force_instance=True, max_clients=10_000, max_buffer_size=config.max_buffer_bytes,
            max_body_size=config.max_body_bytes)
        self.credentials = KernelCredentials(config, self.client)
        self._main_sockets: set[KernelSocketProxy] = set()
        #: what each newly relayed main-channel connection gets first, one provider per :meth:`follow`
        self._snapshots: list[Callable[[], Iterable[str]]] = []

    def inject_main(self, text: str) -> int:
        """Send ``text`` (a SiYuan push message, JSON) on every proxied main-channel ``/ws`` connection
        (``/ws?...&type=main``), in order with the kernel's own pushes; how many connections got it."""
        sent = 0
        for sock in list(self._main_sockets):
            if sock.inject(text):
                sent += 1
        return sent

    def follow(self, subscribe: Callable[[Callable[[str], None]], Callable[[], None]], *,
               snapshot: Callable[[], Iterable[str]] | None = None) -> Callable[[], None]:
        """Merge a publisher's pushes into the kernel's ``/ws`` stream: ``subscribe(callback)`` registers a
        callback that receives each push's JSON text and returns the function that unsubscribes.

        ``snapshot()``, if given, returns the pushes that bring a client up to date (the current state of every
        plugin): each newly relayed main-channel connection gets them once the kernel's handshake and the
        client's are done, before any of the kernel's own messages and any later change. A page that connects
        late or reconnects (after a restart of kplug_lab) so learns what runs, as standalone ``/ws`` clients do.
        The returned function stops both."""
        def deliver(text: str) -> None:
            self.inject_main(text)
        unsubscribe = subscribe(deliver)
        if snapshot is not None:
            self._snapshots.append(snapshot)

        def unfollow() -> None:
            unsubscribe()
            if snapshot is not None and snapshot in self._snapshots:
                self._snapshots.remove(snapshot)
        return unfollow

    def _greet(self, sock: KernelSocketProxy) -> None:
        """A new relayed main-channel connection: remembered for :meth:`inject_main`, and sent every snapshot."""
        self._main_sockets.add(sock)
        for snapshot in list(self._snapshots):
            for text in snapshot():
                if not sock.inject(text):
                    return

    def close(self) -> None:
        for sock in list(self._main_sockets):
            sock.close(1001, "kplug_lab front door stopping")
        self.client.close()


def _front_door(handler: tornado.web.RequestHandler) -> FrontDoor:
    return handler.settings["kplug_front_door"]  # type: ignore[no-any-return]


# ---- HTTP ----------------------------------------------------------------------------------------------

class _Abort(KplugError):
    """The client went away while its request body was still being sent to the kernel."""


@tornado.web.stream_request_body
class KernelProxyHandler(tornado.web.RequestHandler):
    """Any request that is not a plugin route: passed to the kernel and its answer passed back, both bodies
    streamed chunk by chunk with back-pressure (tornado's ``body_producer`` one way, ``streaming_callback``
    returning the flush the other way)."""

    SUPPORTED_METHODS = _METHODS  # type: ignore[assignment]

    def initialize(self) -> None:
        self._body: asyncio.Queue[bytes | _Abort | None] = asyncio.Queue(maxsize=4)
        self._fetch: asyncio.Future[tornado.httpclient.HTTPResponse] | None = None
        self._head_lines: list[str] = []
        self._started = False

    def set_default_headers(self) -> None:
        for name in ("Content-Type", "Server", "Date"):
            self.clear_header(name)

    def compute_etag(self) -> str | None:
        return None  # the kernel's validators pass through; tornado must not answer 304 on its own

    def check_xsrf_cookie(self) -> None:
        return None

    def prepare(self) -> None:
        door = _front_door(self)
        try:
            url = door.config.target(self.request.uri or "")
        except ValueError:
            self.set_status(400)
            self.finish("400 Bad Request: only paths on this server are served (this is not an open proxy)")
            return
        self.request.connection.set_max_body_size(door.config.max_body_bytes)  # type: ignore[union-attr]
        has_body = ("Content-Length" in self.request.headers and self.request.headers["Content-Length"] != "0") \
            or "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()
        headers = forwarded_headers(self.request)
        upstream = tornado.httpclient.HTTPRequest(
            url, method=self.request.method or "GET", headers=headers,
            body_producer=self._produce if has_body else None,  # type: ignore[arg-type]  # coroutines welcome
            follow_redirects=False,
            decompress_response=False, allow_nonstandard_methods=True, connect_timeout=door.config.connect_timeout,
            request_timeout=0, header_callback=self._head_lines.append, streaming_callback=self._relay,
            validate_cert=True)
        if not has_body:
            self._body.put_nowait(None)
        self._fetch = asyncio.ensure_future(door.client.fetch(upstream, raise_error=False))

    async def _produce(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        while True:
            chunk = await self._body.get()
            if chunk is None:
                return
            if isinstance(chunk, _Abort):
                raise chunk
            await write(chunk)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._body.full():
            return self._body.put(chunk)  # tornado reads no more of the body until the kernel took this
        self._body.put_nowait(chunk)
        return None

    def _start(self) -> None:
        if self._started or not self._head_lines:
            return
        self._started = True
        code, reason, headers = _response_headers(self._head_lines)
        self.set_status(code, reason or tornado.httputil.responses.get(code, "Unknown"))
        for name, value in headers:
            self.add_header(name, value)

    async def _relay(self, chunk: bytes) -> None:
        self._start()
        self.write(chunk)
        await self.flush()  # the kernel's next chunk is read only once this one left for the client

    async def _answer(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._body.put_nowait(None)
        assert self._fetch is not None
        try:
            await self._fetch  # raise_error=False still raises when there is no answer at all
        except Exception as exc:
            if self._finished or self.request.connection.stream.closed():  # type: ignore[union-attr]
                return  # the client went away first
            if self._started:
                # the kernel's answer broke off in the middle: end the client's connection too, never a short 200
                self.request.connection.close()  # type: ignore[union-attr]
                return
            log.warning("front door: %s %s: the kernel at %s did not answer: %s", self.request.method,
                        self.request.path, _front_door(self).config.origin, exc)
            self.set_status(502)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("502 Bad Gateway: the SiYuan kernel did not answer")
            return
        if self._finished:
            return
        self._start()
        self.finish()

    def on_connection_close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._body.put_nowait(_Abort())

    async def get(self, *args: Any) -> None:
        await self._answer()

    head = post = delete = patch = put = options = get
    propfind = proppatch = mkcol = copy = move = lock = unlock = report = search = get


# ---- WebSocket -----------------------------------------------------------------------------------------

class KernelSocketProxy(tornado.websocket.WebSocketHandler):
    """A WebSocket that is not a plugin route (the kernel's ``/ws``): the kernel's handshake answer decides;
    then frames are relayed both ways, text as text and binary as binary, and a close on either side closes the
    other with the same code and reason."""

    _upstream: tornado.websocket.WebSocketClientConnection | None = None
    _is_main = False

    @property
    def max_message_size(self) -> int:
        return _front_door(self).config.max_ws_message_bytes

    def check_origin(self, origin: str) -> bool:
        return True  # the kernel sees the Origin header and decides, as it does without the front door

    def check_xsrf_cookie(self) -> None:
        return None

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return self._upstream.selected_subprotocol if self._upstream is not None else None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        door = _front_door(self)
        try:
            url = door.config.target(self.request.uri or "", websocket=True)
        except ValueError:
            self.set_status(400)
            self.finish("400 Bad Request: only paths on this server are served")
            return
        offered = [p.strip() for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        request = tornado.httpclient.HTTPRequest(
            url, headers=forwarded_headers(self.request, drop=_WEBSOCKET_HANDSHAKE),
            connect_timeout=door.config.connect_timeout, request_timeout=door.config.connect_timeout,
            follow_redirects=False, decompress_response=False)
        try:
            self._upstream = await tornado.websocket.websocket_connect(
                request, subprotocols=offered or None, max_message_size=door.config.max_ws_message_bytes)
        except tornado.httpclient.HTTPClientError as exc:
            refused = exc.response
            self.set_status(exc.code)
            if refused is not None:
                for name, value in refused.headers.get_all():
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.add_header(name, value)
                self.finish(refused.body or b"")
            else:
                self.finish()
            return
        except (OSError, tornado.iostream.StreamClosedError, tornado.websocket.WebSocketError) as exc:
            log.warning("front door: WebSocket %s: the kernel at %s did not answer: %s", self.request.path,
                        door.config.origin, exc)
            self.set_status(502)
            self.finish("502 Bad Gateway: the SiYuan kernel did not answer")
            return
        self._is_main = self.request.path == "/ws" and self.get_query_argument("type", "") == "main"
        await super().get(*args, **kwargs)
        if self.ws_connection is None:  # the client's handshake failed after the kernel's succeeded
            self._upstream.close()

    def open(self, *args: Any, **kwargs: Any) -> None:
        if self._is_main:  # synchronously, so no change slips between the snapshot and the live pushes
            _front_door(self)._greet(self)
        self._reader = asyncio.ensure_future(self._relay_from_kernel())

    async def _relay_from_kernel(self) -> None:
        upstream = self._upstream
        assert upstream is not None
        while True:
            message = await upstream.read_message()
            if message is None:
                break
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except tornado.websocket.WebSocketClosedError:
                upstream.close()
                return
        if self.ws_connection is not None:
            code = upstream.close_code
            self.close(code if code not in (None, 1005, 1006) else None, upstream.close_reason)

    def inject(self, text: str) -> bool:
        if self.ws_connection is None or self.ws_connection.is_closing():
            return False
        self.write_message(text)
        return True

    async def on_message(self, message: str | bytes) -> None:
        if self._upstream is not None:
            with contextlib.suppress(tornado.websocket.WebSocketClosedError):
                await self._upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        _front_door(self)._main_sockets.discard(self)
        upstream = self._upstream
        if upstream is not None and upstream.protocol is not None:
            code = self.close_code
            upstream.close(code if code not in (None, 1005, 1006) else None, self.close_reason)


# ---- plugin routes behind the kernel's authentication ---------------------------------------------------

class _KernelAuthenticated:
    """Mixed in front of a plugin route's handler: the request's SiYuan credential is checked with the kernel
    before the handler decides anything; kplug_lab's own token is accepted too (scripts, the notebook)."""

    _kernel_principal: Principal | None = None

    async def _check_with_kernel(self) -> None:
        handler: tornado.web.RequestHandler = self  # type: ignore[assignment]
        own: TokenAuth | None = handler.settings.get("kplug_auth")
        if own is not None and own.authenticate(handler) is not None:
            self._kernel_principal = own.authenticate(handler)
            return
        if await _front_door(handler).credentials.check(handler.request):
            self._kernel_principal = Principal(can_call=True, can_admin=True)

    def kplug_principal(self) -> Principal | None:
        return self._kernel_principal


def _behind_kernel_auth(cls: type[tornado.web.RequestHandler]) -> type[tornado.web.RequestHandler]:
    if issubclass(cls, tornado.websocket.WebSocketHandler):
        class Socket(_KernelAuthenticated, cls):  # type: ignore[valid-type,misc]
            async def get(self, *args: Any, **kwargs: Any) -> None:
                await self._check_with_kernel()
                await super().get(*args, **kwargs)
        Socket.__name__ = Socket.__qualname__ = f"FrontDoor{cls.__name__}"
        return Socket

    class Handler(_KernelAuthenticated, cls):  # type: ignore[valid-type,misc]
        async def prepare(self) -> None:  # type: ignore[override]
            if self.request.method != "OPTIONS":
                await self._check_with_kernel()
            result = super().prepare()
            if result is not None:
                await result
    Handler.__name__ = Handler.__qualname__ = f"FrontDoor{cls.__name__}"
    return Handler


_WRAPPED = {kinds: _behind_kernel_auth(handler) for kinds, handler in _HANDLERS.items()}


class FrontDoorApplication(KplugApplication):
    """Plugin routes of plugins this host knows are answered here; a plugin route naming a plugin it does not
    know (one SiYuan's own host runs) and every other path go to the kernel, WebSocket upgrades to
    :class:`KernelSocketProxy`."""

    def get_handler_delegate(self, request: tornado.httputil.HTTPServerRequest,
                             target_class: type[tornado.web.RequestHandler],
                             target_kwargs: dict[str, Any] | None = None, path_args: list[bytes] | None = None,
                             path_kwargs: dict[str, bytes] | None = None) -> tornado.web._HandlerDelegate:
        if issubclass(target_class, _KernelAuthenticated) and not self._ours(request):
            target_class, target_kwargs, path_args, path_kwargs = KernelProxyHandler, {}, [], {}
        if target_class is KernelProxyHandler and request.headers.get("Upgrade", "").lower() == "websocket":
            target_class = KernelSocketProxy
        return super().get_handler_delegate(request, target_class, target_kwargs, path_args, path_kwargs)

    def _ours(self, request: tornado.httputil.HTTPServerRequest) -> bool:
        route = match(request.method or "GET", request.uri or "")
        if route is None or route.kind in (RouteKind.LIST, RouteKind.NOT_FOUND) or route.name is None:
            return True
        host: HostAPI = self.settings["kplug_host"]
        info = host.get_plugin(route.name)
        return info is not None and not info.runs_in_siyuan  # one SiYuan's own host runs is the kernel's


def make_front_door_app(host: HostAPI, token: str, door: FrontDoor, *, call_token: str | None = None,
                        dev_mode: bool = False, limits: Limits | None = None, ping_interval: float = 20,
                        **settings: Any) -> FrontDoorApplication:
    """The standalone application with the front door: the plugin routes behind the kernel's authentication,
    the admin API and the client script as in :func:`kplug_lab.rpc.app.make_standalone_app`, everything else
    passed to ``door.config.kernel_url``. Served at the root: SiYuan's clients call the plugin routes there."""
    plugin_routes = [(tornado_pattern(route), _WRAPPED[route.kinds]) for route in ROUTES]
    own = [r for r in make_routes("/") if r[1] not in _HANDLERS.values()]
    return FrontDoorApplication(
        [*plugin_routes, *own, (r"/.*", KernelProxyHandler)],  # type: ignore[arg-type]
        kplug_host=host,
        kplug_auth=TokenAuth(token, call_token),
        kplug_front_door=door,
        kplug_limits=limits or Limits(),
        kplug_dev_mode=dev_mode,
        websocket_ping_interval=ping_interval,
        websocket_max_message_size=(limits or Limits()).max_body_bytes,
        log_function=log_request,
        **settings,
    )


