"""Routes and the standalone tornado application."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tornado.httputil
import tornado.web

from ..host.api import HostAPI
from ..protocol.jsonrpc import Limits
from ..protocol.routes import ROUTES, RouteKind, tornado_pattern
from .cors import CORSPolicy
from .handlers import (
    AdminRPCHandler,
    AdminWebSocketHandler,
    BoundedBodyHandler,
    PluginInfoHandler,
    PluginListHandler,
    PluginRPCHandler,
    PluginRPCWebSocket,
    PrivateHandler,
    TokenAuth,
    needs_streaming,
    streamed,
)
from .main_channel import MainChannelSocket
from .secrets_in_logs import log_request

__all__ = ["ClientScriptHandler", "KplugApplication", "PluginRPCOrInfoHandler", "make_routes", "make_standalone_app"]

STATIC_DIR = Path(__file__).with_name("static")


def make_routes(base_url: str = "/") -> list[tuple[Any, ...]]:
    """SiYuan's plugin routes (spec §5.1; the table is :data:`kplug_lab.protocol.routes.ROUTES`) and the admin
    API, under ``base_url``."""
    b = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    return [
        *((tornado_pattern(route, base_url), _HANDLERS[route.kinds]) for route in ROUTES),
        (rf"{b}kplug/api/rpc", AdminRPCHandler),
        (rf"{b}kplug/api/ws", AdminWebSocketHandler),
        (rf"{b}kplug/static/(.*)", ClientScriptHandler, {"path": str(STATIC_DIR)}),
    ]


class ClientScriptHandler(tornado.web.StaticFileHandler):
    """``GET <base>/kplug/static/<file>``: the browser client ``kplug-client.js``. Public code, so no auth, and
    loadable as a module script from another origin (a SiYuan client plugin runs on SiYuan's origin)."""

    def set_default_headers(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")


class PluginRPCOrInfoHandler(PluginRPCHandler, PluginInfoHandler):
    """``/api/plugin/rpc``: POST is a call, GET is plugin info (GET is not an RPC call, spec §5.1)."""

    post = PluginRPCHandler.post  # type: ignore[assignment]
    get = PluginInfoHandler.get  # type: ignore[assignment]


#: the handler class that serves a route, by the kinds of its methods
_HANDLERS: dict[frozenset[RouteKind], type[tornado.web.RequestHandler]] = {
    frozenset({RouteKind.RPC, RouteKind.INFO}): PluginRPCOrInfoHandler,
    frozenset({RouteKind.RPC_SOCKET}): PluginRPCWebSocket,
    frozenset({RouteKind.INFO}): PluginInfoHandler,
    frozenset({RouteKind.LIST}): PluginListHandler,
    frozenset({RouteKind.PRIVATE}): PrivateHandler,
}


class KplugApplication(tornado.web.Application):
    """The standalone application: a request body too large to buffer is served by the streamed variant of its
    handler, which refuses it before it is read (:class:`~kplug_lab.rpc.handlers.BoundedBodyHandler`)."""

    def get_handler_delegate(self, request: tornado.httputil.HTTPServerRequest,
                             target_class: type[tornado.web.RequestHandler],
                             target_kwargs: dict[str, Any] | None = None, path_args: list[bytes] | None = None,
                             path_kwargs: dict[str, bytes] | None = None) -> tornado.web._HandlerDelegate:
        limits: Limits = self.settings.get("kplug_limits") or Limits()
        if issubclass(target_class, BoundedBodyHandler) and needs_streaming(request.headers, limits.max_body_bytes):
            target_class = streamed(target_class)
        return super().get_handler_delegate(request, target_class, target_kwargs, path_args, path_kwargs)


def make_standalone_app(
    host: HostAPI, token: str, *, call_token: str | None = None, base_url: str = "/", dev_mode: bool = False,
    limits: Limits | None = None, ping_interval: float = 20, allow_origins: Iterable[str] = (), **settings: Any,
) -> tornado.web.Application:
    """``allow_origins``: browser origins (``scheme://host[:port]``, or ``*``) that may call the plugin routes
    from their pages (:mod:`kplug_lab.rpc.cors`); ValueError for one that is not an origin."""
    b = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    # SiYuan's main channel, for the plugin state pushes (rpc/main_channel.py): standalone only, since behind the
    # front door /ws is the kernel's (the pushes are merged into it) and in Jupyter the page is not SiYuan's
    main_channel = (rf"{b}ws", MainChannelSocket)
    return KplugApplication(
        [*make_routes(base_url), main_channel],  # type: ignore[arg-type]
        kplug_host=host,
        kplug_auth=TokenAuth(token, call_token),
        kplug_cors=CORSPolicy(allow_origins),
        kplug_limits=limits or Limits(),
        kplug_dev_mode=dev_mode,
        websocket_ping_interval=ping_interval,
        log_function=log_request,
        websocket_max_message_size=(limits or Limits()).max_body_bytes,
        **settings,
    )
