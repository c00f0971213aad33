"""The asyncio client against a real ``kplug serve``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets.asyncio.server
from kplug_testing import wait_for, write_plugin

from kplug_lab.client import (
    AsyncClient,
    CallFailed,
    ConnectionFailed,
    MethodNotFoundError,
    Notification,
    PluginNotLoadedError,
)
from kplug_lab.client._async import AsyncPluginSocket
from kplug_lab.notebook._process import ServerProcess

#: long enough that a call failing by timeout (instead of at once, with the socket's end) is a ResponseTimeout,
#: which the tests below would report as the wrong error
CALL_TIMEOUT = 30.0

HANGING_PLUGIN = 'siyuan.rpc.bind("hang", () => new Promise(() => {})); siyuan.rpc.bind("v", () => 1);'


async def test_async_call_notify_and_batch(server: ServerProcess) -> None:
    async with AsyncClient(server.url, server.token) as c:
        assert await c.call("hello", "echo", "a", 1) == ["a", 1]
        assert await c.call("hello", "echo", k="v") == {"k": "v"}
        before = (await c.call("counter", "get"))["value"]
        await c.notify("counter", "increment", 3)
        assert (await c.call("counter", "get"))["value"] == before + 3
        out = await c.batch("hello").call("echo", 1).call("nope").send()
        assert out[0] == 1 and isinstance(out[1], MethodNotFoundError)


async def test_async_errors_are_mapped_by_code(server: ServerProcess) -> None:
    async with AsyncClient(server.url, server.token) as c:
        with pytest.raises(PluginNotLoadedError):
            await c.call("no-such-plugin", "x")
        with pytest.raises(CallFailed, match="finite number"):
            await c.call("counter", "increment", "x")


async def test_async_admin_wrappers(server: ServerProcess) -> None:
    async with AsyncClient(server.url, server.token) as c:
        assert "hello" in [p.name for p in await c.list_plugins()]
        assert (await c.state("hello")).state == "running"
        assert await c.eval("hello", "40 + 2") == 42
        assert (await c.reload("hello")).state == "running"
        assert any(r.plugin == "hello" for r in await c.logs("hello"))


async def test_async_websocket_receives_broadcasts_and_subscriptions(server: ServerProcess) -> None:
    async with AsyncClient(server.url, server.token) as c:
        async with await c.connect("counter") as ws:
            result = await ws.call("increment")
            assert await ws.next_notification(10) == Notification("changed", result)
            assert (await ws.batch().call("get").send())[0] == result
        async with await c.admin_socket() as admin:
            await admin.subscribe(["log"])
            await c.call("hello", "greet", "async")
            seen = [n async for n in admin.notifications(timeout=3)]
            assert any(n.method == "kplug.log" and n.params["message"] == "greeted async" for n in seen)


async def _pending(ws: AsyncPluginSocket, count: int = 1) -> list[asyncio.Task[Any]]:
    """``count`` calls to ``hang`` (never answered), once the socket waits on all of them."""
    calls = [asyncio.ensure_future(ws.call("hang")) for _ in range(count)]
    await wait_for(lambda: len(ws._pending) == count, what="the calls to be sent")
    return calls


async def test_pending_call_fails_at_once_with_the_close_reason_when_the_plugin_stops(
        server: ServerProcess, tmp_path: Path) -> None:
    async with AsyncClient(server.url, server.token, timeout=CALL_TIMEOUT) as c:
        await c.load(str(write_plugin(tmp_path, "ac-stops", HANGING_PLUGIN)))
        async with await c.connect("ac-stops") as ws:
            [call] = await _pending(ws)
            await c.unload("ac-stops")
            with pytest.raises(ConnectionFailed, match=r"code 1001\): plugin \[ac-stops\] is stopping"):
                await call
            assert ws.closed
            with pytest.raises(ConnectionFailed, match=r"plugin \[ac-stops\] is stopping"):
                await ws.call("v")
            with pytest.raises(ConnectionFailed, match="no more notifications"):
                await ws.next_notification(CALL_TIMEOUT)
            assert [n async for n in ws.notifications(CALL_TIMEOUT)] == []


async def test_pending_calls_fail_at_once_when_the_server_is_killed(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    write_plugin(tmp_path / "plugins", "ac-killed", HANGING_PLUGIN)
    with ServerProcess(tmp_path / "plugins", data=tmp_path / "data") as proc:
        async with AsyncClient(proc.url, proc.token, timeout=CALL_TIMEOUT) as c:
            ws = await c.connect("ac-killed")
            calls = await _pending(ws, 3)
            seen = asyncio.ensure_future(ws.next_notification(CALL_TIMEOUT))
            assert proc._proc is not None
            proc._proc.kill()
            for call in calls:
                with pytest.raises(ConnectionFailed, match="the WebSocket closed"):
                    await call
            with pytest.raises(ConnectionFailed, match="no more notifications"):
                await seen
            await ws.aclose()


async def test_notification_handler_that_raises_does_not_stop_the_reader(server: ServerProcess) -> None:
    async with AsyncClient(server.url, server.token, timeout=CALL_TIMEOUT) as c, await c.connect("counter") as ws:
        def fail(note: Notification) -> None:
            raise RuntimeError("a broken handler")

        handled: list[Notification] = []
        ws.on_notification(fail)
        ws.on_notification(handled.append)
        first = await ws.call("increment")
        second = await ws.call("increment")
        assert await ws.next_notification() == Notification("changed", first)
        assert await ws.next_notification() == Notification("changed", second)
        assert handled == [Notification("changed", first), Notification("changed", second)]
        assert not ws.closed


Handler = Callable[[websockets.asyncio.server.ServerConnection], Awaitable[None]]
StartServer = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def fake_server() -> AsyncIterator[StartServer]:
    """A function that starts a bare WebSocket server on a free loopback port running a handler and returns its
    URL; every server started is stopped after the test."""
    servers: list[websockets.asyncio.server.Server] = []

    async def start(handler: Handler) -> str:
        srv = await websockets.asyncio.server.serve(handler, "127.0.0.1", 0)
        servers.append(srv)
        host, port = next(iter(srv.sockets)).getsockname()[:2]
        return f"http://{host}:{port}/"

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


async def test_pending_call_fails_with_the_code_and_reason_the_server_closed_with(fake_server: StartServer) -> None:
    async def close_on_first_call(conn: websockets.asyncio.server.ServerConnection) -> None:
        await conn.recv()
        await conn.close(4000, "maintenance: come back later")

    url = await fake_server(close_on_first_call)
    async with AsyncClient(url, timeout=CALL_TIMEOUT) as c, await c.connect("any") as ws:
        with pytest.raises(ConnectionFailed, match=r"4000 \(private use\) maintenance: come back later"):
            await ws.call("hang")
        assert [n async for n in ws.notifications(CALL_TIMEOUT)] == []


async def test_answer_with_an_unusable_id_is_ignored_and_the_socket_keeps_serving(fake_server: StartServer) -> None:
    async def answer_twice(conn: websockets.asyncio.server.ServerConnection) -> None:
        async for message in conn:
            request = json.loads(message)
            await conn.send(json.dumps({"jsonrpc": "2.0", "id": [request["id"]], "result": "wrong"}))
            await conn.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "right"}))

    url = await fake_server(answer_twice)
    async with AsyncClient(url, timeout=CALL_TIMEOUT) as c, await c.connect("any") as ws:
        assert await ws.call("first") == "right"
        assert await ws.call("second") == "right"


async def test_unexpected_error_in_the_reader_fails_pending_calls_at_once(
        fake_server: StartServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer(conn: websockets.asyncio.server.ServerConnection) -> None:
        async for message in conn:
            await conn.send(json.dumps({"jsonrpc": "2.0", "id": json.loads(message)["id"], "result": 1}))

    def broken(self: AsyncPluginSocket, obj: object) -> None:
        raise RuntimeError("a bug in the reader")

    url = await fake_server(answer)
    async with AsyncClient(url, timeout=CALL_TIMEOUT) as c, await c.connect("any") as ws:
        monkeypatch.setattr(AsyncPluginSocket, "_dispatch", broken)
        with pytest.raises(ConnectionFailed, match=r"the WebSocket failed \(RuntimeError\('a bug in the reader'\)\)"):
            await ws.call("x")
        with pytest.raises(ConnectionFailed, match="a bug in the reader"):
            await ws.next_notification(CALL_TIMEOUT)
