"""``server.private`` ``body.stream`` responses (changes page §2.8): chunks flushed as the plugin produces them,
pulled only as fast as the client reads, the plugin's stream cancelled when the client leaves; and a request whose
client left before the handler settled is answered 500 with an empty body; ``file`` bodies confined to the
workspace as SiYuan confines them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from kplug_testing import Host, captured_logs, wait_for, write_plugin
from rpc_server import TOKEN, Server

from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager
from kplug_lab.host.runtime.manifest import petals_path

PLUGIN = r"""
const log = [];
let ctrl = null, entered = 0, pulls = 0;
siyuan.server.private.http.handler = async (req) => {
  const p = req.context.path;
  if (p === "/live") {
    return { headers: { "X-Kind": ["live"] }, body: { stream: { contentType: "text/plain; charset=utf-8",
      stream: new ReadableStream({
        start(c) { ctrl = c; c.enqueue("first "); },
        cancel(reason) { log.push("cancel: " + reason); },
      }) } } };
  }
  if (p === "/gen") {
    async function* chunks() {
      yield "a";
      yield new Uint8Array([98, 99]);
      yield new TextEncoder().encode("d").buffer;
      yield new DataView(new Uint8Array([101, 102]).buffer, 1);
    }
    return { statusCode: 201, body: { stream: { contentType: "application/x-thing", stream: chunks() } } };
  }
  if (p === "/endless") {
    const block = new Uint8Array(64 * 1024);
    return { body: { stream: { stream: new ReadableStream({
      pull(c) { pulls++; c.enqueue(block); },
      cancel(reason) { log.push("endless cancelled: " + reason); },
    }, { highWaterMark: 0 }) } } };
  }
  if (p === "/headers") {
    return { body: { data: { type: "JSON", data: { headers: Object.keys(req.request.headers),
                                                   cookies: req.request.cookies } } } };
  }
  if (p === "/broken") {
    async function* failing() { yield "part"; throw new Error("producer broke"); }
    return { body: { stream: { stream: failing() } } };
  }
  if (p === "/hang") { entered++; return new Promise(() => {}); }
  return { statusCode: 404 };
};
siyuan.rpc.bind("more", (text) => { ctrl.enqueue(text); return null; });
siyuan.rpc.bind("end", () => { ctrl.close(); return null; });
siyuan.rpc.bind("state", () => ({ log, entered, pulls }));
"""


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    host.plugin("web", PLUGIN)
    await host.start(restart_limit=0, call_timeout=2.0)
    await wait_for(lambda: host.state("web") == PluginState.RUNNING, what="web running")
    srv = Server(host)
    yield srv
    await srv.close()


async def state(host: Host) -> dict[str, Any]:
    assert host.manager is not None
    got: dict[str, Any] = await host.manager.call("web", "state", [])
    return got


async def until_state(host: Host, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The plugin's state once ``check`` holds (asked again every 20 ms, for at most 15 s)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        got = await state(host)
        if check(got):
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {got}")
        await asyncio.sleep(0.02)


async def call(host: Host, method: str, *params: Any) -> None:
    assert host.manager is not None
    await host.manager.call("web", method, list(params))


async def test_chunks_reach_the_client_as_the_plugin_produces_them(server: Server, host: Host) -> None:
    async with server.http.stream("GET", "/plugin/private/web/live") as r:
        assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert r.headers["X-Kind"] == "live"
        chunks = r.aiter_raw()
        assert await anext(chunks) == b"first "  # the stream has not ended: the plugin has not closed it
        await call(host, "more", "second")
        assert await anext(chunks) == b"second"
        await call(host, "end")
        assert [c async for c in chunks] == []
    assert (await state(host))["log"] == []


async def test_an_async_iterable_of_strings_and_buffer_sources_is_a_stream(server: Server) -> None:
    r = await server.http.get("/plugin/private/web/gen")
    assert r.status_code == 201 and r.headers["Content-Type"] == "application/x-thing"
    assert r.content == b"abcdf"
    assert "content-security-policy" in r.headers


async def test_a_client_that_leaves_cancels_the_plugins_stream(server: Server, host: Host) -> None:
    async with server.http.stream("GET", "/plugin/private/web/live") as r:
        assert await anext(r.aiter_raw()) == b"first "
    await until_state(host, lambda got: "cancel: client disconnected" in got["log"], "the stream cancelled")


async def test_an_endless_stream_is_pulled_as_the_client_reads_and_stops_when_it_leaves(
        server: Server, host: Host) -> None:
    read = 0
    async with server.http.stream("GET", "/plugin/private/web/endless") as r:
        async for chunk in r.aiter_raw():
            read += len(chunk)
            if read >= 1024 * 1024:
                break
    got = await until_state(host, lambda got: "endless cancelled: client disconnected" in got["log"],
                            "the stream cancelled")
    assert got["pulls"] * 64 * 1024 < 64 * 1024 * 1024  # bounded by what the sockets hold, not run away


async def test_a_stream_that_fails_midway_cuts_the_response_and_the_route_keeps_serving(server: Server) -> None:
    with captured_logs("kplug_lab.rpc") as records, pytest.raises(httpx.RemoteProtocolError):
        async with server.http.stream("GET", "/plugin/private/web/broken") as r:
            assert r.status_code == 200
            async for _ in r.aiter_raw():
                pass
    assert any("producer broke" in record.getMessage() for record in records)
    r = await server.http.get("/plugin/private/web/gen")
    assert r.content == b"abcdf"


async def test_credentials_headers_are_removed_and_cookies_kept(server: Server) -> None:
    r = await server.http.get("/plugin/private/web/headers", headers={"Cookie": "theme=dark"})
    got = r.json()
    assert not {"Authorization", "Cookie"} & set(got["headers"]) and got["cookies"] == {"theme": ["dark"]}


async def test_a_request_whose_client_left_before_the_handler_settled_is_answered_500_empty(
        server: Server, host: Host) -> None:
    with captured_logs("kplug_lab.rpc") as records:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(f"GET /plugin/private/web/hang HTTP/1.1\r\nHost: x\r\nAuthorization: Token {TOKEN}\r\n\r\n"
                     .encode())
        await writer.drain()
        await until_state(host, lambda got: got["entered"] > 0, "the handler entered")
        writer.close()
        await writer.wait_closed()
        await wait_for(lambda: any("client left before" in r.getMessage() for r in records), timeout=15,
                       what="the abandoned request answered")


FILE_PLUGIN = """
siyuan.server.private.http.handler = (req) => ({ body: { file: { path: (req.url.query.p || [""])[0] } } });
"""


async def test_file_in_a_workspace_is_confined_as_siyuan_does_with_one_404_for_outside_and_missing(
        tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_plugin(ws / "data" / "plugins", "web", FILE_PLUGIN)
    petals = petals_path(ws)
    petals.parent.mkdir(parents=True, exist_ok=True)
    petals.write_text('[{"name": "web", "enabled": true}]')
    (ws / "data" / "a.txt").write_text("inside")
    (tmp_path / "outside.txt").write_text("secret")
    (ws / "data" / "link.txt").symlink_to(tmp_path / "outside.txt")
    manager = PluginManager(HostConfig(data_dir=tmp_path / "kplug", hot_reload=False), workspace=ws)
    await manager.start()
    server = Server(Host(tmp_path), manager)
    try:
        await wait_for(lambda: manager.get_plugin("web") is not None
                       and manager.get_plugin("web").state == PluginState.RUNNING,  # type: ignore[union-attr]
                       what="web running")
        for inside in ("data/a.txt", "/data/a.txt", str(ws / "data" / "a.txt")):
            r = await server.http.get("/plugin/private/web/f", params={"p": inside})
            assert (r.status_code, r.text) == (200, "inside"), inside
        for outside in (str(tmp_path / "outside.txt"), "../outside.txt", "/etc/passwd", "data/link.txt",
                        "data/missing.txt", "data"):
            r = await server.http.get("/plugin/private/web/f", params={"p": outside})
            assert (r.status_code, r.text) == (404, "[plugin:web] file not found"), outside
    finally:
        await server.close()
        await manager.close()
