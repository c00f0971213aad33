"""siyuan.client.event and siyuan.client.socket from a real plugin VM against small loopback kernels (spec §3.7,
with the [better] semantics: prompt open, one close, errors promptly with bounded retry, cancel on close)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kplug_testing import Host, free_port, loopback_app, wait_for
from tornado import web, websocket

from kplug_lab.host.ops import client_events
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.manager import PluginManager


class Seen:
    """What the loopback kernel observed."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0
        self.attempts = 0


SEEN = Seen()


class _Stream(web.RequestHandler):
    """Three events (a named one, a multi-line one, one with an id), then a clean end of the stream."""

    async def get(self) -> None:
        SEEN.headers.append(dict(self.request.headers))
        self.set_header("Content-Type", "text/event-stream")
        self.write(": a comment\n\ndata: hello\n\n")
        await self.flush()
        self.write("event: greet\ndata: line 1\ndata: line 2\n\nid: 7\ndata: {\"n\":1}\n\n")
        await self.flush()


class _Forever(web.RequestHandler):
    """Sends one event, then keeps the stream open until the client goes away."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.write("data: first\n\n")
        await self.flush()
        self._gone = asyncio.Event()
        await self._gone.wait()

    def on_connection_close(self) -> None:
        SEEN.disconnects += 1
        self._gone.set()


class _Drops(web.RequestHandler):
    """First connection: one event with an id, then the connection drops; the retry resumes from that id."""

    async def get(self) -> None:
        SEEN.attempts += 1
        SEEN.headers.append(dict(self.request.headers))
        self.set_header("Content-Type", "text/event-stream")
        if SEEN.attempts == 1:
            self.write("retry: 10\nid: a1\ndata: before\n\n")
            await self.flush()
            assert self.request.connection is not None
            self.request.connection.detach().close()  # type: ignore[attr-defined]
            return
        self.write("data: after\n\n")


class _Missing(web.RequestHandler):
    def get(self) -> None:
        SEEN.attempts += 1
        self.set_status(404)
        self.finish("no such stream")


class _Drop(websocket.WebSocketHandler):
    """Accepts, then drops the TCP connection without a close frame on the first message."""

    def on_message(self, message: str | bytes) -> None:
        assert self.ws_connection is not None
        self.ws_connection.stream.close()  # type: ignore[attr-defined]


class _Hold(websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        pass

    def on_close(self) -> None:
        SEEN.disconnects += 1


@pytest.fixture
async def kernel() -> AsyncIterator[str]:
    global SEEN
    SEEN = Seen()
    async with loopback_app([
        (r"/stream", _Stream), (r"/forever", _Forever), (r"/drops", _Drops), (r"/missing", _Missing),
        (r"/ws/drop", _Drop), (r"/ws/hold", _Hold),
    ]) as url:
        yield url


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_events, "RETRY_INITIAL", 0.01)


PLUGIN = """
let events = [];
let current = null;
const record = (e) => events.push(
  e.type === "error" ? { type: e.type, error: e.error.message, name: e.error.name } : e);
siyuan.rpc.bind("subscribe", async (path) => {
  events = [];
  const es = await siyuan.client.event(path);
  current = es;
  es.onopen = (e) => record({ ...e, readyState: es.readyState });
  es.onmessage = record; es.onerror = record;
  es.onclose = (e) => record({ ...e, readyState: es.readyState });
  return { readyState: es.readyState, url: es.url, sealed: Object.isSealed(es) };
});
siyuan.rpc.bind("closeIt", () => { current.close(); current.close(); return current.readyState; });
siyuan.rpc.bind("events", () => events);
siyuan.rpc.bind("badPaths", async () => {
  const out = [];
  for (const p of [undefined, "x", "/\\\\evil.example/x"]) {
    try { await siyuan.client.event(p); out.push("resolved"); } catch (e) { out.push(`${e.name}: ${e.message}`); }
  }
  return out;
});
siyuan.rpc.bind("socket", async (path) => {
  events = [];
  const ws = await siyuan.client.socket(path);
  ws.onclose = record; ws.onerror = record;
  await ws.open();
  const opened = ws.readyState;  // after send() it may already be CLOSED: /ws/drop drops on the first message
  await ws.send("hi");
  return opened;
});
"""


async def started(host: Host, url: str) -> PluginManager:
    host.plugin("sub", textwrap.dedent(PLUGIN))
    manager = await host.start(siyuan_url=url, siyuan_token="tok")
    await wait_for(lambda: host.state("sub") == PluginState.RUNNING, what="sub running")
    return manager


async def events_until(manager: PluginManager, last: str, count: int = 1) -> list[Any]:
    """The plugin's recorded events once ``count`` events of type ``last`` arrived."""
    for _ in range(500):
        got: list[Any] = await manager.call("sub", "events")
        if sum(1 for e in got if e["type"] == last) >= count:
            return got
        await asyncio.sleep(0.02)  # polling interval of a wait for a condition
    raise AssertionError(f"no {last!r} event; got {got}")


