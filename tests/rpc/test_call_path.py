"""The call path from the RPC layer to a plugin's actor thread and back (ADR 0004): results settle loop futures in
batches, queued calls are answered when the plugin stops, and WebSocket sockets send without Nagle's delay."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import pytest
import websockets
from kplug_testing import Host, wait_for
from rpc_server import TOKEN, Server

from kplug_lab.errors import JSError
from kplug_lab.host.runtime.actor import Actor
from kplug_lab.rpc.handlers import AdminWebSocketHandler, PluginRPCWebSocket

PLUGIN = """
siyuan.rpc.bind("echo", (x) => x);
siyuan.rpc.bind("later", async (x) => { await new Promise((r) => setTimeout(r, 1)); return [x]; });
siyuan.rpc.bind("fail", async () => { throw new Error("no " + 1); });
siyuan.rpc.bind("bump", async (n) => { await siyuan.rpc.broadcast("bumped", [n]); return n + 1; });
"""


async def test_concurrent_sync_and_async_calls_each_get_their_own_result(host: Host) -> None:
    host.plugin("p", PLUGIN)
    manager = await host.start()
    calls = [manager.call("p", "echo" if i % 2 else "later", [i]) for i in range(400)]
    results = await asyncio.gather(*calls)
    assert results == [i if i % 2 else [i] for i in range(400)]


async def test_a_rejected_promise_reaches_the_caller_as_an_error(host: Host) -> None:
    host.plugin("p", PLUGIN)
    manager = await host.start()
    with pytest.raises(Exception, match="no 1"):
        await manager.call("p", "fail", [])
    assert await manager.call("p", "echo", ["still serving"]) == "still serving"


@pytest.mark.parametrize("follow_caller_cpu", [False, True], ids=["plain", "follow_caller_cpu"])
async def test_results_ready_together_are_settled_together(follow_caller_cpu: bool) -> None:
    """Results the actor delivered while the loop was busy are all settled before the loop runs anything else:
    when the first answer's callback runs, every other answer is already there."""
    loop = asyncio.get_running_loop()
    actor = Actor("t", on_timer=lambda _id: None, loop=loop, follow_caller_cpu=follow_caller_cpu)
    gate, ran_all = threading.Event(), threading.Event()
    try:
        actor.post(gate.wait)
        futures = [actor.run(lambda i=i: i * i) for i in range(50)]  # type: ignore[misc]
        actor.post(ran_all.set)
        seen_done: list[int] = []
        futures[0].add_done_callback(lambda _f: seen_done.append(sum(f.done() for f in futures)))
        gate.set()
        # the loop thread is held here, so every result is delivered before the loop can take the first one
        assert ran_all.wait(10)
        assert await asyncio.gather(*futures) == [i * i for i in range(50)]
    finally:
        actor.stop()
    assert seen_done == [50]


async def test_a_pending_vm_future_is_followed_to_its_outcome() -> None:
    import concurrent.futures

    loop = asyncio.get_running_loop()
    actor = Actor("t", on_timer=lambda _id: None, loop=loop)
    later: concurrent.futures.Future[Any] = concurrent.futures.Future()
    failed: concurrent.futures.Future[Any] = concurrent.futures.Future()
    try:
        value = actor.run(lambda: later)
        error = actor.run(lambda: failed)
        await asyncio.wrap_future(actor.submit(lambda: None))  # both calls have run on the actor
        assert not value.done() and not error.done()
        actor.post(lambda: later.set_result("settled"))
        actor.post(lambda: failed.set_exception(JSError("Error", "rejected", "", None)))
        assert await value == "settled"
        with pytest.raises(JSError):
            await error
    finally:
        actor.stop()


async def test_calls_queued_when_the_actor_stops_are_answered_not_left_waiting() -> None:
    loop = asyncio.get_running_loop()
    actor = Actor("t", on_timer=lambda _id: None, loop=loop)
    gate = threading.Event()
    actor.post(gate.wait)
    queued = [actor.run(lambda: "never") for _ in range(3)]
    stopper = loop.run_in_executor(None, actor.stop, 10.0)

    def stop_has_begun() -> bool:  # a call made once stop() began is refused at once instead of queued
        probe = actor.run(lambda: "never")
        if probe.done():
            probe.exception()
            return True
        queued.append(probe)
        return False

    await wait_for(stop_has_begun, what="stop() to begin")  # the busy job still holds the thread
    gate.set()
    assert await stopper
    for fut in queued:
        with pytest.raises(RuntimeError, match="has stopped"):
            await asyncio.wait_for(fut, 10)
    with pytest.raises(RuntimeError, match="has stopped"):
        await actor.run(lambda: "after stop")


async def test_a_timed_out_call_does_not_break_later_answers(host: Host) -> None:
    host.plugin("p", """
    siyuan.rpc.bind("hang", () => new Promise(() => {}));
    siyuan.rpc.bind("echo", (x) => x);
    """)
    manager = await host.start()
    with pytest.raises(Exception, match="did not answer"):
        await manager.call("p", "hang", [], timeout=0.1)
    assert await asyncio.gather(*(manager.call("p", "echo", [i]) for i in range(20))) == list(range(20))


