"""SiYuan's plugin routes (spec §5.1) answered by the host itself, for a plugin's ``siyuan.client.fetch``.

In SiYuan the kernel plugins live inside the kernel, so ``siyuan.client.fetch("/api/plugin/listLoadedPlugins")``,
which goes to the kernel, answers about them, and ``POST /api/plugin/rpc/<name>`` calls another plugin's method.
Under kplug_lab the plugins live here, not in the kernel at ``siyuan_url``: these routes (the route table is
:mod:`kplug_lab.protocol.routes`) are answered from the plugin manager with the shapes the wire gives
(§5.3-§5.7), and never reach the kernel. A plugin's private routes ``/plugin/private/<name>/...`` are answered
here too, by that plugin's ``siyuan.server.private.http`` handler, as the HTTP route serves them (``file`` bodies
read from where the host confined them; ``proxy`` bodies are not followed in-process). The RPC WebSocket route is
answered in-process for ``siyuan.client.socket`` (:mod:`kplug_lab.host.route_sockets`). ``rpc/handlers.py``
serves the same answers over HTTP.

The answer is worked out on the asyncio loop (never on the calling plugin's actor thread), so a plugin that
calls its own method this way is not waiting on itself: the call is queued as a new job on its actor.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..protocol import private as private_model
from ..protocol import routes
from ..protocol.jsonrpc import Limits, error_response
from ..protocol.private import ResponseError
from ..protocol.routes import NOT_FOUND_ANSWER, RouteAnswer, RouteKind, RouteMatch, json_answer
from .api import HostAPI, PluginState
from .calls import process

__all__ = ["answer", "match"]

#: the route kinds the host answers itself; the others are HTTP-only (upgrades, private pages)
_ANSWERED = frozenset({RouteKind.RPC, RouteKind.INFO, RouteKind.LIST, RouteKind.PRIVATE, RouteKind.NOT_FOUND})
#: the largest ``file`` body a private route hands to ``siyuan.client.fetch`` in-process
MAX_FILE_ANSWER = 64 * 1024 * 1024


def match(method: str, target: str) -> RouteMatch | None:
    """The plugin route the host answers for ``method target`` (a path with its query), or None when the
    request is for the kernel."""
    found = routes.match(method, target)
    return found if found is not None and found.kind in _ANSWERED else None


async def answer(host: HostAPI, route: RouteMatch, body: bytes | None, *, limits: Limits | None = None,
                 method: str = "GET", target: str = "/", headers: Mapping[str, str] | None = None) -> RouteAnswer:
    """What the route answers, as the wire would (``method``, ``target`` and ``headers`` matter for private
    routes only)."""
    if route.kind is RouteKind.PRIVATE:
        return await _private(host, route, method, target, dict(headers or {}), body or b"")
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


def _text(status: int, text: str) -> RouteAnswer:
    return RouteAnswer(status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8"})


async def _private(host: HostAPI, route: RouteMatch, method: str, target: str, headers: dict[str, str],
                   body: bytes) -> RouteAnswer:
    """A plugin's ``siyuan.server.private.http`` answer to a request made by a plugin (never a WebSocket or SSE:
    those are not fetches)."""
    name = route.name or ""
    info = host.get_plugin(name)
    if info is None:
        return _text(404, f"[plugin:{name}] not found")
    if info.state != PluginState.RUNNING:
        return _text(503, f"[plugin:{name}] is not running")
    query = urlsplit(target).query
    request = private_model.request_object(
        name, route.rest or "", method=method, uri=target, version="HTTP/1.1", host="127.0.0.1",
        remote_ip="127.0.0.1", headers=list(headers.items()), cookies=[],
        query={k: [v.encode() for v in vs] for k, vs in parse_qs(query, keep_blank_values=True).items()},
        body=body, form={}, files={})
    try:
        res = await host.http_request(name, "http", request)
    except Exception as exc:
        return _text(500, f"[plugin:{name}] Error occurred while handling HTTP request: {exc}")
    try:
        return _private_answer(name, res, target)
    except ResponseError as exc:
        return _text(exc.status, exc.text)
    except (ValueError, TypeError, AttributeError) as exc:
        return _text(500, f"[plugin:{name}] Error occurred while handling HTTP request: invalid response format "
                          f"({exc})")


def _private_answer(name: str, res: Any, target: str) -> RouteAnswer:
    path = urlsplit(target).path
    response = private_model.check_response(name, res, private_model.cookie_scope(path, name))
    headers: dict[str, str] = {}
    for key, value in response.headers:
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if response.set_cookies:
        headers["Set-Cookie"] = ", ".join(response.set_cookies)
    status, spec = response.status, response.body
    if response.body_kind == "data":
        callback = (parse_qs(urlsplit(target).query).get("callback") or [""])[0]
        ctype, text = private_model.data_body(spec, callback)
        return RouteAnswer(status or 200, text.encode("utf-8"), dict(headers, **{"Content-Type": ctype}))
    if response.body_kind == "string":
        text = private_model.go_format(str(spec.get("format", "")), spec.get("values") or [])
        return RouteAnswer(status or 200, text.encode("utf-8"),
                           dict(headers, **{"Content-Type": "text/plain; charset=utf-8"}))
    if response.body_kind == "raw":
        ctype, data = private_model.raw_body(spec)
        return RouteAnswer(status or 200, data, dict(headers, **{"Content-Type": ctype}))
    if response.body_kind == "redirect":
        return RouteAnswer(status, b"", dict(headers, Location=spec))
    if response.body_kind == "file":
        resolved = spec.get("resolved") if isinstance(spec, dict) else None
        if not isinstance(resolved, str):
            return _text(404, "404 page not found")
        with open(resolved, "rb") as f:
            data = f.read(MAX_FILE_ANSWER + 1)
        if len(data) > MAX_FILE_ANSWER:
            return _text(500, f"[plugin:{name}] file larger than {MAX_FILE_ANSWER} bytes: not served in-process")
        ctype = mimetypes.guess_type(resolved)[0] or "application/octet-stream"
        return RouteAnswer(status or 200, data, dict(headers, **{"Content-Type": ctype}))
    if response.body_kind == "proxy":
        return _text(502, f"[plugin:{name}] a proxy body is not followed for a plugin's own fetch")
    return RouteAnswer(status or 200, b"", headers)