async def test_event_stream_opens_delivers_every_event_and_closes_on_clean_end(host: Host, kernel: str) -> None:
    manager = await started(host, kernel)
    assert await manager.call("sub", "subscribe", ["/stream"]) == {"readyState": 0, "url": "/stream", "sealed": True}
    events = await events_until(manager, "close")
    assert events == [
        {"type": "open", "readyState": 1},
        {"type": "message", "data": "hello", "lastEventId": ""},
        {"type": "greet", "data": "line 1\nline 2", "lastEventId": ""},
        {"type": "message", "data": '{"n":1}', "lastEventId": "7"},
        {"type": "close", "readyState": 2},
    ]
    seen = SEEN.headers[-1]
    assert seen["Accept"] == "text/event-stream" and seen["Cache-Control"] == "no-cache"
    assert seen["X-Auth-Token"] == "tok" and seen["Authorization"] == "Token tok"
    assert "Last-Event-Id" not in seen


async def test_close_stops_the_subscription_at_once_with_one_close_event(host: Host, kernel: str) -> None:
    manager = await started(host, kernel)
    await manager.call("sub", "subscribe", ["/forever"])
    await events_until(manager, "message")
    assert await manager.call("sub", "closeIt") == 2
    await wait_for(lambda: SEEN.disconnects == 1, what="the kernel sees the subscription end")
    events = await events_until(manager, "close")
    await asyncio.sleep(0.1)  # a deliberate duration, not synchronisation: a late second close would come within it
    assert await manager.call("sub", "events") == events
    assert [e["type"] for e in events] == ["open", "message", "close"]


async def test_a_dropped_stream_reconnects_with_last_event_id(host: Host, kernel: str, fast_retries: None) -> None:
    manager = await started(host, kernel)
    await manager.call("sub", "subscribe", ["/drops"])
    events = await events_until(manager, "close")
    assert [(e["type"], e.get("data")) for e in events] == [
        ("open", None), ("message", "before"), ("open", None), ("message", "after"), ("close", None)]
    assert SEEN.attempts == 2
    assert SEEN.headers[-1]["Last-Event-Id"] == "a1"


async def test_non_200_fails_promptly_without_retry(host: Host, kernel: str) -> None:
    manager = await started(host, kernel)
    await manager.call("sub", "subscribe", ["/missing"])
    events = await events_until(manager, "close")
    assert events == [
        {"type": "error", "name": "GoError", "error": f"GET {kernel}/missing: unexpected status 404 Not Found"},
        {"type": "close", "readyState": 2},
    ]
    assert SEEN.attempts == 1


async def test_an_unreachable_kernel_gives_up_after_bounded_retries(host: Host, fast_retries: None) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    manager = await started(host, dead)
    await manager.call("sub", "subscribe", ["/stream"])
    events = await events_until(manager, "close")
    assert [e["type"] for e in events] == ["error", "close"]
    assert events[0]["error"].startswith(f"GET {dead}/stream: ")


async def test_event_rejects_bad_paths_with_siyuan_texts(host: Host, kernel: str) -> None:
    manager = await started(host, kernel)
    got = await manager.call("sub", "badPaths")
    assert got[:2] == ["GoError: path required", "GoError: path must start with /"]
    assert got[2].startswith("GoError: siyuan.client only reaches the SiYuan kernel")


async def test_stopping_the_plugin_ends_its_subscriptions_and_sockets(host: Host, kernel: str) -> None:
    manager = await started(host, kernel)
    await manager.call("sub", "subscribe", ["/forever"])
    await events_until(manager, "message")
    assert await manager.call("sub", "socket", ["/ws/hold"]) == 1
    await manager.unload("sub")
    await wait_for(lambda: SEEN.disconnects == 2, what="the kernel sees both connections end")


async def test_socket_dropped_without_close_frame_gives_error_then_one_close_1006(host: Host, kernel: str) -> None:
    manager = await started(host, kernel)
    assert await manager.call("sub", "socket", ["/ws/drop"]) == 1
    await events_until(manager, "close")
    await asyncio.sleep(0.05)  # a deliberate duration, not synchronisation: a second close would come within it
    events = await manager.call("sub", "events")
    assert [e["type"] for e in events] == ["error", "close"]
    assert events[1] == {"type": "close", "code": 1006, "reason": "", "wasClean": False}

