"""JSON-RPC over HTTP and WebSocket at SiYuan's routes (spec §5), against a real standalone server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from kplug_testing import Host, free_port, wait_for

from kplug_lab.protocol.jsonrpc import Limits
from kplug_lab.rpc.app import make_standalone_app

TOKEN = "admin-token"
CALL_TOKEN = "call-only"

PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a), "echoes");
siyuan.rpc.bind("boom", () => { throw new Error("kaboom"); });
siyuan.rpc.bind("slow", () => new Promise((r) => setTimeout(() => r("late"), 5000)));
siyuan.rpc.bind("shout", async (n) => {
  for (let i = 0; i < n; i++) await siyuan.rpc.broadcast("tick", [i]);
  return n;
});
"""


class Server:
    def __init__(self, host: Host, port: int) -> None:
        self.host = host
        self.url = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"
        self.http = httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Token {TOKEN}"}, trust_env=False)

    async def rpc(self, body: Any, name: str = "p", raw: bool = False) -> httpx.Response:
        content = body if raw else json.dumps(body)
        return await self.http.post(f"/api/plugin/rpc/{name}", content=content)


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    host.plugin("p", PLUGIN)
    host.plugin("other", "siyuan.rpc.bind('ping', () => 'pong');")
    await host.start()
    assert host.manager is not None
    app = make_standalone_app(host.manager, TOKEN, call_token=CALL_TOKEN, limits=Limits(call_timeout=0.5,
                                                                                         max_body_bytes=4096))
    port = free_port()
    srv = app.listen(port, address="127.0.0.1")
    s = Server(host, port)
    yield s
    await s.http.aclose()
    srv.stop()


async def test_single_call_and_notification(server: Server) -> None:
    r = await server.rpc({"jsonrpc": "2.0", "id": 7, "method": "echo", "params": ["hi"]})
    assert r.status_code == 200 and r.json() == {"jsonrpc": "2.0", "result": "hi", "id": 7}
    r = await server.rpc({"jsonrpc": "2.0", "method": "echo", "params": ["hi"]})
    assert r.status_code == 204 and r.content == b""
    r = await server.rpc({"jsonrpc": "2.0", "id": None, "method": "echo", "params": {"a": 1}})
    assert r.json() == {"jsonrpc": "2.0", "result": {"a": 1}, "id": None}


@pytest.mark.parametrize(("body", "code", "data"), [
    ("{not json", -32700, "RPC request is not valid JSON"),
    ("[]", -32600, "RPC request is not allowed to be an empty array"),
    ("null", -32600, "RPC request is not allowed to be an empty array"),
    ('{"id":1,"method":"echo"}', -32600, "RPC request is not a valid JSON-RPC object: missing jsonrpc field"),
    ('{"jsonrpc":"1.0","id":1,"method":"echo"}', -32600,
     "RPC request is not a valid JSON-RPC object: invalid jsonrpc version: 1.0"),
    ('{"jsonrpc":"2.0","id":1}', -32600, "RPC request is not a valid JSON-RPC object: missing method field"),
    ('{"jsonrpc":"2.0","id":{},"method":"echo"}', -32600,
     "RPC request is not a valid JSON-RPC object: invalid id field: must be string, number, null or omitted"),
])
async def test_malformed_requests(server: Server, body: str, code: int, data: str) -> None:
    r = await server.rpc(body, raw=True)
    assert r.status_code == 200
    assert r.json() == {"jsonrpc": "2.0", "error": {"code": code, "message": {
        -32700: "Parse error", -32600: "Invalid Request"}[code], "data": data}, "id": None}


async def test_error_codes(server: Server) -> None:
    r = await server.rpc({"jsonrpc": "2.0", "id": 1, "method": "nope"})
    assert r.json()["error"] == {"code": -32601, "message": "Method not found",
                                 "data": "method [nope] not found in plugin [p]"}
    r = await server.rpc({"jsonrpc": "2.0", "id": 2, "method": "echo", "params": 3})
    assert r.json() == {"jsonrpc": "2.0", "id": 2, "error": {
        "code": -32602, "message": "Invalid params", "data": "Invalid params: must be array or object if present"}}
    r = await server.rpc({"jsonrpc": "2.0", "method": "echo", "params": 3})
    assert r.status_code == 204
    r = await server.rpc({"jsonrpc": "2.0", "id": 3, "method": "boom"})
    err = r.json()["error"]
    assert err["code"] == -32603 and err["message"] == "Internal error"
    assert err["data"].startswith('error invoking method "boom": Error: kaboom')
    r = await server.rpc({"jsonrpc": "2.0", "id": 4, "method": "echo"}, name="missing")
    assert r.json() == {"jsonrpc": "2.0", "error": {"code": -32001, "message": "Plugin not loaded"}, "id": None}


