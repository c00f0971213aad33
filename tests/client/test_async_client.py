"""The asyncio client against a real ``kplug serve``."""

from __future__ import annotations

import pytest

from kplug_lab.client import AsyncClient, CallFailed, MethodNotFoundError, Notification, PluginNotLoadedError
from kplug_lab.notebook._process import ServerProcess


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
