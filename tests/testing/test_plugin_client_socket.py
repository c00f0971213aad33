"""siyuan.client.socket from a real plugin VM: frames both ways, close semantics, dial failures."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kplug_testing import Host, free_port, loopback_app, wait_for
from tornado import websocket

from kplug_lab.host.runtime.api import PluginState


class _Echo(websocket.WebSocketHandler):
    headers_seen: list[dict[str, str]] = []

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return subprotocols[0] if subprotocols else None

    def open(self, *args: str, **kwargs: str) -> None:
        _Echo.headers_seen.append(dict(self.request.headers))

    def on_message(self, message: str | bytes) -> None:
        if message == "bye":
            self.close(4000, "as you wish")
        else:
            self.write_message(message, binary=isinstance(message, bytes))


@pytest.fixture
async def echo_kernel() -> AsyncIterator[str]:
    async with loopback_app([(r"/echo", _Echo)]) as url:
        yield url


PLUGIN = """
let events = [];
const record = (e) => events.push(e.type === "binary" ? { type: e.type, bytes: Array.from(new Uint8Array(e.data)) }
                                  : e.type === "error" ? { type: e.type, error: e.error.message } : e);
siyuan.rpc.bind("run", async (path) => {
  events = [];
  const ws = await siyuan.client.socket(path, ["kplug.v1"]);
  const before = { readyState: ws.readyState, url: ws.url, binaryType: ws.binaryType };
  let sendEarly;
  try { await ws.send("x"); } catch (e) { sendEarly = e.message; }
  ws.onopen = record; ws.onmessage = record; ws.onclose = record; ws.onerror = record;
  await ws.open();
  const after = { readyState: ws.readyState, protocol: ws.protocol };
  await ws.send("hello");
  await ws.send(new Uint8Array([1, 2, 255]).buffer);
  await ws.send("bye");
  return { before, after, sendEarly };
});
siyuan.rpc.bind("events", () => events);
siyuan.rpc.bind("closeOurselves", async (path) => {
  events = [];
  const ws = await siyuan.client.socket(path);
  ws.onclose = record; ws.onerror = record;
  await ws.open();
  await ws.close(1000, "done");
  let late;
  try { await ws.send("late"); } catch (e) { late = e.message; }
  return late;
});
siyuan.rpc.bind("dial", async (path) => {
  events = [];
  const ws = await siyuan.client.socket(path);
  ws.onerror = record; ws.onclose = record;
  try { await ws.open(); return "opened"; }
  catch (e) { return { name: e.name, message: e.message, readyState: ws.readyState }; }
});
"""


async def started(host: Host, url: str) -> Any:
    host.plugin("sock", textwrap.dedent(PLUGIN))
    manager = await host.start(siyuan_url=url, siyuan_token="tok")
    await wait_for(lambda: host.state("sock") == PluginState.RUNNING, what="sock running")
    return manager


async def test_frames_both_ways_and_a_peer_close(host: Host, echo_kernel: str) -> None:
    manager = await started(host, echo_kernel)
    got = await manager.call("sock", "run", ["/echo?x=1"])
    assert got["before"] == {"readyState": 0, "url": echo_kernel.replace("http", "ws") + "/echo?x=1",
                             "binaryType": "arraybuffer"}
    assert got["sendEarly"] == "WebSocket not yet connected"
    assert got["after"] == {"readyState": 1, "protocol": "kplug.v1"}
    events: list[Any] = []

    async def all_events() -> bool:
        events[:] = await manager.call("sock", "events")
        return bool(events) and events[-1]["type"] == "close"

    for _ in range(250):
        if await all_events():
            break
        await asyncio.sleep(0.02)
    assert events == [{"type": "open"}, {"type": "text", "data": "hello"}, {"type": "binary", "bytes": [1, 2, 255]},
                      {"type": "close", "code": 4000, "reason": "as you wish", "wasClean": True}]
    seen = _Echo.headers_seen[-1]
    assert seen["X-Auth-Token"] == "tok" and seen["Authorization"] == "Token tok"


async def test_local_close_gives_one_clean_close_event(host: Host, echo_kernel: str) -> None:
    manager = await started(host, echo_kernel)
    assert await manager.call("sock", "closeOurselves", ["/echo"]) == "WebSocket is not open (state: 3)"
    events: list[Any] = []
    for _ in range(250):
        events = await manager.call("sock", "events")
        if events:
            break
        await asyncio.sleep(0.02)
    # the reason is the peer's (tornado answers a close frame with the code only)
    assert events == [{"type": "close", "code": 1000, "reason": "", "wasClean": True}]


async def test_dial_failure_rejects_and_fires_onerror(host: Host, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    manager = await started(host, dead)
    got = await manager.call("sock", "dial", ["/ws"])
    assert got["name"] == "GoError" and got["message"].startswith(f"dial {dead.replace('http', 'ws')}/ws")
    assert got["readyState"] == 3
    events = await manager.call("sock", "events")
    assert [e["type"] for e in events] == ["error"]
    assert json.dumps(events[0]["error"]).startswith('"dial ')
