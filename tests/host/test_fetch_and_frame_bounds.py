"""What passes between the kernel and a plugin is bounded in bytes (issue 11 item 2): a ``siyuan.client.fetch``
request body past ``max_fetch_body`` fails with a clear error while a response body of any size is streamed;
frames from the kernel's WebSocket that the plugin does not take in time close the connection with an error event
instead of piling up in the host."""

from __future__ import annotations

import asyncio
from typing import Any

from kplug_testing import Host, loopback_app
from tornado import web, websocket

MiB = 1024 * 1024

FETCHER = """
siyuan.rpc.bind("get", async (path) => {
  try { const r = await siyuan.client.fetch(path); return (await r.text()).length; }
  catch (e) { return e.message; }
});
siyuan.rpc.bind("post", async (path, size) => {
  try { const r = await siyuan.client.fetch(path, { method: "POST", body: "q".repeat(size) }); return r.status; }
  catch (e) { return e.message; }
});
"""

READER = """
const events = [];
siyuan.rpc.bind("run", async (path) => {
  const ws = await siyuan.client.socket(path);
  ws.onmessage = () => { events.push("message"); };
  ws.onerror = (e) => { events.push("error: " + e.error.message); };
  ws.onclose = (e) => { events.push("close " + e.code); };
  await ws.open();
  const end = Date.now() + 2000;  // busy while the kernel floods: the frames wait for the plugin
  while (Date.now() < end) {}
  return "ran";
});
siyuan.rpc.bind("events", () => events.filter((e) => e !== "message").concat([events.length]));
"""


class _Body(web.RequestHandler):
    def get(self, size: str) -> None:
        self.finish(b"b" * int(size))

    def post(self, size: str) -> None:
        self.finish(b"")


class _Flood(websocket.WebSocketHandler):
    async def open(self, *args: Any, **kwargs: Any) -> None:
        frame = "z" * (256 * 1024)
        for _ in range(64):  # 16 MiB
            try:
                await self.write_message(frame)
            except websocket.WebSocketClosedError:
                return


async def test_a_fetch_request_body_past_max_fetch_body_fails_and_a_large_response_is_streamed(host: Host) -> None:
    host.plugin("fetcher", FETCHER)
    async with loopback_app([(r"/body/(\d+)", _Body)]) as url:
        m = await host.start(siyuan_url=url, max_fetch_body=MiB)
        assert await m.call("fetcher", "post", ["/body/0", MiB]) == 200  # the limit itself is allowed
        error = await m.call("fetcher", "post", ["/body/0", 2 * MiB])
        assert error == f"fetch /body/0: the request body is {2 * MiB} bytes, the limit is {MiB} " \
                        "(HostConfig.max_fetch_body)"
        # a response larger than the limit is streamed to the plugin chunk by chunk, not held by the host
        assert await m.call("fetcher", "get", [f"/body/{4 * MiB}"]) == 4 * MiB


async def test_kernel_frames_the_plugin_does_not_take_close_the_socket_with_an_error(host: Host) -> None:
    host.plugin("reader", READER)
    async with loopback_app([(r"/ws", _Flood)]) as url:
        m = await host.start(siyuan_url=url, max_pending_bytes=MiB, cpu_limit=30)
        assert await m.call("reader", "run", ["/ws"]) == "ran"
        deadline = asyncio.get_running_loop().time() + 60
        while not any(str(e).startswith("close") for e in await m.call("reader", "events")):
            assert asyncio.get_running_loop().time() < deadline, await m.call("reader", "events")
            await asyncio.sleep(0.05)
        *events, messages = await m.call("reader", "events")
        assert events[0].startswith("error: the plugin did not take") and "at most 1.0 MiB may wait" in events[0]
        # one close: 1008 if the kernel answered the close frame, 1006 if it was too busy writing to
        assert len(events) == 2 and events[1] in ("close 1008", "close 1006"), events
        assert messages - 2 < 64  # the flood was cut short
