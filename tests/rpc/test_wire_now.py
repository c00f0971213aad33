"""The RPC wire as SiYuan answers it now (changes §3, §2.8), against a real standalone server: member names matched
case-insensitively with the last duplicate winning (Go's decoder), calls cancelled when their HTTP client goes
away (a queued call never runs), and a cross-site Origin on the RPC WebSocket and private WebSocket routes
refused with 400."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from kplug_testing import Host, free_port, wait_for

from kplug_lab.protocol.jsonrpc import Limits
from kplug_lab.rpc import handlers
from kplug_lab.rpc.app import make_standalone_app

TOKEN = "admin-token"

PLUGIN = """
let marks = 0;
siyuan.rpc.bind("echo", (x) => x);
siyuan.rpc.bind("mark", () => { marks += 1; return marks; });
siyuan.rpc.bind("marks", () => marks);
siyuan.rpc.bind("spin", (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} return true; });
siyuan.rpc.bind("never", () => new Promise(() => {}));
siyuan.server.private.ws.handler = (req) => { req.port.onmessage = (m) => req.port.send(m.data); };
"""


class Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}"
        self.http = httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Token {TOKEN}"}, trust_env=False)


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    host.plugin("p", PLUGIN)
    await host.start(cpu_limit=5.0)
    assert host.manager is not None
    app = make_standalone_app(host.manager, TOKEN, limits=Limits(call_timeout=10))
    port = free_port()
    srv = app.listen(port, address="127.0.0.1")
    s = Server(port)
    yield s
    await s.http.aclose()
    srv.stop()


@pytest.mark.parametrize(("body", "expected"), [
    ('{"JSONRPC":"2.0","Method":"echo","ID":1,"Params":["a"]}', {"jsonrpc": "2.0", "result": "a", "id": 1}),
    ('{"jsonrpc":"2.0","method":"nope","Method":"echo","id":2,"params":["b"]}',
     {"jsonrpc": "2.0", "result": "b", "id": 2}),
    ('{"jsonrpc":"2.0","Method":"nope","method":"echo","METHOD":"echo","id":3,"params":["c"],"PARAMS":["d"]}',
     {"jsonrpc": "2.0", "result": "d", "id": 3}),
    ('{"jsonrpc":"2.0","method":"echo","id":4,"id":5,"params":["e"]}', {"jsonrpc": "2.0", "result": "e", "id": 5}),
    ('{"j\u017fonrpc":"2.0","method":"echo","id":6,"params":["f"]}', {"jsonrpc": "2.0", "result": "f", "id": 6}),
    ('[{"JsonRpc":"2.0","mEtHoD":"echo","Id":7,"pArAmS":["g"]}]', [{"jsonrpc": "2.0", "result": "g", "id": 7}]),
])
async def test_member_names_match_case_insensitively_and_the_last_duplicate_wins(server: Server, body: str,
                                                                                 expected: object) -> None:
    r = await server.http.post("/api/plugin/rpc/p", content=body.encode())
    assert r.status_code == 200 and r.json() == expected


async def _post_and_leave(server: Server, body: str, after: float) -> None:
    """Send a JSON-RPC POST by hand and close the connection ``after`` seconds later, without reading."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    data = body.encode()
    writer.write(b"POST /api/plugin/rpc/p HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token " + TOKEN.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(data)).encode()
                 + b"\r\n\r\n" + data)
    await writer.drain()
    await asyncio.sleep(after)  # a deliberate duration: the call is queued (or running) when the client leaves
    writer.close()
    await writer.wait_closed()


async def test_a_queued_call_whose_http_client_left_never_runs(server: Server) -> None:
    busy = asyncio.ensure_future(server.http.post("/api/plugin/rpc/p", content=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "spin", "params": [1500]})))
    await asyncio.sleep(0.3)  # the spin has started on the plugin's thread
    await _post_and_leave(server, '{"jsonrpc":"2.0","id":2,"method":"mark"}', after=0.3)
    assert (await busy).json()["result"] is True
    r = await server.http.post("/api/plugin/rpc/p", content='{"jsonrpc":"2.0","id":3,"method":"marks"}')
    assert r.json()["result"] == 0


async def test_a_notification_whose_http_client_left_still_runs(server: Server) -> None:
    busy = asyncio.ensure_future(server.http.post("/api/plugin/rpc/p", content=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "spin", "params": [1500]})))
    await asyncio.sleep(0.3)  # the spin has started on the plugin's thread
    await _post_and_leave(server, '{"jsonrpc":"2.0","method":"mark"}', after=0.3)
    assert (await busy).json()["result"] is True
    await wait_for_marks(server, 1)


async def wait_for_marks(server: Server, n: int) -> None:
    for _ in range(100):
        r = await server.http.post("/api/plugin/rpc/p", content='{"jsonrpc":"2.0","id":3,"method":"marks"}')
        if r.json()["result"] == n:
            return
        await asyncio.sleep(0.05)  # polling interval
    raise AssertionError(f"marks never reached {n}")


async def test_a_running_call_whose_http_client_left_is_cancelled_with_context_canceled(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    handlers_process = handlers.process

    async def spy(body: bytes | str, caller: object, **kw: object) -> str | None:
        text = await handlers_process(body, caller, **kw)  # type: ignore[arg-type]
        seen.append(text or "")
        return text

    monkeypatch.setattr(handlers, "process", spy)  # what the handler answers, though nobody reads it any more
    await _post_and_leave(server, '{"jsonrpc":"2.0","id":9,"method":"never"}', after=0.3)
    await wait_for(lambda: bool(seen), what="the cancelled call's answer")
    assert json.loads(seen[0]) == {"jsonrpc": "2.0", "id": 9, "error": {
        "code": -32603, "message": "Internal error", "data": 'error invoking method "never": context canceled'}}


async def test_a_cross_site_origin_on_the_rpc_websocket_gets_400(server: Server) -> None:
    headers = {"Authorization": f"Token {TOKEN}"}
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", origin="http://evil.example",  # type: ignore[arg-type]
                                      additional_headers=headers):
            pass
    assert info.value.response.status_code == 400
    async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", origin=server.url,  # type: ignore[arg-type]
                                  additional_headers=headers) as ws:
        await ws.send('{"jsonrpc":"2.0","id":1,"method":"echo","params":["same site"]}')
        assert json.loads(await ws.recv())["result"] == "same site"


async def test_a_cross_site_origin_on_a_private_websocket_route_gets_400(server: Server) -> None:
    headers = {"Authorization": f"Token {TOKEN}"}
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with websockets.connect(f"{server.ws}/plugin/private/p/chat", origin="http://evil.example",  # type: ignore[arg-type]
                                      additional_headers=headers):
            pass
    assert info.value.response.status_code == 400
    async with websockets.connect(f"{server.ws}/plugin/private/p/chat", origin=server.url,  # type: ignore[arg-type]
                                  additional_headers=headers) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
