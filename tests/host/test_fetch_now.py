"""``siyuan.client.fetch`` as SiYuan v3.8 has it (changes page §2.7): ``timeout`` until headers, ``signal``,
binary / Blob / FormData / URLSearchParams bodies, a Response that resolves at headers with a streaming ``body``
pulled from the host as the plugin reads, ``bytes()`` / ``blob()``, a body readable once.

The kernel is a tornado app on 127.0.0.1 whose handlers record what the connection saw (request arrived,
connection closed by the client, how much of a large body the server managed to write)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kplug_testing import Host, loopback_app, wait_for
from tornado import httputil, web
from tornado.iostream import StreamClosedError

from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.manager import PluginManager

BIG = 64 * 1024 * 1024  # far more than the loopback socket buffers hold
STEP = 64 * 1024


class Seen:
    """What the fake kernel saw."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = asyncio.Event()
        self.broken = asyncio.Event()
        self.finished = asyncio.Event()
        self.requests = 0
        self.written = 0


class Slow(web.RequestHandler):
    """Headers only once the test releases them."""

    def initialize(self, seen: Seen) -> None:
        self.seen = seen

    async def get(self) -> None:
        self.seen.requests += 1
        self.seen.arrived.set()
        await self.seen.release.wait()
        self.write("late")

    def on_connection_close(self) -> None:
        self.seen.closed.set()


