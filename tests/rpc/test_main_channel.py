"""State pushes on the main channel (kplug_lab/rpc/main_channel.py): a client that behaves as SiYuan's own
(spec §5.8: reopen the RPC WebSocket when a main-channel push says the plugin is running) keeps receiving a
plugin's broadcasts across a reload, a crash and restart, and a restart of the server, standalone and behind the
front door (kplug_lab/server/front_door.py, in front of the fake SiYuan kernel, which keeps running)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.web
import tornado.websocket
from kplug_testing import free_port, write_plugin

from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager
from kplug_lab.rpc.app import make_standalone_app
from kplug_lab.rpc.main_channel import close_main_channel, state_snapshot, subscribe_state_pushes
from kplug_lab.server.front_door import FrontDoor, FrontDoorConfig, make_front_door_app
from kplug_lab.testing.fake_siyuan import FakeSiYuan

TOKEN = "main-channel-token"
TICKER = """
let n = 0;
siyuan.plugin.lifecycle.onrunning = () => { setInterval(() => siyuan.rpc.broadcast("tick", [n++]), 20); };
siyuan.rpc.bind("crash", () => {
  let o = {}, x = o; for (let i = 0; i < 100000; i++) { x.a = {}; x = x.a; }
  return JSON.stringify(o).length;
});
"""
WAIT_S = 20.0


class Server:
    """``kplug serve`` in this process, stoppable and restartable on the same port with the same token; with
    ``kernel_url``, as ``kplug serve --front-door`` in front of that kernel (a new front door each start)."""

    def __init__(self, tmp: Path, kernel_url: str | None = None) -> None:
        self.plugins = tmp / "plugins"
        write_plugin(self.plugins, "ticker", TICKER)
        self.data = tmp / "data"
        self.port = free_port()
        self.kernel_url = kernel_url
        self.manager: PluginManager | None = None
        self.http: tornado.httpserver.HTTPServer | None = None
        self.app: tornado.web.Application | None = None
        self.door: FrontDoor | None = None

    async def start(self) -> None:
        """As ``kplug serve`` starts (kplug_lab/server/cli.py): listening before the plugins start."""
        manager = self.manager = PluginManager(HostConfig(data_dir=self.data, hot_reload=False,
                                                          restart_initial=0.1, siyuan_poll_interval=0),
                                               plugins_dir=self.plugins)
        if self.kernel_url is None:
            self.app = make_standalone_app(manager, TOKEN)
        else:
            self.door = FrontDoor(FrontDoorConfig(kernel_url=self.kernel_url))
            self.app = make_front_door_app(manager, TOKEN, self.door)
            self.door.follow(lambda send: subscribe_state_pushes(manager, send, snapshot=False),
                             snapshot=lambda: state_snapshot(manager))
        self.http = self.app.listen(self.port, address="127.0.0.1")
        await manager.start()

    async def stop(self) -> None:
        """As ``kplug serve`` stops (kplug_lab/server/cli.py)."""
        if self.http is not None and self.app is not None:
            self.http.stop()
            close_main_channel(self.app)
            if self.door is not None:
                self.door.close()
                self.door = None
            await self.http.close_all_connections()
            self.http = None
        if self.manager is not None:
            await self.manager.close()
            self.manager = None


class SiYuanLikeClient:
    """What ``app/src/plugin/kernel.ts`` does for one plugin, plus the main channel's reconnection: follows
    ``updateKernelPluginState`` pushes and opens ``/ws/plugin/rpc?name=`` whenever the state is set to 2 and no
    RPC socket is open or connecting. Broadcasts are recorded per RPC socket (``ticks[i]``: the i-th socket)."""

    def __init__(self, port: int, name: str, token: str = TOKEN) -> None:
        self.base = f"ws://127.0.0.1:{port}"
        self.name = name
        self.token = token
        self.state = -1
        self.states: list[int] = []
        self.ticks: list[list[Any]] = []
        self.rpc_open = False
        self.changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        self._spawn(self._main_channel())
        self._spawn(self._init())

    async def _init(self) -> None:
        """After the frontend plugin's onload: ask the plugin's state once, adopted if no push came first."""
        client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch("http" + self.base[2:] + "/api/plugin/getLoadedPlugin", method="POST",
                                          body=json.dumps({"name": self.name}), raise_error=False,
                                          headers={"Authorization": f"Token {self.token}"})
        finally:
            client.close()
        answer = json.loads(response.body) if response.code == 200 else {}
        if self.state == -1 and answer.get("code") == 0:
            self._set_state(answer["data"]["stateCode"])

    async def _connect(self, path: str) -> tornado.websocket.WebSocketClientConnection:
        request = tornado.httpclient.HTTPRequest(self.base + path, headers={"Authorization": f"Token {self.token}"})
        return await tornado.websocket.websocket_connect(request)

    async def _main_channel(self) -> None:
        while not self._closing:
            try:
                ws = await self._connect("/ws?app=test&id=page&type=main")
            except (OSError, tornado.httpclient.HTTPClientError):
                await asyncio.sleep(0.05)  # SiYuan's page retries its main socket on a timer too
                continue
            while (text := await ws.read_message()) is not None:
                push = json.loads(text)
                if push["cmd"] == "updateKernelPluginState" and push["data"]["name"] == self.name:
                    self._set_state(push["data"]["state"])

    def _set_state(self, code: int) -> None:
        self.state = code
        self.states.append(code)
        if code == 2 and not self.rpc_open:
            self.rpc_open = True
            self._spawn(self._rpc_socket())
        self.changed.set()

    async def _rpc_socket(self) -> None:
        try:
            ws = await self._connect(f"/ws/plugin/rpc?name={self.name}")
        except (OSError, tornado.httpclient.HTTPClientError):
            self.rpc_open = False
            return
        ticks: list[Any] = []
        self.ticks.append(ticks)
        while (text := await ws.read_message()) is not None:
            message = json.loads(text)
            if message.get("method") == "tick":
                ticks.append(message["params"][0])
                self.changed.set()
        self.rpc_open = False

    async def ticks_on_socket(self, index: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.ticks) <= index or not self.ticks[index]:
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    s = Server(tmp_path)
    await s.start()
    yield s
    await s.stop()


async def test_a_siyuan_like_client_keeps_receiving_broadcasts_across_reload_crash_and_server_restart(
        server: Server) -> None:
    client = SiYuanLikeClient(server.port, "ticker")
    client.start()
    try:
        await client.ticks_on_socket(0)  # the snapshot push (state 2) opened the first RPC socket

        assert server.manager is not None
        await server.manager.reload("ticker")
        await client.ticks_on_socket(1)
        assert client.states[-5:] == [3, 4, 0, 1, 2]  # every state of the reload, as SiYuan pushes them

        with pytest.raises(Exception, match="crashed"):
            await server.manager.call("ticker", "crash", [])
        await client.ticks_on_socket(2)
        assert 5 in client.states[-4:] and client.states[-1] == 2

        await server.stop()
        await server.start()
        await client.ticks_on_socket(3)
        assert len(client.ticks) == 4  # one RPC socket per instance: never two open at once
    finally:
        await client.close()


async def test_behind_the_front_door_the_client_follows_reload_crash_and_server_restart_on_the_kernels_channel(
        tmp_path: Path) -> None:
    async with FakeSiYuan(tmp_path / "ws") as kernel:
        server = Server(tmp_path, kernel_url=kernel.url)
        await server.start()
        client = SiYuanLikeClient(server.port, "ticker", token=kernel.token)  # SiYuan's own credential
        client.start()
        try:
            await client.ticks_on_socket(0)  # the relayed session's snapshot (or getLoadedPlugin) said running
            kernel.push("transactions", [])  # the kernel's own pushes still arrive on the same channel
            assert server.manager is not None
            await server.manager.reload("ticker")
            await client.ticks_on_socket(1)
            assert client.states[-5:] == [3, 4, 0, 1, 2]
            with pytest.raises(Exception, match="crashed"):
                await server.manager.call("ticker", "crash", [])
            await client.ticks_on_socket(2)
            assert [m["cmd"] for m in kernel.broadcasts] == ["transactions"]

            # kplug serve restarts on the same port; the kernel keeps running. The page's main channel is
            # reopened through the new front door, whose snapshot (2) is what reopens the RPC socket: the plugin
            # may already run when the session is relayed, so no later change would say so.
            await server.stop()
            await server.start()
            await client.ticks_on_socket(3)
            assert len(client.ticks) == 4  # one RPC socket per instance: never two open at once
        finally:
            await client.close()
            await server.stop()


async def test_a_relayed_main_session_gets_the_snapshot_first_then_the_kernels_pushes(tmp_path: Path) -> None:
    async with FakeSiYuan(tmp_path / "ws") as kernel:
        server = Server(tmp_path, kernel_url=kernel.url)
        await server.start()
        main = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
            f"ws://127.0.0.1:{server.port}/ws?app=a&id=b&type=main",
            headers={"Authorization": f"Token {kernel.token}"}))
        try:
            async with asyncio.timeout(WAIT_S):
                first = json.loads(await main.read_message())  # type: ignore[arg-type]
                assert first == {"cmd": "updateKernelPluginState", "reqId": 0, "app": "", "sid": "", "pushMode": 0,
                                 "callback": "", "code": 0, "msg": "", "data": {"name": "ticker", "state": 2}}
                kernel.push("transactions", [])
                assert json.loads(await main.read_message())["cmd"] == "transactions"  # type: ignore[arg-type]
        finally:
            main.close()
            await server.stop()


async def test_the_main_channel_needs_the_token_and_pushes_to_main_sessions_only(server: Server) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws?app=a&id=b&type=main"
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(url)
    assert refused.value.code == 401

    other = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
        url.replace("type=main", "type=export"), headers={"Authorization": f"Token {TOKEN}"}))
    main = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
        url, headers={"Authorization": f"Token {TOKEN}"}))
    try:
        first = json.loads(await main.read_message())  # type: ignore[arg-type]
        assert first == {"cmd": "updateKernelPluginState", "reqId": 0, "app": "", "sid": "", "pushMode": 0,
                         "callback": "", "code": 0, "msg": "", "data": {"name": "ticker", "state": 2}}
        assert server.manager is not None
        await server.manager.unload("ticker")
        assert [json.loads(await main.read_message())["data"]["state"] for _ in range(2)] == [3, 4]  # type: ignore[arg-type]
        other.close()
        assert await other.read_message() is None  # closed without a push ever arriving
    finally:
        main.close()


async def test_a_front_door_merges_pushes_with_the_publisher_api(server: Server) -> None:
    assert server.manager is not None
    frames: list[str] = []
    unsubscribe = subscribe_state_pushes(server.manager, frames.append)
    assert [json.loads(f)["data"] for f in frames] == [{"name": "ticker", "state": int(PluginState.RUNNING)}]
    await server.manager.unload("ticker")
    unsubscribe()
    await server.manager.load(str(server.plugins / "ticker"))
    assert [json.loads(f)["data"]["state"] for f in frames] == [2, 3, 4]
