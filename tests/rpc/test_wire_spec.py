"""Every row of spec §5.3/§5.4 (JSON-RPC over HTTP, error codes), §5.5 (WebSocket) and kplug_lab's [better]
items on the wire, against a real standalone server and real plugins. ``test_wire.py`` covers the basics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from kplug_testing import Host, wait_for
from rpc_server import TOKEN, RawWebSocket, Server

from kplug_lab.host.runtime.api import PluginState
from kplug_lab.protocol.jsonrpc import Limits

PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a));
siyuan.rpc.bind("args", (...a) => ({ n: a.length, a }));
siyuan.rpc.bind("nothing", () => undefined);
siyuan.rpc.bind("boom", () => { throw new Error("kaboom"); });
siyuan.rpc.bind("rejectError", async () => { throw new TypeError("bad thing"); });
siyuan.rpc.bind("rejectString", () => Promise.reject("just a string"));
siyuan.rpc.bind("coded", (code) => { throw { code, message: "custom failure" }; });
siyuan.rpc.bind("codedError", (code) => { const e = new Error("typed failure"); e.code = code; throw e; });
siyuan.rpc.bind("fn", () => () => 1);
let release = null;
siyuan.rpc.bind("wait", () => new Promise((r) => { release = r; }));
siyuan.rpc.bind("waiting", () => release !== null);
let nevers = 0;
siyuan.rpc.bind("release", (v) => { release(v); return "released"; });
siyuan.rpc.bind("never", () => { nevers++; return new Promise(() => {}); });
siyuan.rpc.bind("nevers", () => nevers);
siyuan.rpc.bind("spin", () => { for (;;) {} });
siyuan.rpc.bind("delayed", (ms, v) => new Promise((r) => setTimeout(() => r(v), ms)));
siyuan.rpc.bind("shout", (n) => { for (let i = 0; i < n; i++) siyuan.rpc.broadcast("tick", [i]); return n; });
"""

CALL_TIMEOUT = 1.0
INVALID = "RPC request is not a valid JSON-RPC object: "


def ok(result: Any, id_: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": result, "id": id_}


def err(code: int, message: str, data: Any = None, id_: Any = None) -> dict[str, Any]:
    e: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        e["data"] = data
    return {"jsonrpc": "2.0", "error": e, "id": id_}


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    host.plugin("p", PLUGIN)
    host.plugin("other", "siyuan.rpc.bind('ping', () => 'pong');")
    host.plugin("broken", "throw new Error('cannot start');")
    await host.start(cpu_limit=3.0)
    s = Server(host, limits=Limits(call_timeout=CALL_TIMEOUT, max_body_bytes=64 * 1024, max_batch=20))
    yield s
    await s.close()


# ---- §5.3 pre-checks ---------------------------------------------------------------------------------------

async def test_precheck_not_loaded_and_not_running_apply_to_calls_and_notifications(server: Server) -> None:
    assert server.host.state("broken") == PluginState.ERROR
    call = {"jsonrpc": "2.0", "id": 1, "method": "echo"}
    note = {"jsonrpc": "2.0", "method": "echo"}
    for body in (call, note, [call, note]):
        r = await server.rpc(body, name="missing")
        assert r.status_code == 200 and r.json() == err(-32001, "Plugin not loaded")
        r = await server.rpc(body, name="broken")
        assert r.status_code == 200 and r.json() == err(-32002, "Plugin not running")
    r = await server.http.post("/api/plugin/rpc?name=missing", content=json.dumps(call))
    assert r.json() == err(-32001, "Plugin not loaded")
    r = await server.http.post("/api/plugin/rpc", content=json.dumps(call))
    assert r.json() == err(-32001, "Plugin not loaded")


async def test_query_name_route_and_path_parameter_wins(server: Server) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["q"]})
    r = await server.http.post("/api/plugin/rpc?name=p&appId=web", content=body)
    assert r.json() == ok("q", 1)
    r = await server.http.post("/api/plugin/rpc/p?name=missing", content=body)
    assert r.json() == ok("q", 1)