def _nodelay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


@pytest.mark.parametrize("path", ["/ws/plugin/rpc/p", "/kplug/api/ws"])
async def test_websocket_sockets_send_without_nagle_delay(host: Host, monkeypatch: pytest.MonkeyPatch,
                                                          path: str) -> None:
    """tornado leaves Nagle on for WebSockets; an answer written right after a broadcast then waited for the
    client's delayed ACK (40 ms on Linux)."""
    host.plugin("p", PLUGIN)
    await host.start()
    server = Server(host)
    opened: list[Any] = []
    for cls in (PluginRPCWebSocket, AdminWebSocketHandler):
        real_open = cls.open

        def record(self: Any, *args: Any, _real: Any = real_open, **kwargs: Any) -> None:
            _real(self, *args, **kwargs)
            opened.append(self)

        monkeypatch.setattr(cls, "open", record)
    try:
        async with websockets.connect(server.ws + path, additional_headers={"Authorization": f"Token {TOKEN}"}):
            assert len(opened) == 1
            stream = opened[0].ws_connection.stream
            assert _nodelay(stream.socket)
    finally:
        await server.close()


async def test_a_broadcast_and_the_answer_after_it_arrive_in_order(host: Host) -> None:
    host.plugin("p", PLUGIN)
    await host.start()
    server = Server(host)
    try:
        async with websockets.connect(server.ws + "/ws/plugin/rpc/p",
                                      additional_headers={"Authorization": f"Token {TOKEN}"}) as ws:
            for n in range(5):
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": n, "method": "bump", "params": [n]}))
                got = [json.loads(await ws.recv()) for _ in range(2)]
                assert got == [{"jsonrpc": "2.0", "method": "bumped", "params": [n]},
                               {"jsonrpc": "2.0", "result": n + 1, "id": n}]
    finally:
        await server.close()


@pytest.mark.parametrize("direct", [False, True], ids=["write_message", "ws_direct_frames"])
@pytest.mark.parametrize("compress", [False, True])
async def test_websocket_frames_arrive_intact(host: Host, monkeypatch: pytest.MonkeyPatch, compress: bool,
                                              direct: bool) -> None:
    """Answers and broadcasts arrive whole and in order, written by ``write_message`` (the default) or, with the
    opt-in ``kplug_ws_direct_frames`` setting, as frames without tornado's per-message wrapper task
    (``_BoundedSocket._write_text``); with permessage-deflate negotiated they are compressed either way."""
    if compress:
        monkeypatch.setattr(PluginRPCWebSocket, "get_compression_options", lambda self: {})
    host.plugin("p", PLUGIN)
    await host.start()
    server = Server(host, kplug_ws_direct_frames=direct)
    big = "ünïcödé " * 20_000 + "🙂"
    try:
        async with websockets.connect(server.ws + "/ws/plugin/rpc/p",
                                      additional_headers={"Authorization": f"Token {TOKEN}"}, max_size=None,
                                      compression="deflate" if compress else None) as ws:
            assert (ws.response.headers.get("Sec-WebSocket-Extensions") is not None) == compress
            for n in range(50):
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": n, "method": "echo", "params": [f"{n}{big}"]}))
            answers = {m["id"]: m["result"] for m in [json.loads(await ws.recv()) for _ in range(50)]}
            assert answers == {n: f"{n}{big}" for n in range(50)}
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": "b", "method": "bump", "params": [7]}))
            assert [json.loads(await ws.recv()) for _ in range(2)] == [
                {"jsonrpc": "2.0", "method": "bumped", "params": [7]}, {"jsonrpc": "2.0", "result": 8, "id": "b"}]
    finally:
        await server.close()