class Big(web.RequestHandler):
    """A chunked body of ``?size=`` bytes (default BIG), written as fast as the client takes it."""

    def initialize(self, seen: Seen) -> None:
        self.seen = seen

    async def get(self) -> None:
        size = int(self.get_argument("size", str(BIG)))
        self.set_header("Content-Type", "Application/Octet-Stream")
        self.seen.arrived.set()
        written = 0
        try:
            while written < size:
                part = bytes([written // STEP % 251]) * min(STEP, size - written)
                self.write(part)
                await self.flush()
                written += len(part)
                self.seen.written += len(part)
        except StreamClosedError:
            self.seen.broken.set()
            return
        self.seen.finished.set()

    def on_connection_close(self) -> None:
        self.seen.closed.set()


class Echo(web.RequestHandler):
    """What arrived: the Content-Type, the body, and the multipart fields and files parsed."""

    def post(self) -> None:
        args: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        ctype = self.request.headers.get("Content-Type", "")
        httputil.parse_body_arguments(ctype, self.request.body, args, files, self.request.headers)
        self.set_header("Content-Type", "Application/JSON; Charset=UTF-8")
        self.write(json.dumps({
            "contentType": ctype,
            "body": base64.b64encode(self.request.body).decode(),
            "args": {k: [v.decode() for v in vs] for k, vs in args.items()},
            "files": {k: [{"filename": f.filename, "type": f.content_type, "body": f.body.decode("latin-1")}
                          for f in fs] for k, fs in files.items()},
        }))


PLUGIN = """
const held = {};
const outcome = (p) => p.then((v) => ({ ok: v }), (e) => ({ error: e && e.message, name: e && e.name,
                                                            same: e === held.reason }));
siyuan.rpc.bind("get", async (path, init) => {
  const r = await siyuan.client.fetch(path, init);
  return { status: r.status, text: await r.text(), headers: r.headers };
});
siyuan.rpc.bind("tryGet", (path, init) => outcome(siyuan.client.fetch(path, init).then((r) => r.status)));
siyuan.rpc.bind("post", async (body) => {
  const r = await siyuan.client.fetch("/echo", { method: "POST", body: eval(body) });
  return r.json();
});
siyuan.rpc.bind("startAbortable", (path) => {
  held.ctl = new AbortController();
  held.pending = outcome(siyuan.client.fetch(path, { signal: held.ctl.signal }));
  return null;
});
siyuan.rpc.bind("abort", () => {
  held.reason = new Error("changed my mind");
  held.ctl.abort(held.reason);
  return null;
});
siyuan.rpc.bind("pending", () => held.pending);
siyuan.rpc.bind("preAborted", async () => {
  held.reason = new Error("never mind");
  return outcome(siyuan.client.fetch("/slow", { signal: AbortSignal.abort(held.reason) }));
});
siyuan.rpc.bind("openBig", async (size) => {
  held.ctl = new AbortController();
  held.res = await siyuan.client.fetch("/big" + (size ? "?size=" + size : ""), { signal: held.ctl.signal });
  held.reader = held.res.body.getReader();
  const first = await held.reader.read();
  return { status: held.res.status, first: first.value.length, used: held.res.bodyUsed };
});
siyuan.rpc.bind("readRest", async () => {
  let total = 0, chunks = 0, biggest = 0, ok = true, at = 0;
  for (;;) {
    const { value, done } = await held.reader.read();
    if (done) break;
    chunks++; total += value.length; biggest = Math.max(biggest, value.length);
    if (!(value instanceof Uint8Array)) ok = false;
  }
  return { total, chunks, biggest, ok };
});
siyuan.rpc.bind("cancelBig", async () => { await held.reader.cancel("enough"); return null; });
siyuan.rpc.bind("readAfterAbort", () => outcome(held.reader.read()));
siyuan.rpc.bind("openMany", async (n) => {
  held.many = [];
  for (let i = 0; i < n; i++) held.many.push(await siyuan.client.fetch("/big"));
  return held.many.length;
});
siyuan.rpc.bind("cancelMany", async () => { for (const r of held.many) await r.body.cancel(); return null; });
siyuan.rpc.bind("once", async () => {
  const out = {};
  const a = await siyuan.client.fetch("/big?size=10");
  out.before = a.bodyUsed;
  out.text = await a.text();
  out.after = a.bodyUsed;
  out.again = await outcome(a.text());
  out.againBytes = await outcome(a.bytes());
  const b = await siyuan.client.fetch("/big?size=10");
  b.body.getReader();
  out.locked = await outcome(b.json());
  const c = await siyuan.client.fetch("/big?size=5");
  const bytes = await c.bytes();
  out.bytes = [bytes instanceof Uint8Array, Array.from(bytes)];
  const d = await siyuan.client.fetch("/big?size=3");
  const blob = await d.blob();
  out.blob = [blob instanceof Blob, blob.type, blob.size];
  const e = await siyuan.client.fetch("/big?size=4");
  out.arrayBuffer = (await e.arrayBuffer()).byteLength;
  return out;
});
"""


@pytest.fixture
async def kernel() -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()
    async with loopback_app([(r"/slow", Slow, {"seen": seen}), (r"/big", Big, {"seen": seen}),
                             (r"/echo", Echo)]) as url:
        yield url, seen
        seen.release.set()


@pytest.fixture
async def manager(tmp_path: Path, kernel: tuple[str, Seen]) -> AsyncIterator[PluginManager]:
    host = Host(tmp_path)
    host.plugin("fetcher", PLUGIN)
    mgr = await host.start(siyuan_url=kernel[0], call_timeout=30.0, max_open_fetches=3)
    try:
        assert host.state("fetcher") == PluginState.RUNNING, host.logs("fetcher")
        yield mgr
    finally:
        await mgr.close()


async def call(manager: PluginManager, method: str, *params: Any) -> Any:
    return await manager.call("fetcher", method, list(params))


async def test_timeout_until_headers_rejects_with_siyuans_text_and_closes_the_connection(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    _, seen = kernel
    got = await call(manager, "tryGet", "/slow", {"timeout": 150})
    assert got["error"].startswith("request timed out after 150ms")
    await asyncio.wait_for(seen.closed.wait(), 10)
    for bad in ("1000", -1, True):
        got = await call(manager, "tryGet", "/slow", {"timeout": bad})
        assert got["error"] == "timeout must be a non-negative finite number"
    assert seen.requests == 1


async def test_timeout_zero_waits_for_headers_as_long_as_they_take(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    _, seen = kernel
    call_task = asyncio.ensure_future(call(manager, "get", "/slow", {"timeout": 0}))
    await asyncio.wait_for(seen.arrived.wait(), 10)
    seen.release.set()
    got = await call_task
    assert (got["status"], got["text"]) == (200, "late")


async def test_pre_aborted_signal_rejects_with_its_reason_and_sends_nothing(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    got = await call(manager, "preAborted")
    assert got == {"error": "never mind", "name": "Error", "same": True}
    assert kernel[1].requests == 0
    bad = await call(manager, "tryGet", "/slow", {"signal": {"aborted": True}})
    assert bad["error"] == "signal must be an AbortSignal"


async def test_abort_while_waiting_for_headers_rejects_with_the_reason_and_closes_the_connection(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    _, seen = kernel
    await call(manager, "startAbortable", "/slow")
    await asyncio.wait_for(seen.arrived.wait(), 10)
    await call(manager, "abort")
    assert await call(manager, "pending") == {"error": "changed my mind", "name": "Error", "same": True}
    await asyncio.wait_for(seen.closed.wait(), 10)


async def test_abort_while_reading_the_body_errors_the_stream_and_closes_the_connection(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    _, seen = kernel
    got = await call(manager, "openBig")
    assert got == {"status": 200, "first": 32 * 1024, "used": True}
    await call(manager, "abort")
    assert await call(manager, "readAfterAbort") == {"error": "changed my mind", "name": "Error", "same": True}
    await asyncio.wait_for(seen.broken.wait(), 10)
    assert seen.written < BIG


async def test_a_plugin_that_stops_reading_holds_the_server_back_and_cancel_closes_the_connection(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    """Back-pressure: the plugin read one 32 KiB chunk of 64 MiB; had the host buffered the body, the server would
    have written all of it. It is still blocked when the plugin cancels, and its next write fails."""
    _, seen = kernel
    await call(manager, "openBig")
    await call(manager, "cancelBig")
    await asyncio.wait_for(seen.broken.wait(), 10)
    assert not seen.finished.is_set() and seen.written < BIG


async def test_a_large_chunked_body_is_read_to_the_end_in_chunks_of_at_most_32_kib(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    size = 3 * 1024 * 1024 + 17
    first = await call(manager, "openBig", size)
    rest = await call(manager, "readRest")
    assert first["first"] + rest["total"] == size
    assert rest["biggest"] <= 32 * 1024 and rest["chunks"] >= size // (32 * 1024) - 1 and rest["ok"]
    assert kernel[1].finished.is_set()


async def test_open_responses_are_bounded_per_plugin_with_a_clear_error(
        manager: PluginManager, kernel: tuple[str, Seen]) -> None:
    assert await call(manager, "openMany", 3) == 3
    got = await call(manager, "tryGet", "/big")
    assert "already has 3 responses open" in got["error"] and "max_open_fetches" in got["error"]
    await call(manager, "cancelMany")
    assert (await call(manager, "tryGet", "/big?size=1")) == {"ok": 200}


async def test_body_is_readable_once_and_reads_as_bytes_blob_and_array_buffer(manager: PluginManager) -> None:
    got = await call(manager, "once")
    assert (got["before"], got["text"], got["after"]) == (False, "\0" * 10, True)
    already = {"error": "body stream already read", "name": "TypeError", "same": False}
    assert got["again"] == already and got["againBytes"] == already and got["locked"] == already
    assert got["bytes"] == [True, [0, 0, 0, 0, 0]]
    assert got["blob"] == [True, "application/octet-stream", 3]
    assert got["arrayBuffer"] == 4


async def test_formdata_is_sent_as_multipart_with_its_files(manager: PluginManager) -> None:
    got = await call(manager, "post", """(() => {
      const fd = new FormData();
      fd.append("title", "notes");
      fd.append("doc", new File(["hello\\u00e9"], "a.md", { type: "text/markdown" }));
      fd.append("raw", new Blob([new Uint8Array([0, 255])]));
      return fd;
    })()""")
    assert got["contentType"].startswith("multipart/form-data; boundary=")
    assert got["args"] == {"title": ["notes"]}
    doc = {"filename": "a.md", "type": "text/markdown", "body": "helloé".encode().decode("latin-1")}
    assert got["files"]["doc"] == [doc]
    assert got["files"]["raw"] == [{"filename": "blob", "type": "application/octet-stream", "body": "\x00\xff"}]


async def test_binary_blob_and_urlsearchparams_bodies(manager: PluginManager) -> None:
    def sent(got: dict[str, Any]) -> bytes:
        return base64.b64decode(got["body"])

    assert sent(await call(manager, "post", "new Uint8Array([0, 1, 254, 255]).buffer")) == b"\0\1\xfe\xff"
    assert sent(await call(manager, "post", "new Uint16Array([0x0201, 0x0403]).subarray(1)")) == b"\3\4"
    assert sent(await call(manager, "post", "new DataView(new Uint8Array([9, 8, 7]).buffer, 1)")) == b"\x08\x07"
    blob = await call(manager, "post", "new Blob([new Uint8Array([200])], { type: 'image/png' })")
    assert sent(blob) == b"\xc8" and blob["contentType"] == "image/png"
    form = await call(manager, "post", "new URLSearchParams({ a: '1 2', b: 'é' })")
    assert form["contentType"] == "application/x-www-form-urlencoded;charset=UTF-8"
    assert form["args"] == {"a": ["1 2"], "b": ["é"]}


async def test_stopping_the_plugin_closes_its_open_responses(tmp_path: Path, kernel: tuple[str, Seen]) -> None:
    host = Host(tmp_path)
    host.plugin("fetcher", PLUGIN)
    mgr = await host.start(siyuan_url=kernel[0])
    try:
        await mgr.call("fetcher", "openBig", [])
    finally:
        await mgr.close()
    await asyncio.wait_for(kernel[1].broken.wait(), 10)
    await wait_for(lambda: kernel[1].closed.is_set(), what="the connection closed")


async def test_a_request_body_past_max_fetch_body_is_refused_with_a_clear_error(
        tmp_path: Path, kernel: tuple[str, Seen]) -> None:
    host = Host(tmp_path)
    host.plugin("fetcher", PLUGIN + """
siyuan.rpc.bind("postSized", (n) => outcome(siyuan.client.fetch("/echo", { method: "POST", body: "x".repeat(n) })
  .then((r) => r.status)));
""")
    mgr = await host.start(siyuan_url=kernel[0], max_fetch_body=100)
    try:
        assert await mgr.call("fetcher", "postSized", [100]) == {"ok": 200}
        got = await mgr.call("fetcher", "postSized", [101])
        assert got["error"] == ("fetch /echo: the request body is 101 bytes, the limit is 100 "
                                "(HostConfig.max_fetch_body)")
    finally:
        await mgr.close()
