"""The RPC routes inside jupyter_server: the standalone handlers' logic, authenticated by the server.

Nothing here translates the wire: each Jupyter-mode handler is a subclass of the standalone handler (from
:mod:`kplug_lab.rpc.handlers`) with jupyter_server's base class in front of it and its HTTP methods wrapped in
``@web.authenticated`` + ``@authorized(action, "kplug")``. WebSockets use ``@ws_authenticated`` and the same
authorizer check before the upgrade, with the server's origin checks (``ServerApp.allow_origin``...).

Permissions map to the server's authorizer as resource ``kplug`` with the standard Jupyter actions:

=========  ============================================================================
``read``     plugin info and the plugin list (``/api/plugin/...``, ``getLoadedPlugin``)
``execute``  calling plugin methods (``/api/plugin/rpc`` POST, ``/ws/plugin/rpc``)
``write``    the admin API (``/kplug/api/rpc``, ``/kplug/api/ws``) and plugins' private routes
``public``   no authentication: the browser client script (``/kplug/static/kplug-client.js``), public code
=========  ============================================================================

A route this table does not know yet asks for ``write``: unknown routes are admin-only until classified.

The optional call-only token (``KplugLabApp.call_token``) is recognised by these handlers only, never by the
rest of the server: a request bearing it is the user ``kplug-call-only`` and may ``read`` and ``execute`` on
``kplug``, nothing else; the server's authorizer is not consulted for it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

import tornado.web
import tornado.websocket
from jupyter_core.utils import ensure_async
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.decorator import allow_unauthenticated, authorized, ws_authenticated
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin

from ..protocol.jsonrpc import Limits
from ..rpc.app import ClientScriptHandler, PluginRPCOrInfoHandler, make_routes
from ..rpc.handlers import (
    AdminRPCHandler,
    AdminWebSocketHandler,
    CrossOriginHandler,
    PluginInfoHandler,
    PluginListHandler,
    PluginRPCWebSocket,
    Principal,
    PrivateHandler,
    TokenAuth,
    write_envelope_error,
)
from ..rpc.secrets_in_logs import token_from_subprotocols

__all__ = ["ACTIONS", "CALL_ONLY_USER", "KPLUG_RESOURCE", "PUBLIC", "jupyter_handler", "jupyter_routes"]

KPLUG_RESOURCE = "kplug"
CALL_ONLY_ACTIONS = frozenset({"read", "execute"})
#: not an authorizer action: the route needs no authentication at all
PUBLIC = "public"
_ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

#: the authorizer action each route's HTTP method asks for, on resource ``kplug``
ACTIONS: dict[type[tornado.web.RequestHandler], dict[str, str]] = {
    PluginRPCOrInfoHandler: {"POST": "execute", "GET": "read"},
    PluginRPCWebSocket: {"GET": "execute"},
    PluginInfoHandler: {"GET": "read", "POST": "read"},
    PluginListHandler: {"GET": "read", "POST": "read"},
    PrivateHandler: dict.fromkeys(_ALL_METHODS, "write"),
    AdminRPCHandler: {"POST": "write"},
    AdminWebSocketHandler: {"GET": "write"},
    ClientScriptHandler: {"GET": PUBLIC, "HEAD": PUBLIC},
}

CALL_ONLY_USER = User(username="kplug-call-only", name="kplug call-only token", display_name="kplug call-only token")


class CallOnlyAuthorizer(Authorizer):
    """What the call-only token may do: read and execute on ``kplug``; nothing on any other resource."""

    def is_authorized(self, handler: JupyterHandler, user: User, action: str, resource: str) -> bool:
        return resource == KPLUG_RESOURCE and action in CALL_ONLY_ACTIONS


_CALL_ONLY_AUTHORIZER = CallOnlyAuthorizer()


class CallTokenIdentity:
    """The server's identity provider, seen through the call-only token.

    A request bearing the token (``Authorization: token|Token|Bearer <t>`` or ``?token=``, compared in constant
    time) is :data:`CALL_ONLY_USER`, token-authenticated (so no XSRF cookie is needed, as for the server's own
    token); every other request is the server's to identify. Everything else is delegated unchanged.
    """

    def __init__(self, inner: IdentityProvider, call_token: str) -> None:
        self._inner = inner
        self._call_auth = TokenAuth(call_token)

    def get_user(self, handler: tornado.web.RequestHandler) -> Any:
        if self._call_auth.authenticate(handler) is not None:
            handler._kplug_call_only = True  # type: ignore[attr-defined]
            return CALL_ONLY_USER
        return self._inner.get_user(handler)

    def is_token_authenticated(self, handler: tornado.web.RequestHandler) -> bool:
        return bool(getattr(handler, "_kplug_call_only", False)) or self._inner.is_token_authenticated(handler)

    def should_check_origin(self, handler: tornado.web.RequestHandler) -> bool:
        return not self.is_token_authenticated(handler)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _JupyterAuth:
    """The Jupyter-mode half of every handler: who is asking (the server's identity provider, or the
    call-only token) and what they may do (the server's authorizer, or :class:`CallOnlyAuthorizer`)."""

    settings: dict[str, Any]
    current_user: Any

    @property
    def identity_provider(self) -> IdentityProvider:
        inner: IdentityProvider = self.settings["identity_provider"]
        call_token = self.settings.get("kplug_call_token")
        return cast(IdentityProvider, CallTokenIdentity(inner, call_token)) if call_token else inner

    @property
    def authorizer(self) -> Authorizer:
        if getattr(self, "_kplug_call_only", False):
            return _CALL_ONLY_AUTHORIZER
        return cast(Authorizer, self.settings["authorizer"])

    def kplug_principal(self) -> Principal | None:
        if not self.current_user:
            return None
        return Principal(can_call=True, can_admin=not getattr(self, "_kplug_call_only", False))

    async def kplug_authorize(self, action: str) -> None:
        allowed = await ensure_async(self.authorizer.is_authorized(
            cast(JupyterHandler, self), self.current_user, action, KPLUG_RESOURCE))
        if not allowed:
            raise tornado.web.HTTPError(403, f"User is not authorized to {action} on resource: {KPLUG_RESOURCE}.")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Refusals and errors as SiYuan's ``{code, msg, data}`` envelope, not the server's HTML page."""
        write_envelope_error(cast(tornado.web.RequestHandler, self), status_code, **kwargs)


class _JupyterHTTP(_JupyterAuth):
    """HTTP routes are an API: refuse with 403 instead of redirecting to the login page."""

    async def prepare(self) -> None:
        await super().prepare(_redirect_to_login=False)  # type: ignore[misc]

    def get_login_url(self) -> str:
        raise tornado.web.HTTPError(403)


class _JupyterSocket(_JupyterAuth):
    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        """A browser client's token arrives as the ``kplug.token.<base64url>`` subprotocol (a WebSocket cannot
        carry headers, and a token in the URL ends up in logs): the server's identity provider reads it as the
        ``Authorization`` header it already understands."""
        request = cast(tornado.web.RequestHandler, self).request
        token = token_from_subprotocols(request.headers.get("Sec-WebSocket-Protocol", ""))
        if token and not request.headers.get("Authorization"):
            request.headers["Authorization"] = f"token {token}"
        await super().prepare(*args, **kwargs)  # type: ignore[misc]

    def set_default_headers(self) -> None:
        """The server's default HTTP headers (CSP...) do not apply to a WebSocket upgrade."""

    @property
    def max_message_size(self) -> int:
        limits: Limits = self.settings.get("kplug_limits") or Limits()
        return limits.max_body_bytes


