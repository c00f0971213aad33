"""The example plugins end to end, without faults: concurrent HTTP and WebSocket clients of a real server."""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from harness import copy_plugins

from kplug_lab.errors import PluginCallError
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager
from kplug_lab.rpc.app import make_standalone_app
from kplug_lab.testing.endpoint import RecordingEndpoint
from kplug_lab.testing.fake_siyuan import FakeSiYuan


class Server:
    def __init__(self, manager: PluginManager, token: str, port: int) -> None:
        self.manager, self.token, self.port = manager, token, port
        self.headers = {"Authorization": f"Token {token}"}

    async def call(self, http: httpx.AsyncClient, plugin: str, method: str, *params: Any) -> Any:
        r = await http.post(f"http://127.0.0.1:{self.port}/api/plugin/rpc/{plugin}", headers=self.headers,
                            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        answer = r.json()
        assert "result" in answer, answer
        return answer["result"]

    def ws(self, plugin: str) -> Any:
        return websockets.connect(f"ws://127.0.0.1:{self.port}/ws/plugin/rpc/{plugin}",
                                  additional_headers=self.headers)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Server, RecordingEndpoint]]:
    plugins = copy_plugins(tmp_path / "plugins", ["wakatime-like", "shared-notes"])
    async with FakeSiYuan(tmp_path / "ws") as kernel, RecordingEndpoint() as endpoint:
        manager = PluginManager(HostConfig(data_dir=tmp_path / "data", hot_reload=False, siyuan_url=kernel.url,
                                           siyuan_token=kernel.token), plugins_dir=plugins)
        await manager.start()
        token = secrets.token_urlsafe(12)
        http_server = make_standalone_app(manager, token).listen(0, address="127.0.0.1")
        port = next(iter(http_server._sockets.values())).getsockname()[1]
        try:
            yield Server(manager, token, port), endpoint
        finally:
            http_server.stop()
            await manager.close()


async def test_every_shared_notes_client_receives_every_change(server: tuple[Server, RecordingEndpoint]) -> None:
    srv, _ = server
    listeners = [await srv.ws("shared-notes").__aenter__() for _ in range(4)]
    try:
        async with httpx.AsyncClient(trust_env=False) as http:

            async def edit(who: int) -> None:
                for i in range(15):
                    while True:
                        cur = await srv.call(http, "shared-notes", "get", "doc")
                        r = await srv.call(http, "shared-notes", "update", "doc", cur["version"],
                                           (cur["value"] or "") + f"<{who}.{i}>", f"{who}-{i}")
                        if r["ok"]:
                            break

            await asyncio.gather(*(edit(w) for w in range(6)))
            final = await srv.call(http, "shared-notes", "get", "doc")
        assert final["value"].count("<") == 90
        for ws in listeners:
            versions = []
            while len(versions) < 90:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert msg["method"] == "noteChanged"
                versions.append(msg["params"]["version"])
                last = msg["params"]
            assert versions == sorted(versions) and len(set(versions)) == 90
            assert last["value"] == final["value"] and last["version"] == final["version"]
    finally:
        for ws in listeners:
            await ws.close()


async def test_wakatime_clients_over_http_and_websocket_are_reported_once(
        server: tuple[Server, RecordingEndpoint]) -> None:
    srv, endpoint = server
    async with httpx.AsyncClient(trust_env=False) as http:
        await srv.call(http, "wakatime-like", "configure", {"endpoint": endpoint.url + "/hb"})
        endpoint.fail_next(2, status=503)

        async def over_http(who: int) -> None:
            for i in range(40):
                r = await srv.call(http, "wakatime-like", "heartbeat", {"id": f"h{who}-{i}", "entity": "a", "time": 1})
                assert r == {"stored": True, "duplicate": False}

        async def over_ws(who: int) -> None:
            async with srv.ws("wakatime-like") as ws:
                for i in range(40):
                    for attempt in range(2):  # the resend of an answered heartbeat is recognised
                        await ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "heartbeat",
                                                  "params": [{"id": f"w{who}-{i}", "entity": "b", "time": 2}]}))
                        answer = json.loads(await ws.recv())
                        assert answer["result"] == {"stored": True, "duplicate": attempt == 1}

        await asyncio.gather(*(over_http(w) for w in range(3)), *(over_ws(w) for w in range(2)))
        for _ in range(500):
            if await srv.call(http, "wakatime-like", "pending") == 0:
                break
            await asyncio.sleep(0.02)
    counts = collections.Counter(hb["id"] for body in endpoint.json_bodies() for hb in body["heartbeats"])
    assert len(counts) == 200 and set(counts.values()) == {1}
    assert [r.status for r in endpoint.received[:2]] == [503, 503]
    with pytest.raises(PluginCallError, match=r"heartbeat\.id must be a non-empty string"):
        await srv.manager.call("wakatime-like", "heartbeat", [{"id": 5}])
