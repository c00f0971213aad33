"""SiYuan's plugin routes (spec §5.1) answered by the host itself, for a plugin's ``siyuan.client.fetch``.

In SiYuan the kernel plugins live inside the kernel, so ``siyuan.client.fetch("/api/plugin/listLoadedPlugins")``,
which goes to the kernel, answers about them, and ``POST /api/plugin/rpc/<name>`` calls another plugin's method.
Under kplug_lab the plugins live here, not in the kernel at ``siyuan_url``: these routes (the route table is
:mod:`kplug_lab.protocol.routes`) are answered from the plugin manager with the shapes the wire gives
(§5.3-§5.7), and never reach the kernel. The RPC WebSocket route is answered in-process too, for
``siyuan.client.socket`` (:mod:`kplug_lab.host.route_sockets`); the private routes ``/plugin/private/<name>/...``
still go to the kernel. ``rpc/handlers.py`` serves the same answers over HTTP.

The answer is worked out on the asyncio loop (never on the calling plugin's actor thread), so a plugin that
calls its own method this way is not waiting on itself: the call is queued as a new job on its actor.
"""

from __future__ import annotations

from typing import Any

from ..protocol import routes
from ..protocol.jsonrpc import Limits, error_response
from ..protocol.routes import NOT_FOUND_ANSWER, RouteAnswer, RouteKind, RouteMatch, json_answer
from .api import HostAPI, PluginState
from .calls import process

__all__ = ["answer", "match"]

#: the route kinds the host answers itself; the others are HTTP-only (upgrades, private pages)
_ANSWERED = frozenset({RouteKind.RPC, RouteKind.INFO, RouteKind.LIST, RouteKind.NOT_FOUND})


def match(method: str, target: str) -> RouteMatch | None:
    """The plugin route the host answers for ``method target`` (a path with its query), or None when the
    request is for the kernel."""
    found = routes.match(method, target)
    return found if found is not None and found.kind in _ANSWERED else None


async def answer(host: HostAPI, route: RouteMatch, body: bytes | None, *, limits: Limits | None = None) -> RouteAnswer:
    """What the route answers, as the wire would."""
    if route.kind is RouteKind.LIST:
        return json_answer({"code": 0, "msg": "", "data": [info.to_siyuan() for info in host.list_plugins()] or None})
    if route.kind is RouteKind.INFO:
        return json_answer(_info_envelope(host, route.name, body or b""))
    if route.kind is RouteKind.RPC:
        return await _rpc(host, route.name, body or b"", limits or Limits())
    return NOT_FOUND_ANSWER


def _info_envelope(host: HostAPI, name: str | None, body: bytes) -> dict[str, Any]:
    asked = routes.info_request_name(name, body)
    if not isinstance(asked, str):
        return asked
    info = host.get_plugin(asked)
    if info is None:
        return {"code": 4, "msg": f"Plugin [{asked}] not loaded", "data": None}
    return {"code": 0, "msg": "", "data": info.to_siyuan()}


async def _rpc(host: HostAPI, name: str | None, body: bytes, limits: Limits) -> RouteAnswer:
    info = host.get_plugin(name) if name else None
    if info is None:  # the pre-check answers before the body is read, notifications included (§5.3)
        return json_answer(error_response(-32001))
    if info.state != PluginState.RUNNING:
        return json_answer(error_response(-32002))
    if len(body) > limits.max_body_bytes:
        return json_answer(error_response(-32600, f"RPC request is too large: {len(body)} bytes, "
                                                  f"the limit is {limits.max_body_bytes}"), 413)
    plugin = info.name

    async def caller(method: str, params: Any) -> Any:
        return await host.call(plugin, method, params, timeout=limits.call_timeout)

    text = await process(body, caller, plugin=plugin, limits=limits)
    if text is None:
        return RouteAnswer(204)
    return json_answer(text)
