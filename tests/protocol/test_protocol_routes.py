"""SiYuan's plugin route table (spec §5.1), written once: :mod:`kplug_lab.protocol.routes`."""

from __future__ import annotations

import json
import re

import pytest

from kplug_lab.protocol.routes import (
    NOT_FOUND_ANSWER,
    ROUTES,
    RouteKind,
    RouteMatch,
    info_request_name,
    json_answer,
    match,
    tornado_pattern,
)

K = RouteKind


@pytest.mark.parametrize(("method", "target", "expected"), [
    ("GET", "/api/plugin", RouteMatch(K.LIST)),
    ("GET", "/api/plugin/?name=x", RouteMatch(K.LIST)),  # the list takes no name
    ("POST", "/api/plugin/listLoadedPlugins", RouteMatch(K.LIST)),
    ("POST", "/api/plugin/getLoadedPlugin?name=a", RouteMatch(K.INFO, "a")),
    ("POST", "/api/plugin/rpc/a?name=b", RouteMatch(K.RPC, "a")),  # the path wins over ?name=
    ("post", "/api/plugin/rpc?appId=1&name=b", RouteMatch(K.RPC, "b")),
    ("POST", "/api/plugin/rpc/my%20plugin/", RouteMatch(K.RPC, "my plugin")),
    ("GET", "/api/plugin/rpc/a#frag", RouteMatch(K.INFO, "a")),
    ("PUT", "/api/plugin/rpc/a", RouteMatch(K.NOT_FOUND, "a")),
    ("GET", "/api/plugin/listLoadedPlugins", RouteMatch(K.NOT_FOUND)),
    ("GET", "/ws/plugin/rpc/a", RouteMatch(K.RPC_SOCKET, "a")),
    ("GET", "/ws/plugin/rpc?name=a", RouteMatch(K.RPC_SOCKET, "a")),
    ("DELETE", "/plugin/private/a/x/y.html", RouteMatch(K.PRIVATE, "a", "x/y.html")),
    ("GET", "/plugin/private/a", RouteMatch(K.PRIVATE, "a", "")),
    ("POST", "/api/plugin/rpc/a/b", None),
    ("POST", "/api/plugins", None),
    ("POST", "/api/system/version", None),
])
def test_a_request_is_matched_to_its_route_kind_and_plugin_name(method: str, target: str,
                                                               expected: RouteMatch | None) -> None:
    assert match(method, target) == expected


def test_every_route_of_the_spec_is_in_the_table_once() -> None:
    paths = [route.path for route in ROUTES]
    assert len(paths) == len(set(paths))
    assert set(paths) == {"/api/plugin/rpc/:name", "/api/plugin/rpc", "/ws/plugin/rpc/:name", "/ws/plugin/rpc",
                          "/api/plugin/getLoadedPlugin", "/api/plugin/listLoadedPlugins", "/api/plugin",
                          "/plugin/private/:name/*path"}


@pytest.mark.parametrize("base", ["/", "/base/", "base"])
def test_the_tornado_patterns_match_what_the_table_matches(base: str) -> None:
    prefix = "/" + base.strip("/") if base.strip("/") else ""
    samples = {"/api/plugin/rpc/:name": ("/api/plugin/rpc/p", ("p",)), "/api/plugin/rpc": ("/api/plugin/rpc/", ()),
               "/ws/plugin/rpc/:name": ("/ws/plugin/rpc/p", ("p",)), "/ws/plugin/rpc": ("/ws/plugin/rpc", ()),
               "/api/plugin/getLoadedPlugin": ("/api/plugin/getLoadedPlugin", ()),
               "/api/plugin/listLoadedPlugins": ("/api/plugin/listLoadedPlugins/", ()),
               "/api/plugin": ("/api/plugin", ()),
               "/plugin/private/:name/*path": ("/plugin/private/p/a/b", ("p", "a/b"))}
    for route in ROUTES:
        path, groups = samples[route.path]
        found = re.fullmatch(tornado_pattern(route, base), prefix + path)
        assert found is not None and found.groups() == groups, route.path
        assert re.fullmatch(tornado_pattern(route, base), prefix + "/api/other") is None


@pytest.mark.parametrize(("name", "body", "expected"), [
    ("a", b'{"name":"b"}', "a"),
    (None, b'{"name":"b"}', "b"),
    (None, b"", {"code": 3, "msg": "Plugin name is required", "data": None}),
    (None, b"[1]", {"code": 1, "msg": "Request body prop [name] does not exist", "data": None}),
    (None, b'{"name":1}', {"code": 2, "msg": "Request body prop [name] is not a string", "data": None}),
])
def test_a_plugin_info_request_names_its_plugin_or_gets_siyuans_envelope(name: str | None, body: bytes,
                                                                        expected: object) -> None:
    assert info_request_name(name, body) == expected


def test_a_broken_info_body_is_answered_with_the_parse_failure() -> None:
    answer = info_request_name(None, b"{nope")
    assert isinstance(answer, dict) and answer["code"] == -1
    assert str(answer["msg"]).startswith("parses request failed: ")


def test_answers_carry_gos_status_text_and_json_headers() -> None:
    answer = json_answer({"code": 0, "msg": "é"})
    assert answer.status_text == "200 OK"
    assert json.loads(answer.body) == {"code": 0, "msg": "é"}
    assert answer.headers == {"Content-Type": "application/json; charset=utf-8",
                              "Content-Length": str(len(answer.body))}
    assert (NOT_FOUND_ANSWER.status, NOT_FOUND_ANSWER.body, NOT_FOUND_ANSWER.status_text) == (
        404, b"404 page not found", "404 Not Found")
