"""Pushes from a plugin to clients are bounded per connection, in bytes (issue 11 item 2): a plugin flooding
broadcasts and SSE events to clients that read nothing grows the process by less than 256 MiB, those clients are
cut off, and a well-behaved plugin beside it keeps answering. See tests/host/test_memory_bounds.py for logs."""

from __future__ import annotations

import asyncio
import os

import pytest
from kplug_testing import Host, captured_logs
from rpc_server import TOKEN, RawWebSocket, Server

from kplug_lab.host.runtime.manager import PluginManager

MiB = 1024 * 1024
BOUND = 256 * MiB

CALM = 'siyuan.rpc.bind("ping", () => "pong");'

FLOODER = """
const big = "y".repeat(1048576);
const ports = [];
let closed = 0;
siyuan.server.private.es.handler = (req) => {
  const port = req.port;
  ports.push(port);
  port.onclose = () => { closed++; };
  return port.send({ data: "hello" });
};
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));
siyuan.rpc.bind("streams", () => ports.length);
siyuan.rpc.bind("closed", () => closed);
siyuan.rpc.bind("flood", async (times) => {
  let refused = 0;
  const reasons = new Set();
  for (let i = 0; i < times; i++) {
    siyuan.rpc.broadcast("big", big).catch((e) => { refused++; reasons.add(e.message.slice(0, 40)); });
    for (const p of ports) {
      try { p.send({ data: big }); } catch (e) { refused++; reasons.add(e.message.slice(0, 40)); }
    }
    if (i % 4 === 3) await tick();
  }
  await tick();
  return { sent: times * 2, refused, reasons: [...reasons] };
});
"""


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def pings(m: PluginManager, until: asyncio.Future[object]) -> int:
    """Call the calm plugin until ``until`` is done; how many answers came (each must be "pong")."""
    answered = 0
    while not until.done() or answered == 0:
        assert await m.call("calm", "ping") == "pong"
        answered += 1
    return answered


async def until_answers(m: PluginManager, method: str, expected: object, what: str) -> None:
    """Call ``method`` of the flooder until it answers ``expected`` (the event under test happened)."""
    deadline = asyncio.get_running_loop().time() + 120
    while await m.call("flooder", method) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="measures RSS through /proc")
async def test_broadcasts_and_sse_flooding_a_client_that_reads_nothing_stay_bounded_and_cut_it_off(
        host: Host) -> None:
    host.plugin("calm", CALM)
    host.plugin("flooder", FLOODER)
    m = await host.start(call_timeout=600)
    server = Server(host)
    auth = {"Authorization": f"Token {TOKEN}"}
    ws = await RawWebSocket.connect(server.port, "/ws/plugin/rpc/flooder", auth)  # never reads until the end
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # an SSE client that never reads
    writer.write(("GET /plugin/private/flooder/s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                  f"Authorization: Token {TOKEN}\r\n\r\n").encode())
    await writer.drain()
    try:
        await until_answers(m, "streams", 1, "the event stream to open")
        with captured_logs("kplug_lab.rpc") as records:
            before = rss()
            flood = asyncio.ensure_future(m.call("flooder", "flood", [400]))  # 400 MiB each way
            answered = await pings(m, flood)
            result = await flood
            grown = rss() - before
            assert grown < BOUND, f"the host grew by {grown / MiB:.0f} MiB; flood: {result}"
            assert answered >= 1
            # the SSE client was cut off: the plugin saw its stream close
            await until_answers(m, "closed", 1, "the event stream to be cut off")
            assert any("closing an event stream" in r.getMessage() for r in records)
            assert any("closing a WebSocket" in r.getMessage() for r in records)
        # the WebSocket client finds a close frame (1008) after what was queued, or the connection ended
        code = None
        try:
            while True:
                frame = await asyncio.wait_for(ws.read_frame(), 60)
                if frame.opcode == 8:
                    code = frame.close_code
                    break
        except asyncio.IncompleteReadError:
            code = -1
        assert code in (1008, -1)
        assert await m.call("calm", "ping") == "pong"
    finally:
        ws.close()
        writer.close()
        await server.close()


PROXY = """
siyuan.server.private.http.handler = (req) => ({ body: { proxy: { url: req.url.query.url[0] } } });
"""


async def test_a_proxied_body_past_max_fetch_body_is_refused_with_a_clear_error(host: Host) -> None:
    import tornado.web
    from kplug_testing import loopback_app

    class Big(tornado.web.RequestHandler):
        def get(self) -> None:
            self.finish(b"p" * (2 * MiB))

    host.plugin("px", PROXY)
    await host.start()
    server = Server(host, kplug_proxy_allow_private=True, kplug_max_fetch_body=MiB)
    try:
        async with loopback_app([(r"/big", Big)]) as upstream:
            r = await server.http.get("/plugin/private/px/p", params={"url": upstream + "/big"})
        assert r.status_code == 502
        assert "the proxied response is 2.0 MiB, more than the 1.0 MiB a proxy body may relay" in r.text, r.text
    finally:
        await server.close()
