"""SiYuan's plugin routes (spec §5.1), written once.

Two users read this table: ``rpc/app.py`` builds the tornado routes from it (one handler class per set of route
kinds), and the host answers a plugin's own ``siyuan.client.fetch`` to a plugin route by :func:`match`-ing the same
table (``host/route_answers.py``), because under kplug_lab the plugins live here, not in the kernel at ``siyuan_url``.

A route's path is written as gin writes it: ``:name`` is one path segment, ``*path`` the rest of the path.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from urllib.parse import parse_qs, unquote

__all__ = ["ANY_METHOD", "NOT_FOUND_ANSWER", "ROUTES", "Route", "RouteAnswer", "RouteKind", "RouteMatch",
           "info_envelope_error", "info_request_name", "json_answer", "match", "tornado_pattern"]

#: the method key of a route that takes every method (gin's ``Any``)
ANY_METHOD = "*"


class RouteKind(enum.Enum):
    RPC = "rpc"  # JSON-RPC over HTTP (§5.3)
    INFO = "info"  # one plugin's PluginInfo (§5.7)
    LIST = "list"  # every loaded plugin's PluginInfo (§5.7)
    RPC_SOCKET = "rpc socket"  # JSON-RPC over WebSocket (§5.4)
    PRIVATE = "private"  # a plugin's siyuan.server.private slots (§3.8)
    NOT_FOUND = "not found"  # a plugin route's path with a method it does not take (gin answers 404)


@dataclass(frozen=True)
class Route:
    #: the path, gin-style: ``/api/plugin/rpc/:name``
    path: str
    #: what each HTTP method of this path is (:data:`ANY_METHOD` for all of them)
    methods: Mapping[str, RouteKind]

    @property
    def kinds(self) -> frozenset[RouteKind]:
        return frozenset(self.methods.values())

    def kind(self, method: str) -> RouteKind:
        return self.methods.get(method.upper(), self.methods.get(ANY_METHOD, RouteKind.NOT_FOUND))


def _route(path: str, **methods: RouteKind) -> Route:
    return Route(path, MappingProxyType({ANY_METHOD if m == "ANY" else m: k for m, k in methods.items()}))


_K = RouteKind
ROUTES: tuple[Route, ...] = (
    _route("/api/plugin/rpc/:name", POST=_K.RPC, GET=_K.INFO),
    _route("/api/plugin/rpc", POST=_K.RPC, GET=_K.INFO),  # the name in ?name=
    _route("/ws/plugin/rpc/:name", GET=_K.RPC_SOCKET),
    _route("/ws/plugin/rpc", GET=_K.RPC_SOCKET),
    _route("/api/plugin/getLoadedPlugin", POST=_K.INFO),  # the name in ?name= or the JSON body
    _route("/api/plugin/listLoadedPlugins", POST=_K.LIST),
    _route("/api/plugin", GET=_K.LIST),
    _route("/plugin/private/:name/*path", ANY=_K.PRIVATE),
)


@dataclass(frozen=True)
class RouteMatch:
    kind: RouteKind
    #: the plugin named by the path, else by ``?name=``; None when neither names one
    name: str | None = None
    #: the rest of the path of a ``*path`` route, without its leading slash
    rest: str | None = None


_SEGMENT = r"([^/]+)"


def _regex(route: Route) -> re.Pattern[str]:
    pattern = re.escape(route.path).replace(":name", _SEGMENT)
    if pattern.endswith("/\\*path"):
        pattern = pattern[: -len("/\\*path")] + "(?:/(.*))?"
    return re.compile(pattern)


_COMPILED = tuple((route, _regex(route)) for route in ROUTES)


def match(method: str, target: str) -> RouteMatch | None:
    """The plugin route ``method target`` (a path with its query) goes to, or None for any other kernel path.

    The path is matched decoded, and without a trailing slash (gin redirects there, and clients follow)."""
    route_path, _, query = target.partition("#")[0].partition("?")
    route_path = unquote(route_path)
    if len(route_path) > 1 and route_path.endswith("/"):
        route_path = route_path[:-1]
    for route, regex in _COMPILED:
        found = regex.fullmatch(route_path)
        if found is None:
            continue
        groups = found.groups()
        path_name = groups[0] if groups and ":name" in route.path else None
        rest = (groups[-1] or "") if route.path.endswith("*path") else None
        kind = route.kind(method)
        if path_name is None and RouteKind.LIST not in route.kinds:
            names = parse_qs(query, keep_blank_values=True).get("name")
            return RouteMatch(kind, (names[0] or None) if names else None, rest)
        return RouteMatch(kind, path_name, rest)
    return None


def tornado_pattern(route: Route, base_url: str = "/") -> str:
    """The route as a tornado URL pattern under ``base_url``: one capture group per ``:name`` and ``*path``;
    a trailing slash is optional, as it is under gin."""
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    pattern = base + route.path.lstrip("/")
    pattern = pattern.replace(":name", r"([^/?]+)")
    if pattern.endswith("/*path"):
        return pattern[: -len("/*path")] + "/?(.*)"
    return pattern + "/?"


# ---- answers, as the wire gives them (§5.3-§5.7) -----------------------------------------------------------

_JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class RouteAnswer:
    """A plugin route's answer: what the wire sends, and what a plugin's ``siyuan.client.fetch`` gets."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status_text(self) -> str:
        """Go's status line, code included (``"200 OK"``), as ``Response.statusText`` carries it."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"


#: a plugin route's path with a method it does not take, as gin answers it
NOT_FOUND_ANSWER = RouteAnswer(404, b"404 page not found", {"Content-Type": "text/plain"})


def json_answer(value: object, status: int = 200) -> RouteAnswer:
    """``value`` (already-encoded JSON text, or a value to encode as Go's ``c.JSON`` does) as an answer."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    content = text.encode("utf-8")
    return RouteAnswer(status, content, {"Content-Type": _JSON_TYPE, "Content-Length": str(len(content))})


def info_envelope_error(code: int, msg: str) -> dict[str, object]:
    return {"code": code, "msg": msg, "data": None}


def info_request_name(name: str | None, body: bytes) -> str | dict[str, object]:
    """The plugin a plugin-info request (§5.7) asks about: ``name`` from the path or query, else the JSON body's
    ``name``; or the envelope SiYuan answers when there is none."""
    if not name and body:
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return info_envelope_error(-1, f"parses request failed: {exc}")
        if not isinstance(request, dict) or "name" not in request:
            return info_envelope_error(1, "Request body prop [name] does not exist")
        if not isinstance(request["name"], str):
            return info_envelope_error(2, "Request body prop [name] is not a string")
        name = request["name"]
    if not name:
        return info_envelope_error(3, "Plugin name is required")
    return name