# ---- §5.3 body processing ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    ("{not json", err(-32700, "Parse error", "RPC request is not valid JSON")),
    ("", err(-32700, "Parse error", "RPC request is not valid JSON")),
    (b"\xff\xfe", err(-32700, "Parse error", "RPC request is not valid JSON")),
    # strict JSON, as Go's decoder reads it: no NaN/Infinity, no number a float64 cannot hold
    ('{"jsonrpc":"2.0","id":1,"method":"echo","params":[NaN]}', err(-32700, "Parse error",
                                                                    "RPC request is not valid JSON")),
    ('{"jsonrpc":"2.0","id":1,"method":"echo","params":[-Infinity]}', err(-32700, "Parse error",
                                                                          "RPC request is not valid JSON")),
    ('{"jsonrpc":"2.0","id":1,"method":"echo","params":[1e400]}', err(-32700, "Parse error",
                                                                      "RPC request is not valid JSON")),
    ('{"jsonrpc":"2.0","id":1,"method":"echo","params":[' + "9" * 400 + "]}",
     err(-32700, "Parse error", "RPC request is not valid JSON")),
    ("[" * 30_000 + "]" * 30_000, err(-32700, "Parse error", "RPC request is not valid JSON")),
    ("[]", err(-32600, "Invalid Request", "RPC request is not allowed to be an empty array")),
    ("null", err(-32600, "Invalid Request", "RPC request is not allowed to be an empty array")),
    ("5", err(-32600, "Invalid Request",
              INVALID + "json: cannot unmarshal number into Go value of type jsonrpc.Request")),
    ('"x"', err(-32600, "Invalid Request",
                INVALID + "json: cannot unmarshal string into Go value of type jsonrpc.Request")),
    ('{"id":1,"method":"echo"}', err(-32600, "Invalid Request", INVALID + "missing jsonrpc field")),
    ('{"jsonrpc":"1.0","id":1,"method":"echo"}', err(-32600, "Invalid Request",
                                                     INVALID + "invalid jsonrpc version: 1.0")),
    ('{"jsonrpc":2,"id":1,"method":"echo"}', err(-32600, "Invalid Request", INVALID + "invalid jsonrpc version: 2")),
    ('{"jsonrpc":"2.0","id":1}', err(-32600, "Invalid Request", INVALID + "missing method field")),
    ('{"jsonrpc":"2.0","id":1,"method":null}', err(-32600, "Invalid Request", INVALID + "missing method field")),
    ('{"jsonrpc":"2.0","id":1,"method":5}', err(
        -32600, "Invalid Request",
        INVALID + "json: cannot unmarshal number into Go struct field Request.method of type string")),
    ('{"jsonrpc":"2.0","id":{},"method":"echo"}', err(
        -32600, "Invalid Request", INVALID + "invalid id field: must be string, number, null or omitted")),
    ('{"jsonrpc":"2.0","id":[1],"method":"echo"}', err(
        -32600, "Invalid Request", INVALID + "invalid id field: must be string, number, null or omitted")),
    ('{"jsonrpc":"2.0","id":true,"method":"echo"}', err(
        -32600, "Invalid Request", INVALID + "invalid id field: must be string, number, null or omitted")),
])
async def test_each_malformed_request_shape(server: Server, body: str | bytes, expected: dict[str, Any]) -> None:
    r = await server.http.post("/api/plugin/rpc/p", content=body)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == expected


async def test_ids_params_and_results(server: Server) -> None:
    async def call(**fields: Any) -> Any:
        return (await server.rpc({"jsonrpc": "2.0", **fields})).json()

    assert await call(id="s", method="echo", params=[1]) == ok(1, "s")
    assert await call(id=1.5, method="echo", params=[1]) == ok(1, 1.5)
    assert await call(id=None, method="echo", params=[1]) == ok(1, None)
    assert await call(id=1, method="echo", params=[1], extra="ignored") == ok(1, 1)
    # params mapping (§3.5): array spread, object as one argument, absent = no arguments
    assert await call(id=1, method="args", params=[1, "a"]) == ok({"n": 2, "a": [1, "a"]}, 1)
    assert await call(id=1, method="args", params={"k": 1}) == ok({"n": 1, "a": [{"k": 1}]}, 1)
    assert await call(id=1, method="args") == ok({"n": 0, "a": []}, 1)
    assert await call(id=1, method="args", params=[]) == ok({"n": 0, "a": []}, 1)
    # "result" is always present, null for undefined
    assert await call(id=1, method="nothing") == ok(None, 1)
    r = await server.rpc({"jsonrpc": "2.0", "id": 9007199254740993, "method": "echo", "params": [1]})
    assert json.loads(r.text)["id"] == 9007199254740993  # numeric ids are echoed as numbers


