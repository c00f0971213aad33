"""A plugin's ``siyuan.client.fetch`` to SiYuan's plugin routes (spec §5.1) is answered by kplug_lab's own host,
with the wire's shapes (§5.3-§5.7), and never reaches the kernel at ``siyuan_url``; other paths still do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kplug_testing import Host
from tornado import httpserver, netutil

from kplug_lab.host import route_answers
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.manager import PluginManager
from kplug_lab.protocol.routes import RouteKind, RouteMatch
from kplug_lab.rpc.app import make_standalone_app
from kplug_lab.testing.fake_siyuan import FakeSiYuan

SERVICE = """
const notes = [];
siyuan.rpc.bind("add", (a, b) => a + b, "Adds two numbers", "a, b: numbers");
siyuan.rpc.bind("fail", () => { throw new Error("boom"); });
siyuan.rpc.bind("note", (text) => { notes.push(text); });
siyuan.rpc.bind("notes", () => notes);
siyuan.server.private.http.handler = async (req) => {
  const path = req.context.path;
  if (path === "/hello") {
    const data = { query: req.url.query, auth: req.request.headers.Authorization || null };
    return { statusCode: 201, headers: { "X-Seen": [req.request.method] }, body: { data: { type: "JSON", data } } };
  }
  if (path === "/echo") {
    return { body: { raw: { contentType: "text/x-echo", data: await req.request.body.data.text() } } };
  }
  if (path === "/go") return { statusCode: 302, body: { redirect: { location: "/elsewhere" } } };
  if (path === "/fmt") return { body: { string: { format: "%s=%d", values: ["n", 3] } } };
  throw new Error("no page " + path);
};
"""

# every method answers what the plugin saw of the Response, body methods included
CALLER = """
// the body can be read once (SiYuan v3.8): the text, and the other readings derived from it
async function seen(r) {
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { json = "not JSON: " + e.message; }
  return { url: r.url, ok: r.ok, status: r.status, statusText: r.statusText, headers: r.headers, text, json,
           bytes: new TextEncoder().encode(text).byteLength, bufferText: Buffer.from(text).toString() };
}
const post = (body) => ({ method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) });
siyuan.rpc.bind("fetch", async (path, init) => seen(await siyuan.client.fetch(path, init)));
siyuan.rpc.bind("double", (x) => 2 * x, "Doubles a number");
siyuan.rpc.bind("callOther", async (a, b) => {
  const r = await siyuan.client.fetch("/api/plugin/rpc/service", post({ jsonrpc: "2.0", id: 7, method: "add",
                                                                         params: [a, b] }));
  return (await r.json()).result;
});
siyuan.rpc.bind("callSelf", async (x) => {
  // this plugin's actor is busy with this very call while it waits: the inner call must be queued, not block
  const r = await siyuan.client.fetch("/api/plugin/rpc?name=caller", post({ jsonrpc: "2.0", id: "in",
                                                                            method: "double", params: [x] }));
  return (await r.json()).result + 1;
});
"""


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[FakeSiYuan]:
    async with FakeSiYuan(tmp_path / "ws", token="kernel-token") as k:
        yield k


@pytest.fixture
async def manager(tmp_path: Path, kernel: FakeSiYuan) -> AsyncIterator[PluginManager]:
    host = Host(tmp_path)
    host.plugin("service", SERVICE)
    host.plugin("caller", CALLER)
    mgr = await host.start(siyuan_url=kernel.url, siyuan_token=kernel.token, call_timeout=20.0,
                           siyuan_poll_interval=0)  # the one-copy probe is not what these tests count
    try:
        assert host.state("service") == PluginState.RUNNING, host.logs("service")
        assert host.state("caller") == PluginState.RUNNING, host.logs("caller")
        yield mgr
    finally:
        await mgr.close()


async def fetch(manager: PluginManager, path: str, init: dict[str, Any] | None = None) -> dict[str, Any]:
    got: dict[str, Any] = await manager.call("caller", "fetch", [path, init or {}])
    return got


def no_plugin_route_reached(kernel: FakeSiYuan) -> bool:
    return not [r for r in kernel.requests if r.path.startswith("/api/plugin")]


def method_names(info: dict[str, Any]) -> list[str]:
    return sorted(m["name"] for m in info["methods"] or [])


async def test_list_answers_every_loaded_plugin_as_siyuan_does_on_both_routes(
        manager: PluginManager, kernel: FakeSiYuan) -> None:
    for path, init in (("/api/plugin/listLoadedPlugins", {"method": "POST"}), ("/api/plugin", {})):
        got = await fetch(manager, path, init)
        assert got["url"] == path
        assert (got["status"], got["ok"], got["statusText"]) == (200, True, "200 OK")
        assert got["headers"]["Content-Type"] == "application/json; charset=utf-8"
        assert got["headers"]["Content-Length"] == str(len(got["text"].encode()))
        assert got["bytes"] == len(got["text"].encode()) and got["bufferText"] == got["text"]
        body = got["json"]
        assert (body["code"], body["msg"]) == (0, "")
        by_name = {info["name"]: info for info in body["data"]}
        assert set(by_name) == {"service", "caller"}
        assert by_name["service"]["state"] == "running" and by_name["service"]["stateCode"] == 2
        assert method_names(by_name["service"]) == ["add", "fail", "note", "notes"]
        add = next(m for m in by_name["service"]["methods"] if m["name"] == "add")
        assert add["descriptions"] == ["Adds two numbers", "a, b: numbers"]
    assert no_plugin_route_reached(kernel)


async def test_get_loaded_plugin_by_body_query_and_path_and_its_errors(
        manager: PluginManager, kernel: FakeSiYuan) -> None:
    by_body = await fetch(manager, "/api/plugin/getLoadedPlugin", {"method": "POST", "body": '{"name":"service"}'})
    assert by_body["status"] == 200 and by_body["json"]["code"] == 0
    assert by_body["json"]["data"]["name"] == "service" and by_body["json"]["data"]["stateCode"] == 2
    assert method_names(by_body["json"]["data"]) == ["add", "fail", "note", "notes"]
    by_query = await fetch(manager, "/api/plugin/getLoadedPlugin?name=caller", {"method": "POST"})
    assert by_query["json"]["data"]["name"] == "caller"
    by_get = await fetch(manager, "/api/plugin/rpc/service")  # GET on the rpc route is the info, not a call
    assert by_get["json"] == by_body["json"]
    by_get_query = await fetch(manager, "/api/plugin/rpc?name=service&appId=x")
    assert by_get_query["json"] == by_body["json"]

    async def envelope(body: str | None) -> tuple[int, str]:
        init: dict[str, Any] = {"method": "POST"} if body is None else {"method": "POST", "body": body}
        got = await fetch(manager, "/api/plugin/getLoadedPlugin", init)
        assert got["status"] == 200 and got["json"]["data"] is None
        return got["json"]["code"], got["json"]["msg"]

    assert await envelope('{"name":"nope"}') == (4, "Plugin [nope] not loaded")
    assert await envelope('{"other":1}') == (1, "Request body prop [name] does not exist")
    assert await envelope('{"name":3}') == (2, "Request body prop [name] is not a string")
    assert await envelope(None) == (3, "Plugin name is required")
    code, msg = await envelope("{not json")
    assert code == -1 and msg.startswith("parses request failed")
    assert no_plugin_route_reached(kernel)


async def test_calling_another_plugins_method_through_fetch(manager: PluginManager, kernel: FakeSiYuan) -> None:
    assert await manager.call("caller", "callOther", [2, 3]) == 5
    got = await fetch(manager, "/api/plugin/rpc/service", {
        "method": "POST", "body": json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]},
                                              {"jsonrpc": "2.0", "method": "note", "params": ["in a batch"]},
                                              {"jsonrpc": "2.0", "id": "b", "method": "add", "params": ["a", "b"]}])})
    assert (got["status"], got["statusText"]) == (200, "200 OK")
    assert got["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert got["json"] == [{"jsonrpc": "2.0", "result": 3, "id": 1}, {"jsonrpc": "2.0", "result": "ab", "id": "b"}]
    assert await manager.call("service", "notes") == ["in a batch"]
    assert no_plugin_route_reached(kernel)


async def test_a_plugin_calling_its_own_method_through_fetch_does_not_deadlock(
        manager: PluginManager, kernel: FakeSiYuan) -> None:
    # a deadlock would surface as the 20 s call timeout (CallTimeout), not as a hang
    assert await manager.call("caller", "callSelf", [20]) == 41
    assert no_plugin_route_reached(kernel)


async def test_a_notification_is_answered_204_with_an_empty_body(manager: PluginManager, kernel: FakeSiYuan) -> None:
    got = await fetch(manager, "/api/plugin/rpc/service", {
        "method": "POST", "body": '{"jsonrpc":"2.0","method":"note","params":["hello"]}'})
    assert (got["status"], got["ok"], got["statusText"]) == (204, True, "204 No Content")
    assert got["text"] == "" and got["bytes"] == 0
    assert "Content-Type" not in got["headers"]
    assert await manager.call("service", "notes") == ["hello"]
    assert no_plugin_route_reached(kernel)


async def test_rpc_errors_have_the_wire_codes(manager: PluginManager, kernel: FakeSiYuan) -> None:
    call = '{"jsonrpc":"2.0","id":1,"method":"%s"}'
    unknown_plugin = await fetch(manager, "/api/plugin/rpc/nope", {"method": "POST", "body": call % "add"})
    assert unknown_plugin["status"] == 200
    assert unknown_plugin["json"] == {"jsonrpc": "2.0", "error": {"code": -32001, "message": "Plugin not loaded"},
                                      "id": None}
    no_name = await fetch(manager, "/api/plugin/rpc", {"method": "POST", "body": call % "add"})
    assert no_name["json"]["error"]["code"] == -32001
    unknown_method = await fetch(manager, "/api/plugin/rpc/service", {"method": "POST", "body": call % "nope"})
    assert unknown_method["status"] == 200
    assert unknown_method["json"] == {"jsonrpc": "2.0", "id": 1, "error": {
        "code": -32601, "message": "Method not found", "data": "method [nope] not found in plugin [service]"}}
    thrown = await fetch(manager, "/api/plugin/rpc/service", {"method": "POST", "body": call % "fail"})
    assert thrown["json"]["error"]["code"] == -32603
    assert thrown["json"]["error"]["data"].startswith('error invoking method "fail": Error: boom')
    parse = await fetch(manager, "/api/plugin/rpc/service", {"method": "POST", "body": "{"})
    assert parse["json"]["error"] == {"code": -32700, "message": "Parse error", "data": "RPC request is not valid JSON"}
    bad_params = await fetch(manager, "/api/plugin/rpc/service", {
        "method": "POST", "body": '{"jsonrpc":"2.0","id":2,"method":"add","params":3}'})
    assert bad_params["json"]["error"]["code"] == -32602 and bad_params["json"]["id"] == 2
    assert no_plugin_route_reached(kernel)


async def test_a_plugin_route_with_a_method_it_does_not_take_is_404_like_gin(
        manager: PluginManager, kernel: FakeSiYuan) -> None:
    got = await fetch(manager, "/api/plugin/listLoadedPlugins")  # GET: only POST is routed
    assert (got["status"], got["ok"], got["statusText"]) == (404, False, "404 Not Found")
    assert got["text"] == "404 page not found"
    put = await fetch(manager, "/api/plugin/rpc/service", {"method": "PUT", "body": "{}"})
    assert put["status"] == 404
    assert no_plugin_route_reached(kernel)


async def test_other_paths_still_go_to_the_kernel(manager: PluginManager, kernel: FakeSiYuan) -> None:
    got = await fetch(manager, "/api/system/version", {"method": "POST"})
    assert got["status"] == 200 and got["json"]["code"] == 0 and got["json"]["data"] == kernel.version
    # a path that only looks like a plugin route is the kernel's business
    await fetch(manager, "/api/plugin/rpc/service/extra", {"method": "POST", "body": "{}"})
    paths = [r.path for r in kernel.requests]
    assert paths == ["/api/system/version", "/api/plugin/rpc/service/extra"]
    assert kernel.requests[0].headers.get("X-Auth-Token") == kernel.token


async def test_answers_are_the_same_as_the_wires(manager: PluginManager) -> None:
    """The same manager behind kplug_lab's own HTTP routes: fetch gives the same status, type and body."""
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(make_standalone_app(manager, "wire-token"))
    server.add_sockets(sockets)
    cases = [
        ("GET", "/api/plugin", None),
        ("POST", "/api/plugin/listLoadedPlugins", None),
        ("POST", "/api/plugin/getLoadedPlugin", '{"name":"service"}'),
        ("POST", "/api/plugin/getLoadedPlugin", '{"name":1}'),
        ("GET", "/api/plugin/rpc/caller", None),
        ("POST", "/api/plugin/rpc/service", '{"jsonrpc":"2.0","id":1,"method":"add","params":[40,2]}'),
        ("POST", "/api/plugin/rpc/service", '[{"jsonrpc":"2.0","id":1,"method":"nope"},{"jsonrpc":"1.0"}]'),
        ("POST", "/api/plugin/rpc/service", '{"jsonrpc":"2.0","method":"note","params":["n"]}'),
        ("POST", "/api/plugin/rpc?name=nope", '{"jsonrpc":"2.0","id":1,"method":"add"}'),
    ]
    try:
        base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Token wire-token"}) as wire:
            for method, path, body in cases:
                init: dict[str, Any] = {"method": method} if body is None else {"method": method, "body": body}
                via_fetch = await fetch(manager, path, init)
                via_wire = await wire.request(method, path, content=body)
                assert via_fetch["status"] == via_wire.status_code, path
                assert via_fetch["headers"].get("Content-Type") == via_wire.headers.get("Content-Type"), path
                assert via_fetch["text"] == via_wire.text, (method, path, body)
    finally:
        server.stop()
        await server.close_all_connections()


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/api/plugin", RouteMatch(RouteKind.LIST)),
    ("GET", "/api/plugin/", RouteMatch(RouteKind.LIST)),
    ("POST", "/api/plugin/listLoadedPlugins", RouteMatch(RouteKind.LIST)),
    ("POST", "/api/plugin/getLoadedPlugin?name=a", RouteMatch(RouteKind.INFO, "a")),
    ("POST", "/api/plugin/rpc/a?name=b", RouteMatch(RouteKind.RPC, "a")),  # the path wins over ?name=
    ("POST", "/api/plugin/rpc?name=b&appId=1", RouteMatch(RouteKind.RPC, "b")),
    ("POST", "/api/plugin/rpc/my%20plugin", RouteMatch(RouteKind.RPC, "my plugin")),
    ("POST", "/api/plugin/rpc?name=", RouteMatch(RouteKind.RPC, None)),
    ("GET", "/api/plugin/rpc/a", RouteMatch(RouteKind.INFO, "a")),
    ("DELETE", "/api/plugin/rpc/a", RouteMatch(RouteKind.NOT_FOUND, "a")),
    ("POST", "/api/plugin", RouteMatch(RouteKind.NOT_FOUND)),
    ("POST", "/api/plugin/rpc/a/b", None),
    ("POST", "/api/plugins", None),
    ("POST", "/api/plugin/other", None),
    ("ANY", "/plugin/private/a/x", RouteMatch(RouteKind.PRIVATE, "a", "x")),
    ("POST", "/api/system/version", None),
])
def test_route_matching(method: str, path: str, expected: RouteMatch | None) -> None:
    assert route_answers.match(method, path) == expected