async def test_batch_keeps_order_and_drops_notifications(server: Server) -> None:
    r = await server.rpc([
        {"jsonrpc": "2.0", "id": "a", "method": "echo", "params": [1]},
        {"jsonrpc": "2.0", "method": "echo", "params": [2]},
        5,
        {"jsonrpc": "2.0", "id": "b", "method": "nope"},
        {"jsonrpc": "2.0", "id": "c", "method": "echo", "params": [3]},
    ])
    got = r.json()
    assert [x.get("id") for x in got] == ["a", None, "b", "c"]
    assert got[0]["result"] == 1 and got[3]["result"] == 3 and got[1]["error"]["code"] == -32600
    r = await server.rpc([{"jsonrpc": "2.0", "method": "echo"}, {"jsonrpc": "2.0", "method": "echo"}])
    assert r.status_code == 204


async def test_limits_and_timeouts(server: Server) -> None:
    r = await server.rpc({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x" * 5000]})
    assert r.status_code == 413 and "too large" in r.json()["error"]["data"]
    slow = asyncio.ensure_future(server.rpc({"jsonrpc": "2.0", "id": 1, "method": "slow"}))
    fast = await server.rpc({"jsonrpc": "2.0", "id": 2, "method": "echo", "params": ["quick"]})
    other = await server.rpc({"jsonrpc": "2.0", "id": 3, "method": "ping"}, name="other")
    assert fast.json()["result"] == "quick" and other.json()["result"] == "pong"
    err = (await slow).json()["error"]
    assert err["code"] == -32603 and "did not answer within 0.5 s" in err["data"]


async def test_auth(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as anon:
        r = await anon.post("/api/plugin/rpc/p", content="{}")
        assert r.status_code == 401 and r.json()["msg"].startswith("Auth failed")
        for header in (f"Token {TOKEN}", f"token {TOKEN}", f"Bearer {TOKEN}", f"bearer {TOKEN}"):
            r = await anon.post("/api/plugin/rpc/p", headers={"Authorization": header},
                                content='{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}')
            assert r.json()["result"] == 1
        r = await anon.post(f"/api/plugin/rpc/p?token={TOKEN}", content='{"jsonrpc":"2.0","id":1,"method":"echo"}')
        assert r.status_code == 200
        r = await anon.post("/api/plugin/rpc/p", headers={"Authorization": f"Token {CALL_TOKEN}"},
                            content='{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}')
        assert r.json()["result"] == 1
        r = await anon.post("/kplug/api/rpc", headers={"Authorization": f"Token {CALL_TOKEN}"},
                            content='{"jsonrpc":"2.0","id":1,"method":"kplug.list"}')
        assert r.status_code == 403


async def test_info_and_list_endpoints(server: Server) -> None:
    r = await server.http.get("/api/plugin/rpc/p")
    data = r.json()["data"]
    assert data["name"] == "p" and data["state"] == "running" and data["stateCode"] == 2
    assert {"name": "echo", "descriptions": ["echoes"]} in data["methods"]
    assert (await server.http.get("/api/plugin/rpc?name=p")).json()["data"]["name"] == "p"
    assert (await server.http.post("/api/plugin/getLoadedPlugin", content='{"name":"p"}')).json()["code"] == 0
    assert (await server.http.post("/api/plugin/getLoadedPlugin", content="{}")).json()["code"] == 1
    assert (await server.http.post("/api/plugin/getLoadedPlugin", content='{"name":1}')).json()["code"] == 2
    assert (await server.http.get("/api/plugin/rpc/zzz")).json() == {
        "code": 4, "msg": "Plugin [zzz] not loaded", "data": None}
    names = sorted(i["name"] for i in (await server.http.get("/api/plugin")).json()["data"])
    assert names == ["other", "p"]
    assert len((await server.http.post("/api/plugin/listLoadedPlugins")).json()["data"]) == 2


async def test_admin_api(server: Server) -> None:
    async def admin(method: str, params: Any = None) -> Any:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            body["params"] = params
        return (await server.http.post("/kplug/api/rpc", content=json.dumps(body))).json()

    assert sorted(p["name"] for p in (await admin("kplug.list"))["result"]) == ["other", "p"]
    assert (await admin("kplug.call", ["p", "echo", ["x"]]))["result"] == "x"
    assert (await admin("kplug.call", {"name": "p", "method": "echo", "params": ["y"]}))["result"] == "y"
    wrong = (await admin("kplug.call", {"plugin": "p", "method": "echo"}))["error"]
    assert wrong["code"] == -32602
    assert wrong["data"] == ("Invalid params for kplug.call: expected (name, method, params=None), "
                             "as an array in this order or an object with these names")
    assert (await admin("kplug.state", ["p"]))["result"]["state"] == "running"
    doc = (await admin("rpc.discover"))["result"]
    assert doc["openrpc"].startswith("1.2") and "p.echo" in [m["name"] for m in doc["methods"]]
    assert "dev mode" in (await admin("kplug.eval", ["p", "1+1"]))["error"]["data"]
    assert (await admin("kplug.unload", ["other"]))["result"] is None
    assert (await admin("kplug.state", ["other"]))["error"]["code"] == -32001


async def test_websocket_calls_broadcasts_and_close_on_stop(server: Server) -> None:
    headers = {"Authorization": f"Token {TOKEN}"}
    async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", additional_headers=headers) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "shout", "params": [3]}))
        got = [json.loads(await ws.recv()) for _ in range(4)]
        ticks = [m for m in got if m.get("method") == "tick"]
        assert [t["params"] for t in ticks] == [[0], [1], [2]] and all("id" not in t for t in ticks)
        assert {"jsonrpc": "2.0", "result": 3, "id": 1} in got
        await server.host.manager.unload("p")  # type: ignore[union-attr]
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(10):
                await asyncio.wait_for(ws.recv(), 5)


async def test_websocket_precheck_is_404_and_plain_get_is_400(server: Server) -> None:
    r = await server.http.get("/ws/plugin/rpc/missing")
    assert r.status_code == 404 and r.json()["error"]["code"] == -32001
    r = await server.http.get("/ws/plugin/rpc/p")
    assert r.status_code == 400 and r.text == "This endpoint only accepts WebSocket connections"


async def test_a_slow_websocket_consumer_is_disconnected(server: Server) -> None:
    import kplug_lab.rpc.handlers as handlers

    old = handlers._BoundedSocket.max_pending
    handlers._BoundedSocket.max_pending = 20
    try:
        reader = await asyncio.open_connection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        r, w = reader
        w.write((f"GET /ws/plugin/rpc/p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 f"Authorization: Token {TOKEN}\r\n\r\n").encode())
        await w.drain()
        await r.readuntil(b"\r\n\r\n")
        # never read again: a flood of broadcasts must not queue without bound
        payload = "y" * 200_000
        m = server.host.manager
        assert m is not None
        for _ in range(200):
            m.broadcast("p", "big", [payload])
        # now read: the server must have given up on us (close frame, then EOF), having queued at most
        # max_pending messages instead of all 200 (40 MB)
        received = 0
        async with asyncio.timeout(20):
            while chunk := await r.read(1 << 20):
                received += len(chunk)
        assert received < 100 * 200_000
        w.close()
    finally:
        handlers._BoundedSocket.max_pending = old


async def test_private_http_route(server: Server, host: Host) -> None:
    host.plugin("web", """
      siyuan.server.private.http.handler = async (req) => ({
        statusCode: 200, headers: { "X-Seen": [req.context.path] },
        body: { data: { type: "JSON", data: { q: req.url.query, body: await req.request.body.data.text() } } } });
    """)
    assert host.manager is not None
    await host.manager.load(str(host.root / "web"))
    await wait_for(lambda: host.manager.get_plugin("web") is not None)  # type: ignore[union-attr]
    r = await server.http.post("/plugin/private/web/api/x?a=1", content="hello")
    assert r.status_code == 200 and r.headers["X-Seen"] == "/api/x"
    assert r.json() == {"q": {"a": ["1"]}, "body": "hello"}
    r = await server.http.get("/plugin/private/nobody/x")
    assert r.status_code == 404 and r.text == "[plugin:nobody] not found"