@pytest.mark.parametrize("params", [None, 3, "x", True])
async def test_params_not_array_or_object_is_32602_with_the_id(server: Server, params: Any) -> None:
    r = await server.rpc({"jsonrpc": "2.0", "id": "k", "method": "echo", "params": params})
    assert r.json() == err(-32602, "Invalid params", "Invalid params: must be array or object if present", "k")
    r = await server.rpc({"jsonrpc": "2.0", "method": "echo", "params": params})
    assert r.status_code == 204 and r.content == b""


async def _until_true(server: Server, method: str) -> None:
    """Wait until the plugin's ``method`` answers a truthy value (a call it was sent has reached it)."""
    async with asyncio.timeout(30):
        while not (await server.rpc({"jsonrpc": "2.0", "id": 0, "method": method})).json()["result"]:
            await asyncio.sleep(0.01)  # polling interval of a wait for a condition


async def test_notifications_answer_204_and_their_errors_are_discarded(server: Server) -> None:
    for method in ("echo", "nope", "boom"):
        r = await server.rpc({"jsonrpc": "2.0", "method": method, "params": [1]})
        assert r.status_code == 204 and r.content == b""
    r = await server.rpc([{"jsonrpc": "2.0", "method": "nope"}, {"jsonrpc": "2.0", "method": "boom"}])
    assert r.status_code == 204 and r.content == b""
    # a notification still runs: it releases a waiting call
    waiting = asyncio.ensure_future(server.rpc({"jsonrpc": "2.0", "id": 1, "method": "wait"}))
    await _until_true(server, "waiting")
    r = await server.rpc({"jsonrpc": "2.0", "method": "release", "params": ["by a notification"]})
    assert r.status_code == 204
    assert (await waiting).json() == ok("by a notification", 1)


async def test_batch_entries_run_concurrently_and_answers_keep_request_order(server: Server) -> None:
    # "wait" only settles when "release" runs: a sequential dispatch would time out here
    r = await server.rpc([
        {"jsonrpc": "2.0", "id": "w", "method": "wait"},
        {"jsonrpc": "2.0", "id": "slow", "method": "delayed", "params": [300, "slow"]},
        {"jsonrpc": "2.0", "method": "echo", "params": ["note"]},
        {"jsonrpc": "2.0", "id": "r", "method": "release", "params": ["go"]},
        "junk",
        {"jsonrpc": "2.0", "id": "bad", "method": "echo", "params": None},
        {"jsonrpc": "2.0", "id": "nf", "method": "nope"},
    ])
    assert r.json() == [
        ok("go", "w"), ok("slow", "slow"), ok("released", "r"),
        err(-32600, "Invalid Request", INVALID + "json: cannot unmarshal string into Go value of type jsonrpc.Request"),
        err(-32602, "Invalid params", "Invalid params: must be array or object if present", "bad"),
        err(-32601, "Method not found", "method [nope] not found in plugin [p]", "nf"),
    ]


async def test_batch_of_duplicate_ids_answers_each(server: Server) -> None:
    r = await server.rpc([{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [n]} for n in ("a", "b")])
    assert r.json() == [ok("a", 1), ok("b", 1)]


# ---- §5.4 error codes --------------------------------------------------------------------------------------

