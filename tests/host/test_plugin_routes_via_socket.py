"""A plugin's ``siyuan.client.socket`` to SiYuan's RPC WebSocket route (``/ws/plugin/rpc/<name>``, spec §5.4) is
answered by kplug_lab's own host, in-process, as SiYuan's kernel answers it for its own plugins (changes §5): calls
answered, broadcasts received, closed when the target plugin stops. It never dials the kernel at ``siyuan_url``."""

from __future__ import annotations

import asyncio
from typing import Any

from kplug_testing import Host

from kplug_lab.host.runtime.api import PluginState

# what SiYuan's plugin-sample does: open its own RPC socket in onrunning
SAMPLE = """
const seen = [];
siyuan.rpc.bind("echo", (x) => x);
siyuan.rpc.bind("seen", () => seen);
siyuan.rpc.bind("shout", async (text) => { await siyuan.rpc.broadcast("shouted", { text }); return true; });
siyuan.rpc.bind("ask", async (frame) => { await ws.send(frame); return true; });
let ws = null;
siyuan.plugin.lifecycle.onrunning = async () => {
  ws = await siyuan.client.socket("/ws/plugin/rpc/" + siyuan.plugin.name);
  ws.onmessage = (ev) => seen.push(JSON.parse(ev.data));
  ws.onclose = (ev) => seen.push({ closed: ev.code });
  await ws.open();
};
"""


async def test_a_plugin_opening_its_own_rpc_socket_in_onrunning_runs_and_gets_its_broadcasts(host: Host) -> None:
    host.plugin("sample", SAMPLE)
    m = await host.start(siyuan_url="http://127.0.0.1:9")  # no kernel there: the socket must not dial it
    info = m.get_plugin("sample")
    assert info is not None and info.state == PluginState.RUNNING and info.hook_errors == []
    assert await m.call("sample", "shout", ["hi"]) is True
    await m.call("sample", "ask", ['{"jsonrpc":"2.0","id":1,"method":"echo","params":[42]}'])

    async def seen() -> list[Any]:
        return list(await m.call("sample", "seen"))

    await wait_for_async(seen, lambda s: len(s) >= 2)
    got = await seen()
    assert {"jsonrpc": "2.0", "method": "shouted", "params": {"text": "hi"}} in got
    assert {"jsonrpc": "2.0", "id": 1, "result": 42} in got


async def test_the_socket_to_another_plugin_closes_when_that_plugin_stops(host: Host) -> None:
    host.plugin("target", "siyuan.rpc.bind('x', () => 1);")
    host.plugin("watcher", """
      const seen = [];
      siyuan.rpc.bind("seen", () => seen);
      siyuan.plugin.lifecycle.onrunning = async () => {
        const ws = await siyuan.client.socket("/ws/plugin/rpc?name=target");
        ws.onclose = (ev) => seen.push(ev.code + " " + ev.reason);
        await ws.open();
        seen.push("open");
      };
    """)
    m = await host.start(siyuan_url="http://127.0.0.1:9")
    # the watcher may start before the target: then its dial fails (404) and it says so in its state
    info = m.get_plugin("watcher")
    assert info is not None and info.state == PluginState.RUNNING
    if await m.call("watcher", "seen") != ["open"]:
        assert any("HTTP 404" in e for e in info.hook_errors)
        return
    await m.unload("target")
    await wait_for_async(lambda: m.call("watcher", "seen"), lambda s: len(s) == 2)
    assert await m.call("watcher", "seen") == ["open", "1001 plugin [target] is stopping"]


async def test_a_socket_to_a_plugin_that_is_not_loaded_fails_like_the_wire_404(host: Host) -> None:
    host.plugin("lonely", """
      siyuan.rpc.bind("dial", async () => {
        try { await (await siyuan.client.socket("/ws/plugin/rpc/nobody")).open(); return "open"; }
        catch (e) { return String(e.message); }
      });
    """)
    m = await host.start(siyuan_url="http://127.0.0.1:9")
    assert "HTTP 404" in await m.call("lonely", "dial")


async def wait_for_async(get: Any, check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await get()
        if check(value):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.02)



async def test_a_socket_to_a_private_websocket_route_reaches_that_plugins_ws_handler(host: Host) -> None:
    host.plugin("chat", """
      const heard = [];
      siyuan.rpc.bind("heard", () => heard);
      siyuan.server.private.ws.handler = (req) => {
        req.port.onmessage = (m) => { heard.push(m.data); req.port.send("echo " + m.data); };
        req.port.onclose = (ev) => heard.push("closed " + ev.code);
      };
    """)
    host.plugin("client", """
      const seen = [];
      let ws = null;
      siyuan.rpc.bind("seen", () => seen);
      siyuan.rpc.bind("talk", async (text) => {
        ws = await siyuan.client.socket("/plugin/private/chat/room");
        ws.onmessage = (ev) => seen.push(ev.data);
        ws.onclose = (ev) => seen.push("closed " + ev.code);
        await ws.open();
        await ws.send(text);
        return true;
      });
      siyuan.rpc.bind("bye", () => ws.close(1000, "done"));
    """)
    m = await host.start(siyuan_url="http://127.0.0.1:9")
    assert await m.call("client", "talk", ["hi"]) is True
    await wait_for_async(lambda: m.call("client", "seen"), lambda s: s == ["echo hi"])
    await m.call("client", "bye")
    await wait_for_async(lambda: m.call("chat", "heard"), lambda s: s == ["hi", "closed 1000"])
    await wait_for_async(lambda: m.call("client", "seen"), lambda s: s == ["echo hi", "closed 1000"])