def _guard_http(fn: Callable[..., Any], action: str) -> Callable[..., Any]:
    return tornado.web.authenticated(authorized(action, resource=KPLUG_RESOURCE)(fn))


def _guard_socket(fn: Callable[..., Any], action: str) -> Callable[..., Any]:
    @ws_authenticated
    async def get(self: _JupyterSocket, *args: Any, **kwargs: Any) -> None:
        await self.kplug_authorize(action)
        await fn(self, *args, **kwargs)

    return cast(Callable[..., Any], get)


@cache
def jupyter_handler(cls: type[tornado.web.RequestHandler]) -> type[tornado.web.RequestHandler]:
    """The Jupyter-mode version of a standalone handler class: same logic, the server's auth in front."""
    actions = ACTIONS.get(cls, {})
    if actions and set(actions.values()) == {PUBLIC}:
        # served as standalone serves it (its own headers, no identity lookup), marked public for the server
        public = {name.lower(): allow_unauthenticated(getattr(cls, name.lower())) for name in actions}
        return type(f"Jupyter{cls.__name__}", (cls,), {**public, "__doc__": cls.__doc__})
    if issubclass(cls, tornado.websocket.WebSocketHandler):
        socket_get = _guard_socket(cls.get, actions.get("GET", "write"))
        return type(f"Jupyter{cls.__name__}", (_JupyterSocket, WebSocketMixin, cls, JupyterHandler),
                    {"get": socket_get, "__doc__": cls.__doc__})
    namespace: dict[str, Any] = {"__doc__": cls.__doc__}
    if issubclass(cls, CrossOriginHandler):
        # the CORS preflight as the server answers it for its own API: unauthenticated, per allow_origin
        namespace["options"] = APIHandler.options
    for method in _ALL_METHODS:
        name = method.lower()
        if name in namespace:
            continue
        fn = getattr(cls, name)
        if fn is not getattr(tornado.web.RequestHandler, name):
            namespace[name] = _guard_http(fn, actions.get(method, "write"))
    return type(f"Jupyter{cls.__name__}", (_JupyterHTTP, JupyterHandler, cls), namespace)


def jupyter_routes() -> list[tuple[Any, ...]]:
    """The standalone routes (relative to the server's ``base_url``, which jupyter_server prepends) with
    Jupyter-mode handlers."""
    return [(pattern, jupyter_handler(cls), *rest) for pattern, cls, *rest in make_routes("/")]
