"""SiYuan's plugin routes (spec §5.1) answered by the host itself, for a plugin's ``siyuan.client.fetch``.

In SiYuan the kernel plugins live inside the kernel, so ``siyuan.client.fetch("/api/plugin/listLoadedPlugins")``,
which goes to the kernel, answers about them, and ``POST /api/plugin/rpc/<name>`` calls another plugin's method.
Under kplug_lab the plugins live here, not in the kernel at ``siyuan_url``: these routes are answered from the
plugin manager with the shapes the wire gives (§5.3-§5.7), and never reach the kernel. Everything else,
including the private routes ``/plugin/private/<name>/...``, still goes to the kernel.

The answer is worked out on the asyncio loop (never on the calling plugin's actor thread), so a plugin that
calls its own method this way is not waiting on itself: the call is queued as a new job on its actor.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from .api import HostAPI, PluginInfo, PluginState
from .jsonrpc import Limits, error_response, process

__all__ = ["PluginRoute", "RouteAnswer", "RouteKind", "answer", "match"]

_JSON_TYPE = "application/json; charset=utf-8"


class RouteKind(enum.Enum):
    RPC = "rpc"  # JSON-RPC over HTTP (§5.3)
    INFO = "info"  # one plugin's PluginInfo (§5.7)
    LIST = "list"  # every loaded plugin's PluginInfo (§5.7)
    NOT_FOUND = "not found"  # a plugin route's path with a method it does not take (gin answers 404)


@dataclass(frozen=True)
class PluginRoute:
    kind: RouteKind
    #: the plugin named by the path, else by ``?name=``; None when neither names one
    name: str | None = None


@dataclass(frozen=True)
class RouteAnswer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status_text(self) -> str:
        """Go's status line, code included (``"200 OK"``), as ``Response.statusText`` carries it."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"


def match(method: str, path: str) -> PluginRoute | None:
    """The plugin route ``method path`` (path with its query) goes to, or None for any other kernel path."""
    route_path, _, query = path.partition("#")[0].partition("?")
    route_path = unquote(route_path)  # gin matches the decoded path
    if len(route_path) > 1 and route_path.endswith("/"):
        route_path = route_path[:-1]  # gin redirects to the path without the slash, and Go's client follows
    names = parse_qs(query, keep_blank_values=True).get("name")
    query_name = names[0] if names else None
    if route_path == "/api/plugin":
        return PluginRoute(RouteKind.LIST if method == "GET" else RouteKind.NOT_FOUND)
    if route_path == "/api/plugin/listLoadedPlugins":
        return PluginRoute(RouteKind.LIST if method == "POST" else RouteKind.NOT_FOUND)
    if route_path == "/api/plugin/getLoadedPlugin":
        return PluginRoute(RouteKind.INFO if method == "POST" else RouteKind.NOT_FOUND, query_name or None)
    if route_path == "/api/plugin/rpc" or route_path.startswith("/api/plugin/rpc/"):
        path_name = route_path[len("/api/plugin/rpc/"):]
        if "/" in path_name:
            return None
        kind = {"POST": RouteKind.RPC, "GET": RouteKind.INFO}.get(method, RouteKind.NOT_FOUND)
        return PluginRoute(kind, path_name or query_name or None)
    return None


async def answer(host: HostAPI, route: PluginRoute, body: bytes | None, *, limits: Limits | None = None) -> RouteAnswer:
    """What the route answers, as the wire would (``rpc/handlers.py`` serves the same routes over HTTP)."""
    if route.kind is RouteKind.LIST:
        return _json({"code": 0, "msg": "", "data": [info.to_siyuan() for info in host.list_plugins()] or None})
    if route.kind is RouteKind.INFO:
        return _json(_info_envelope(host, route.name, body or b""))
    if route.kind is RouteKind.RPC:
        return await _rpc(host, route.name, body or b"", limits or Limits())
    return RouteAnswer(404, b"404 page not found", {"Content-Type": "text/plain"})


def _info_envelope(host: HostAPI, name: str | None, body: bytes) -> dict[str, Any]:
    if not name and body:
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return {"code": -1, "msg": f"parses request failed: {exc}", "data": None}
        if not isinstance(request, dict) or "name" not in request:
            return {"code": 1, "msg": "Request body prop [name] does not exist", "data": None}
        if not isinstance(request["name"], str):
            return {"code": 2, "msg": "Request body prop [name] is not a string", "data": None}
        name = request["name"]
    if not name:
        return {"code": 3, "msg": "Plugin name is required", "data": None}
    info: PluginInfo | None = host.get_plugin(name)
    if info is None:
        return {"code": 4, "msg": f"Plugin [{name}] not loaded", "data": None}
    return {"code": 0, "msg": "", "data": info.to_siyuan()}


async def _rpc(host: HostAPI, name: str | None, body: bytes, limits: Limits) -> RouteAnswer:
    info = host.get_plugin(name) if name else None
    if info is None:  # the pre-check answers before the body is read, notifications included (§5.3)
        return _json(error_response(-32001))
    if info.state != PluginState.RUNNING:
        return _json(error_response(-32002))
    if len(body) > limits.max_body_bytes:
        return _json(error_response(-32600, f"RPC request is too large: {len(body)} bytes, "
                                            f"the limit is {limits.max_body_bytes}"), 413)
    plugin = info.name

    async def caller(method: str, params: Any) -> Any:
        return await host.call(plugin, method, params, timeout=limits.call_timeout)

    text = await process(body, caller, plugin=plugin, limits=limits)
    if text is None:
        return RouteAnswer(204)
    return _encoded(text.encode("utf-8"))


def _json(value: Any, status: int = 200) -> RouteAnswer:
    return _encoded(json.dumps(value, ensure_ascii=False).encode("utf-8"), status)


def _encoded(content: bytes, status: int = 200) -> RouteAnswer:
    return RouteAnswer(status, content, {"Content-Type": _JSON_TYPE, "Content-Length": str(len(content))})