async def test_method_errors_carry_code_message_and_data(server: Server) -> None:
    async def error_of(method: str, params: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            body["params"] = params
        r = await server.rpc(body)
        assert r.status_code == 200 and "result" not in r.json()
        return r.json()["error"]  # type: ignore[no-any-return]

    assert await error_of("nope") == {"code": -32601, "message": "Method not found",
                                      "data": "method [nope] not found in plugin [p]"}
    thrown = await error_of("boom")
    assert thrown["code"] == -32603 and thrown["message"] == "Internal error"
    assert thrown["data"].startswith('error invoking method "boom": Error: kaboom at ')
    assert "p/kernel.js" in thrown["data"]
    # [better] a rejected Error keeps its message (SiYuan prints "map[]")
    rejected = await error_of("rejectError")
    assert rejected["code"] == -32603 and rejected["data"].startswith(
        'error invoking method "rejectError": TypeError: bad thing')
    rejected = await error_of("rejectString")
    assert rejected["code"] == -32603 and "just a string" in rejected["data"]


@pytest.mark.parametrize("method", ["coded", "codedError"])
async def test_thrown_numeric_code_in_the_server_range_is_honoured(server: Server, method: str) -> None:
    r = await server.rpc({"jsonrpc": "2.0", "id": 1, "method": method, "params": [-32050]})
    e = r.json()["error"]
    assert e["code"] == -32050 and e["message"] == "Server error"
    assert e["data"].startswith(f'error invoking method "{method}": ')
    for outside in (-32601, -31999, 5, 1.5):
        r = await server.rpc({"jsonrpc": "2.0", "id": 1, "method": method, "params": [outside]})
        assert r.json()["error"]["code"] == -32603, outside


async def test_unencodable_result_fails_that_entry_only(server: Server) -> None:
    r = await server.rpc([{"jsonrpc": "2.0", "id": 1, "method": "fn"},
                          {"jsonrpc": "2.0", "id": 2, "method": "echo", "params": ["fine"]}])
    first, second = r.json()
    assert r.status_code == 200 and second == ok("fine", 2)
    assert first["id"] == 1 and first["error"]["code"] == -32603
    assert "cannot encode a function" in first["error"]["data"]


class _HostWithAPythonBug:
    """The real manager, except that method ``pybug`` fails inside the host with a Python exception."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    async def call(self, name: str, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        if method == "pybug":
            raise KeyError("/srv/secret/path.json")
        return await self._manager.call(name, method, params, timeout=timeout)


async def test_python_exception_text_never_reaches_clients(host: Host) -> None:
    host.plugin("p", PLUGIN)
    await host.start()
    s = Server(host, _HostWithAPythonBug(host.manager))
    try:
        r = await s.rpc([{"jsonrpc": "2.0", "id": 1, "method": "pybug"},
                         {"jsonrpc": "2.0", "id": 2, "method": "echo", "params": [2]}])
        first, second = r.json()
        assert first == err(-32603, "Internal error", 'error invoking method "pybug": internal host error', 1)
        assert second == ok(2, 2)
        assert "secret" not in r.text and "KeyError" not in r.text and "Traceback" not in r.text
    finally:
        await s.close()


# ---- [better] timeouts, limits -----------------------------------------------------------------------------

async def test_stuck_calls_time_out_while_the_same_and_other_plugins_keep_answering(server: Server) -> None:
    never = asyncio.ensure_future(server.rpc({"jsonrpc": "2.0", "id": "n", "method": "never"}))
    await _until_true(server, "nevers")
    assert (await server.rpc({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["same"]})).json() == ok(
        "same", 1)
    assert (await server.rpc({"jsonrpc": "2.0", "id": 2, "method": "ping"}, name="other")).json() == ok("pong", 2)
    r = (await never).json()
    assert r["id"] == "n" and r["error"]["code"] == -32603 and r["error"]["message"] == "Internal error"
    assert r["error"]["data"] == f'method "never" did not answer within {CALL_TIMEOUT:g} s'

    # a synchronous infinite loop: the caller gets the timeout, other plugins are answered meanwhile, and the
    # CPU limit interrupts the loop so the plugin serves again
    spin = asyncio.ensure_future(server.rpc({"jsonrpc": "2.0", "id": "s", "method": "spin"}))
    assert (await server.rpc({"jsonrpc": "2.0", "id": 0, "method": "ping"}, name="other")).json() == ok("pong", 0)
    assert not spin.done()  # the other plugin answered while this one spun (its answer waits for the 1 s timeout)
    for i in range(1, 3):
        assert (await server.rpc({"jsonrpc": "2.0", "id": i, "method": "ping"}, name="other")).json() == ok(
            "pong", i)
    r = (await spin).json()
    assert r["error"]["code"] == -32603 and "did not answer within" in r["error"]["data"]
    answers = []
    async with asyncio.timeout(120):  # the CPU limit (3 s of CPU time: longer in wall time on a loaded machine)
        while True:  # calls queued behind the loop time out too, until the CPU limit ends it
            answers.append((await server.rpc({"jsonrpc": "2.0", "id": 3, "method": "echo",
                                              "params": ["back"]})).json())
            if "result" in answers[-1]:
                break
    assert answers[-1] == ok("back", 3), answers
    assert all(a["error"]["data"] == f'method "echo" did not answer within {CALL_TIMEOUT:g} s' for a in answers[:-1])


async def test_calls_in_flight_when_a_plugin_stops_are_answered_not_hung(server: Server) -> None:
    waiting = asyncio.ensure_future(server.rpc({"jsonrpc": "2.0", "id": 1, "method": "never"}))
    await _until_true(server, "nevers")
    assert server.host.manager is not None
    await server.host.manager.unload("p")
    r = (await asyncio.wait_for(waiting, CALL_TIMEOUT * 0.9)).json()
    assert r["id"] == 1 and r["error"]["code"] in (-32002, -32603)


async def test_request_size_limit_is_configurable_with_a_clear_error(server: Server) -> None:
    r = await server.rpc({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x" * 60_000]})
    assert r.json() == ok("x" * 60_000, 1)
    r = await server.rpc({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x" * 70_000]})
    assert r.status_code == 413
    e = r.json()["error"]
    assert e["code"] == -32600 and e["message"] == "Invalid Request"
    assert e["data"] == f"RPC request is too large: {len(r.request.content)} bytes, the limit is 65536"


async def test_default_request_limit_is_8_mib(host: Host) -> None:
    host.plugin("p", PLUGIN)
    await host.start()
    assert Limits().max_body_bytes == 8 * 1024 * 1024
    s = Server(host)
    try:
        body = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["' + b"x" * (8 * 1024 * 1024) + b'"]}'
        r = await s.http.post("/api/plugin/rpc/p", content=body)
        assert r.status_code == 413 and "the limit is 8388608" in r.json()["error"]["data"]
    finally:
        await s.close()


async def test_batch_size_limit(server: Server) -> None:
    r = await server.rpc([{"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]} for i in range(20)])
    assert [x["result"] for x in r.json()] == list(range(20))
    r = await server.rpc([{"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]} for i in range(21)])
    assert r.json() == err(-32600, "Invalid Request", "RPC batch has 21 requests, the limit is 20")


# ---- §5.5 WebSocket ----------------------------------------------------------------------------------------

async def test_websocket_precheck_answers_404_with_the_jsonrpc_body(server: Server) -> None:
    r = await server.http.get("/ws/plugin/rpc/broken")
    assert r.status_code == 404 and r.json() == err(-32002, "Plugin not running")
    r = await server.http.get("/ws/plugin/rpc?name=missing")
    assert r.status_code == 404 and r.json() == err(-32001, "Plugin not loaded")
    r = await server.http.get("/ws/plugin/rpc?name=p")
    assert r.status_code == 400 and r.text == "This endpoint only accepts WebSocket connections"
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p"):
            pass
    assert info.value.response.status_code == 401


async def test_websocket_messages_follow_the_http_rules(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", additional_headers=server.auth) as ws:
        await ws.send("{nope")
        assert json.loads(await ws.recv()) == err(-32700, "Parse error", "RPC request is not valid JSON")
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [1]}))  # nothing comes back
        await ws.send(json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [1]},
                                  {"jsonrpc": "2.0", "method": "echo"}]).encode())  # binary frame
        answer = await ws.recv()
        assert isinstance(answer, str) and json.loads(answer) == [ok(1, 1)]  # answered as a text frame


async def test_websocket_calls_are_answered_out_of_order(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", additional_headers=server.auth) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "first", "method": "wait"}))
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "second", "method": "echo", "params": [2]}))
        assert json.loads(await ws.recv()) == ok(2, "second")  # not blocked behind "first"
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "third", "method": "release", "params": [1]}))
        got = [json.loads(await ws.recv()) for _ in range(2)]
        assert sorted(got, key=lambda m: m["id"]) == [ok(1, "first"), ok("released", "third")]


async def test_websocket_oversized_message_closes_with_1009(server: Server) -> None:
    async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", additional_headers=server.auth) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x" * 70_000]}))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_websocket_keepalive_pings(host: Host) -> None:
    host.plugin("p", PLUGIN)
    await host.start()
    s = Server(host, ping_interval=0.2)
    try:
        raw = await RawWebSocket.connect(s.port, "/ws/plugin/rpc/p", s.auth)
        frame = await asyncio.wait_for(raw.read_frame(), 10)
        assert frame.opcode == 0x9  # ping
        raw.close()
    finally:
        await s.close()


@pytest.mark.parametrize("how", ["unload", "reload"])
async def test_all_sockets_of_a_plugin_close_when_it_stops_or_reloads(server: Server, how: str) -> None:
    manager = server.host.manager
    assert manager is not None
    url = f"{server.ws}/ws/plugin/rpc/p"
    async with (websockets.connect(url, additional_headers=server.auth) as a,
                websockets.connect(url, additional_headers=server.auth) as b,
                websockets.connect(f"{server.ws}/ws/plugin/rpc/other", additional_headers=server.auth) as o):
        await (manager.unload("p") if how == "unload" else manager.reload("p"))
        for ws in (a, b):
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            assert info.value.rcvd.reason.startswith("plugin [p] is ")
        await o.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        assert json.loads(await o.recv()) == ok("pong", 1)  # other plugins' sockets stay open
    if how == "reload":
        await wait_for(lambda: server.host.state("p") == PluginState.RUNNING)
        async with websockets.connect(url, additional_headers=server.auth) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["new"]}))
            assert json.loads(await ws.recv()) == ok("new", 1)


async def test_slow_websocket_consumer_is_closed_with_a_reason_and_bounded_queue(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import kplug_lab.rpc.handlers as handlers

    monkeypatch.setattr(handlers._BoundedSocket, "max_pending", 10)
    raw = await RawWebSocket.connect(server.port, "/ws/plugin/rpc/p", {"Authorization": f"Token {TOKEN}"})
    manager = server.host.manager
    assert manager is not None
    payload = "y" * 500_000
    for _ in range(100):  # 50 MB offered to a client that does not read
        manager.broadcast("p", "big", [payload])  # queued synchronously: the 11th overflows the bound
    frames = []
    async with asyncio.timeout(30):
        while True:
            frame = await raw.read_frame()
            frames.append(frame)
            if frame.opcode == 0x8:
                break
    close = frames[-1]
    assert close.close_code == 1008 and close.close_reason == "send queue full: the client reads too slowly"
    data_frames = [f for f in frames if f.opcode == 0x1]
    assert len(data_frames) <= 10 + 1  # queued at most max_pending messages, never all 100
    raw.close()


async def test_websocket_broadcasts_reach_every_socket_of_the_plugin(server: Server) -> None:
    url = f"{server.ws}/ws/plugin/rpc/p"
    async with (websockets.connect(url, additional_headers=server.auth) as a,
                websockets.connect(url, additional_headers=server.auth) as b):
        r = await server.rpc({"jsonrpc": "2.0", "id": 1, "method": "shout", "params": [2]})
        assert r.json() == ok(2, 1)
        for ws in (a, b):
            got = [json.loads(await ws.recv()) for _ in range(2)]
            assert got == [{"jsonrpc": "2.0", "method": "tick", "params": [0]},
                           {"jsonrpc": "2.0", "method": "tick", "params": [1]}]


async def test_websocket_in_flight_calls_are_bounded_by_back_pressure(server: Server,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import kplug_lab.rpc.handlers as handlers

    monkeypatch.setattr(handlers.PluginRPCWebSocket, "max_in_flight", 2)
    async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", additional_headers=server.auth) as ws:
        for id_ in ("n1", "n2"):
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": id_, "method": "never"}))
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "e", "method": "echo", "params": ["after"]}))
        # the third message is read only when one of the two stuck calls has been answered (by its timeout)
        got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(3)]
        assert got[0]["id"] in ("n1", "n2") and got[0]["error"]["code"] == -32603
        assert ok("after", "e") in got[1:]


async def test_a_lone_surrogate_in_a_result_or_an_error_is_escaped_not_a_500(server: Server) -> None:
    r = await server.rpc('{"jsonrpc":"2.0","id":1,"method":"echo","params":["a\\ud800b"]}', raw=True)
    assert r.status_code == 200 and r.json() == ok("a\ud800b", 1)
    r = await server.rpc('{"jsonrpc":"2.0","id":2,"method":"\\udfff"}', raw=True)
    assert r.status_code == 200 and r.json()["error"]["data"] == "method [\udfff] not found in plugin [p]"
    assert (await server.rpc({"jsonrpc": "2.0", "id": 3, "method": "echo", "params": [1e308]})).json() == ok(1e308, 3)