async def test_server_sent_events_are_sent_without_nagle_delay(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    from kplug_lab.rpc.private import EventStream

    host.plugin("p", """
    siyuan.server.private.es.handler = (req) => { req.port.onopen = () => req.port.send({ data: 1 }); };
    """)
    await host.start()
    server = Server(host)
    streams: list[EventStream] = []
    real_start = EventStream._start

    def record(self: EventStream) -> None:
        streams.append(self)
        real_start(self)

    monkeypatch.setattr(EventStream, "_start", record)
    try:
        async with server.http.stream("GET", "/plugin/private/p/events",
                                      headers={"Accept": "text/event-stream"}) as r:
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    break
            assert _nodelay(streams[0].handler.request.connection.stream.socket)  # type: ignore[union-attr]
    finally:
        await server.close()


async def test_run_deadlines_fail_only_the_late_calls_each_after_its_own_timeout() -> None:
    loop = asyncio.get_running_loop()
    actor = Actor("t", on_timer=lambda _id: None, loop=loop)
    release = threading.Event()
    try:
        quick = actor.run(lambda: "quick", timeout=5)
        assert await quick == "quick"
        stuck = actor.run(lambda: release.wait(10), timeout=5)  # holds the actor until released
        short = actor.run(lambda: "too late", timeout=0.05)
        shorter = actor.run(lambda: "too late too", timeout=0.01)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await shorter
        with pytest.raises(TimeoutError):
            await short
        assert loop.time() - started >= 0.04  # each expired at its own deadline, not at the first one
        assert not stuck.done()
        release.set()
        assert await stuck is True
        assert await actor.run(lambda: "after", timeout=0.01) == "after"
        assert await actor.run(lambda: "no limit") == "no limit"
    finally:
        release.set()
        actor.stop()


async def test_run_deadlines_do_not_keep_answered_calls() -> None:
    actor = Actor("t", on_timer=lambda _id: None, loop=asyncio.get_running_loop())
    try:
        for i in range(200):
            assert await actor.run(lambda i=i: [i] * 1000, timeout=60) == [i] * 1000  # type: ignore[misc]
        held = sum(len(fifo) for fifo in actor._deadlines._fifos.values())  # type: ignore[union-attr]
        assert held <= 1  # only the newest, not 200 results kept alive for a minute
    finally:
        actor.stop()


WIRE_PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a));
siyuan.rpc.bind("boom", () => { throw new Error("kaboom"); });
siyuan.rpc.bind("coded", (code) => { throw { code, message: "custom failure" }; });
siyuan.rpc.bind("later", async (x) => { await new Promise((r) => setTimeout(r, 1)); return x; });
siyuan.rpc.bind("fn", () => () => 1);
siyuan.rpc.bind("never", () => new Promise(() => {}));
"""

# every kind of answer: a WebSocket answers each single request from its call's done-callback (no task) and a
# batch in a task; HTTP goes through the coroutine path. Both must answer exactly alike.
WIRE_BODIES = [
    '{"jsonrpc":"2.0","id":1,"method":"echo","params":["x"]}',
    '{"jsonrpc":"2.0","id":"s","method":"echo","params":{"a":1}}',
    '{"jsonrpc":"2.0","id":2,"method":"echo"}',
    '{"jsonrpc":"2.0","id":3,"method":"later","params":[[1,2]]}',
    '{"jsonrpc":"2.0","id":4,"method":"missing"}',
    '{"jsonrpc":"2.0","id":5,"method":"boom"}',
    '{"jsonrpc":"2.0","id":6,"method":"coded","params":[-32042]}',
    '{"jsonrpc":"2.0","id":7,"method":"fn"}',
    '{"jsonrpc":"2.0","id":8,"method":"echo","params":3}',
    '{"jsonrpc":"2.0","id":9,"method":"never"}',
    '{"jsonrpc":"1.0","id":10,"method":"echo"}',
    '{"id":11,"method":"echo"}',
    '{"jsonrpc":"2.0","id":12,"method":"echo","params":[NaN]}',
    "not json",
    "[]",
    "null",
    "[1,2,3,4]",
    '[{"jsonrpc":"2.0","id":13,"method":"echo","params":[1]},{"jsonrpc":"2.0","method":"echo"},5,'
    '{"jsonrpc":"2.0","id":14,"method":"boom"}]',
]
WIRE_NOTIFICATIONS = [
    '{"jsonrpc":"2.0","method":"echo","params":["x"]}',
    '{"jsonrpc":"2.0","method":"boom"}',
    '{"jsonrpc":"2.0","method":"missing"}',
    '{"jsonrpc":"2.0","method":"echo","params":3}',
    '[{"jsonrpc":"2.0","method":"echo"}]',
]


async def test_websocket_answers_exactly_as_http(host: Host) -> None:
    from kplug_lab.protocol.jsonrpc import Limits

    host.plugin("p", WIRE_PLUGIN)
    await host.start()
    s = Server(host, limits=Limits(call_timeout=0.5, max_batch=3))
    try:
        over_http = []
        for body in WIRE_BODIES:
            r = await s.rpc(body, raw=True)
            assert r.status_code == 200, body
            over_http.append(r.json())
        for body in WIRE_NOTIFICATIONS:
            assert (await s.rpc(body, raw=True)).status_code == 204, body
        async with websockets.connect(f"{s.ws}/ws/plugin/rpc/p", additional_headers=s.auth) as ws:
            for body, expected in zip(WIRE_BODIES, over_http, strict=True):
                await ws.send(body)
                assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == expected, body
            for body in WIRE_NOTIFICATIONS:  # nothing comes back: the next answer is the marker's
                await ws.send(body)
            await ws.send('{"jsonrpc":"2.0","id":"marker","method":"echo","params":[0]}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"jsonrpc": "2.0", "result": 0,
                                                                         "id": "marker"}
    finally:
        await s.close()


async def test_websocket_answers_pipelined_calls_out_of_order_and_drops_them_on_close(host: Host) -> None:
    host.plugin("p", WIRE_PLUGIN)
    manager = await host.start()
    s = Server(host)
    try:
        async with websockets.connect(f"{s.ws}/ws/plugin/rpc/p", additional_headers=s.auth) as ws:
            await ws.send('{"jsonrpc":"2.0","id":"slow","method":"never"}')
            for i in range(50):
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]}))
            got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(50)]
            assert sorted(m["id"] for m in got) == list(range(50))
        # the stuck call's answer is dropped with its connection; the plugin keeps serving
        assert await manager.call("p", "echo", ["still"]) == "still"
    finally:
        await s.close()