async def test_private_routes_are_answered_by_the_plugins_own_handler(manager: PluginManager,
                                                                     kernel: FakeSiYuan) -> None:
    """``/plugin/private/<name>/...`` reaches that plugin's ``siyuan.server.private.http`` handler, as SiYuan's
    kernel routes it for its own plugins, and never the kernel at ``siyuan_url``."""
    got = await fetch(manager, "/plugin/private/service/hello?x=1", {"method": "POST", "body": "b",
                                                                      "headers": {"Authorization": "Token t"}})
    assert got["status"] == 201 and got["headers"]["X-Seen"] == "POST"
    assert got["json"] == {"query": {"x": ["1"]}, "auth": None}  # credentials never reach the handler
    echo = await fetch(manager, "/plugin/private/service/echo", {"method": "PUT", "body": "round trip"})
    assert (echo["status"], echo["headers"]["Content-Type"], echo["text"]) == (200, "text/x-echo", "round trip")
    go = await fetch(manager, "/plugin/private/service/go")
    assert (go["status"], go["headers"]["Location"]) == (302, "/elsewhere")
    assert (await fetch(manager, "/plugin/private/service/fmt"))["text"] == "n=3"
    failed = await fetch(manager, "/plugin/private/service/nothing")
    assert failed["status"] == 500 and "no page /nothing" in failed["text"]
    missing = await fetch(manager, "/plugin/private/nobody/x")
    assert (missing["status"], missing["text"]) == (404, "[plugin:nobody] not found")
    assert not [r for r in kernel.requests if r.path.startswith("/plugin/private")]
