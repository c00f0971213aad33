"""/plugin/private/<name>/<path> (spec §3.8): every HTTP body kind, the ws and es slots, auth, 404/503 texts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from kplug_testing import Host, loopback_app, wait_for
from rpc_server import Server
from tornado import web

from kplug_lab.host.runtime.api import PluginState

PLUGIN = r"""
async function files(req) {
  const out = {};
  for (const [field, list] of Object.entries(req.request.body.form.files)) {
    out[field] = [];
    for (const f of list) out[field].push({ filename: f.filename, size: f.size, text: await f.data.text() });
  }
  return out;
}
siyuan.server.private.http.handler = async (req) => {
  const p = req.context.path;
  const q = (k) => (req.url.query[k] || [])[0];
  if (p === "/echo") return { body: { data: { type: "JSON", data: {
      method: req.request.method, query: req.url.query, path: req.url.path, pathname: req.url.pathname,
      user: req.url.user, headers: Object.keys(req.request.headers).sort(), cookies: req.request.cookies,
      contentType: req.request.contentType, text: req.request.body.data ? await req.request.body.data.text() : null,
      form: req.request.body.form && { values: req.request.body.form.values, files: await files(req) } } } } };
  if (p === "/json") return { statusCode: 201, headers: { "X-Multi": ["a", "b"] },
                              body: { data: { type: "SecureJSON", data: [1, "<"] } } };
  if (p === "/jsonp") return { body: { data: { type: "JSONP", data: { ok: true } } } };
  if (p === "/badtype") return { body: { data: { type: "XMLish", data: 1 } } };
  if (p === "/string") return { body: { string: { format: "%s has %v items%%", values: ["cart", 3] } } };
  if (p === "/raw") return { headers: { "X-Kind": ["raw"] },
                             body: { raw: { contentType: "application/x-bin", data: new Uint8Array([0, 1, 255]) } } };
  if (p === "/redirect") return { statusCode: 302, body: { redirect: { location: "/elsewhere" } } };
  if (p === "/badredirect") return { statusCode: 200, body: { redirect: { location: "/elsewhere" } } };
  if (p === "/cookie") {
    return { cookies: [{ name: "sid", value: "v1", path: "/", httpOnly: true, SameSite: 2, MaxAge: 60 }], body: null };
  }
  if (p === "/file") return { body: { file: { path: q("p"), name: q("name") } } };
  if (p === "/proxy") return { headers: { "X-Up": ["handler"], "X-Mine": ["kept"] },
    body: { proxy: { url: q("url"), method: q("method"), headers: { "X-Sent": ["yes"] } } } };
  if (p === "/null") return null;
  if (p === "/primitive") return 42;
  if (p === "/throw") throw new Error("nope");
  return { statusCode: 404, body: { string: { format: "no route %s", values: [p] } } };
};
let wsLog = [];
siyuan.server.private.ws.handler = async (req) => {
  if (req.context.path === "/fail") throw new Error("no sockets here");
  const port = req.port;
  wsLog.push({ state: port.readyState, sealed: Object.isSealed(port) });
  await port.send("welcome " + req.context.path);
  port.onopen = (e) => wsLog.push({ open: e.type, state: port.readyState });
  port.onmessage = async (e) => {
    wsLog.push({ message: e.type });
    if (e.type === "binary") await port.send(e.data);
    else if (e.data === "close please") await port.close(4001, "as asked");
    else await port.send("echo:" + e.data);
  };
  port.onclose = (e) => wsLog.push(e);
  port.onerror = (e) => wsLog.push({ error: e.error.message });
};
let esLog = [];
siyuan.server.private.es.handler = (req) => {
  const port = req.port;
  esLog.push({ sealed: Object.isSealed(port) });
  const errors = [];
  for (const bad of [undefined, "x", {}]) {
    try { port.send(bad); } catch (e) { errors.push(`${e.name}: ${e.message}`); }
  }
  esLog.push({ errors });
  port.onopen = () => {
    port.send({ data: "hello\nworld", event: "greet", id: "1" });
    port.send({ data: { a: "<b>" }, retry: 1500 });
    port.send({ data: null });
    if (req.context.path === "/short") port.close();
  };
  port.onclose = (e) => esLog.push(e);
  return port.send({ data: 7 });
};
siyuan.rpc.bind("logs", () => ({ wsLog, esLog }));
"""


class _Upstream(web.RequestHandler):
    def get(self) -> None:
        self.set_header("X-Up", "upstream")
        self.set_header("Set-Cookie", "up=1")
        seen = self.request.headers
        self.finish(json.dumps({"sent": seen.get("X-Sent"), "auth": seen.get("Authorization")}))

    def head(self) -> None:
        self.set_header("X-Up", "upstream")
        self.finish()


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async with loopback_app([(r"/up", _Upstream)]) as url:
        yield url


async def _server(host: Host, allow_private: bool) -> Server:
    host.plugin("web", PLUGIN)
    host.plugin("broken", "throw new Error('broken on purpose');")
    await host.start(restart_limit=0)
    await wait_for(lambda: host.state("web") == PluginState.RUNNING, what="web running")
    return Server(host, call_token="call-only", kplug_proxy_allow_private=allow_private)


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    srv = await _server(host, allow_private=True)
    yield srv
    await srv.close()


async def test_request_object_hides_credentials_and_session_cookies(server: Server) -> None:
    r = await server.http.post("/plugin/private/web/echo?a=1&a=2&token=secret", content="hi there",
                               headers={"Cookie": "siyuan=sess; _xsrf=x; theme=dark", "X-Auth-Token": "t",
                                        "Content-Type": "text/plain"},
                               auth=None)
    got = r.json()
    assert r.status_code == 200
    assert got["method"] == "POST" and got["query"] == {"a": ["1", "2"]} and got["text"] == "hi there"
    assert got["user"] is None and got["cookies"] == {"theme": ["dark"]} and got["contentType"] == "text/plain"
    assert not {"Authorization", "Cookie", "X-Auth-Token"} & set(got["headers"])
    r = await server.http.get("/plugin/private/web/echo%20x")
    assert r.status_code == 404 and r.text == "no route /echo x"


async def test_forms_urlencoded_and_multipart(server: Server) -> None:
    r = await server.http.post("/plugin/private/web/echo", data={"k": ["v1", "v2"], "n": "3"})
    assert r.json()["form"] == {"values": {"k": ["v1", "v2"], "n": ["3"]}, "files": {}}
    r = await server.http.post("/plugin/private/web/echo", data={"title": "t"},
                               files={"up": ("a.txt", b"file body", "text/plain")})
    got = r.json()
    assert got["text"] is None
    assert got["form"] == {"values": {"title": ["t"]},
                           "files": {"up": [{"filename": "a.txt", "size": 9, "text": "file body"}]}}


async def test_data_string_raw_redirect_and_cookie_bodies(server: Server) -> None:
    r = await server.http.get("/plugin/private/web/json")
    assert r.status_code == 201 and r.text == 'while(1);[1,"<"]'
    assert r.headers.get_list("X-Multi") == ["a", "b"]
    r = await server.http.get("/plugin/private/web/jsonp?callback=cb")
    assert r.text == 'cb({"ok":true});'
    r = await server.http.get("/plugin/private/web/badtype")
    assert r.status_code == 500 and r.text == "Unsupported serialized data type"
    r = await server.http.get("/plugin/private/web/string")
    assert r.text == "cart has 3 items%" and r.headers["Content-Type"].startswith("text/plain")
    r = await server.http.get("/plugin/private/web/raw")
    assert r.content == b"\x00\x01\xff" and r.headers["Content-Type"] == "application/x-bin"
    assert r.headers["X-Kind"] == "raw"
    r = await server.http.get("/plugin/private/web/redirect")
    assert r.status_code == 302 and r.headers["Location"] == "/elsewhere"
    r = await server.http.get("/plugin/private/web/badredirect")
    assert r.status_code == 500 and "invalid redirect status 200" in r.text
    r = await server.http.get("/plugin/private/web/cookie")
    assert r.status_code == 200
    # [better] confined to the plugin's own pages (SiYuan would set Path=/ on its origin)
    assert r.headers["Set-Cookie"] == "sid=v1; Path=/plugin/private/web/; Max-Age=60; HttpOnly; SameSite=Lax"


async def test_bad_results_are_500_with_siyuan_texts(server: Server) -> None:
    r = await server.http.get("/plugin/private/web/null")
    assert r.status_code == 500 and r.text.startswith("[plugin:web] Error occurred while handling HTTP request: ")
    assert "invalid response format" in r.text
    r = await server.http.get("/plugin/private/web/primitive")
    assert r.status_code == 500 and "invalid response format" in r.text
    r = await server.http.get("/plugin/private/web/throw")
    assert r.status_code == 500 and r.text.startswith("[plugin:web] Error occurred while handling HTTP request: ")
    assert "nope" in r.text


async def test_file_is_confined_to_the_plugin_storage_or_workspace(server: Server, host: Host, tmp_path: Path) -> None:
    assert host.manager is not None
    storage = host.manager.plugins["web"].storage.root
    (storage / "doc.txt").write_text("0123456789")
    (tmp_path / "outside.txt").write_text("secret")
    r = await server.http.get("/plugin/private/web/file", params={"p": "doc.txt"})
    assert r.status_code == 200 and r.text == "0123456789" and r.headers["Content-Type"] == "text/plain"
    r = await server.http.get("/plugin/private/web/file", params={"p": "doc.txt"}, headers={"Range": "bytes=2-4"})
    assert r.status_code == 206 and r.text == "234" and r.headers["Content-Range"] == "bytes 2-4/10"
    r = await server.http.get("/plugin/private/web/file", params={"p": str(storage / "doc.txt"), "name": "d ö.txt"})
    assert r.status_code == 200 and r.headers["Content-Disposition"] == "attachment; filename*=UTF-8''d%20%C3%B6.txt"
    for outside in (str(tmp_path / "outside.txt"), "../../outside.txt", "/etc/passwd", ".", "missing.txt"):
        r = await server.http.get("/plugin/private/web/file", params={"p": outside})
        assert r.status_code == 404, outside


async def test_proxy_streams_upstream_and_drops_hop_by_hop_and_cookies(server: Server, upstream: str) -> None:
    r = await server.http.get("/plugin/private/web/proxy", params={"url": upstream + "/up"})
    assert r.status_code == 200, r.text
    assert r.json() == {"sent": "yes", "auth": None}
    assert r.headers["X-Up"] == "upstream" and r.headers["X-Mine"] == "kept" and "Set-Cookie" not in r.headers
    r = await server.http.get("/plugin/private/web/proxy", params={"url": upstream + "/nothing"})
    assert r.status_code == 404
    r = await server.http.get("/plugin/private/web/proxy", params={"url": "file:///etc/passwd"})
    assert r.status_code == 400 and r.text == "only http/https proxy url is allowed"
    r = await server.http.get("/plugin/private/web/proxy", params={"url": upstream + "/up", "method": "POST"})
    assert r.status_code == 400
    dead = upstream.rsplit(":", 1)[0] + ":1"
    r = await server.http.get("/plugin/private/web/proxy", params={"url": dead + "/up"})
    assert r.status_code == 502 and r.text.startswith("proxy request failed: ")


async def test_proxy_refuses_loopback_targets_by_default(host: Host, upstream: str) -> None:
    srv = await _server(host, allow_private=False)
    try:
        r = await srv.http.get("/plugin/private/web/proxy", params={"url": upstream + "/up"})
        assert r.status_code == 502 and "non-public address 127.0.0.1" in r.text
    finally:
        await srv.close()


async def test_auth_and_plugin_state_texts(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as anon:
        r = await anon.get("/plugin/private/web/echo")
        assert r.status_code == 401
        r = await anon.get("/plugin/private/web/echo", headers={"Authorization": "Token call-only"})
        assert r.status_code == 403
        r = await anon.get("/plugin/private/web/echo", headers={"Authorization": "Token call-only",
                                                                   "Accept": "text/event-stream"})
        assert r.status_code == 403
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws + "/plugin/private/web/x", proxy=None)
    assert refused.value.response.status_code == 401
    r = await server.http.get("/plugin/private/nobody/x")
    assert r.status_code == 404 and r.text == "[plugin:nobody] not found"
    await wait_for(lambda: server.host.state("broken") == PluginState.ERROR, what="broken in error")
    r = await server.http.get("/plugin/private/broken/x")
    assert r.status_code == 503 and r.text == "[plugin:broken] is not running"


async def logs(server: Server) -> dict[str, Any]:
    assert server.host.manager is not None
    return await server.host.manager.call("web", "logs")  # type: ignore[no-any-return]


async def test_websocket_slot_frames_both_ways_and_close(server: Server) -> None:
    async with websockets.connect(server.ws + "/plugin/private/web/chat", additional_headers=server.auth,
                                  proxy=None) as ws:
        assert await ws.recv() == "welcome /chat"
        await ws.send("hi")
        assert await ws.recv() == "echo:hi"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
        await ws.send("close please")
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001 and ws.close_reason == "as asked"
    for _ in range(200):
        got = (await logs(server))["wsLog"]
        if got and "type" in got[-1]:
            break
        await asyncio.sleep(0.02)
    assert got == [{"state": 0, "sealed": True}, {"open": "open", "state": 1}, {"message": "text"},
                   {"message": "binary"}, {"message": "text"},
                   {"type": "close", "code": 4001, "reason": "as asked", "wasClean": True}]


async def test_websocket_slot_handler_failure_drops_the_connection(server: Server) -> None:
    async with websockets.connect(server.ws + "/plugin/private/web/fail", additional_headers=server.auth,
                                  proxy=None) as ws:
        with pytest.raises(websockets.ConnectionClosedError):
            await ws.recv()
        assert ws.close_code == 1006


async def test_websocket_closes_when_the_plugin_stops(server: Server) -> None:
    async with websockets.connect(server.ws + "/plugin/private/web/chat", additional_headers=server.auth,
                                  proxy=None) as ws:
        assert await ws.recv() == "welcome /chat"
        assert server.host.manager is not None
        await server.host.manager.unload("web")
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1001


async def test_sse_slot_encodes_events_like_gin_and_closes(server: Server) -> None:
    r = await server.http.get("/plugin/private/web/short", headers={"Accept": "text/event-stream"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/event-stream;charset=utf-8" and r.headers["Cache-Control"] == "no-cache"
    assert r.text == ("data:7\n\n"
                      "id:1\nevent:greet\ndata:hello\ndata:world\n\n"
                      'retry:1500\ndata:{"a":"\\u003cb\\u003e"}\n\n'
                      "data:<nil>\n\n")
    for _ in range(200):
        got = (await logs(server))["esLog"]
        if got and got[-1].get("type") == "close":
            break
        await asyncio.sleep(0.02)
    assert got == [{"sealed": True},
                   {"errors": ["GoError: invalid event object", "GoError: invalid event object",
                               "GoError: event.data is required"]},
                   {"type": "close"}]


async def test_stopping_the_plugin_ends_its_sse_streams_and_runs_onclose_first(host: Host) -> None:
    """Spec §3.8.4: a stream stays open until close(), the client leaves, or the plugin stops; then onclose."""
    host.plugin("sse", """
        siyuan.server.private.es.handler = (req) => {
          req.port.onclose = (e) => siyuan.logger.info("onclose " + e.type);
          req.port.send({ data: "open" });
        };
    """)
    await host.start()
    server = Server(host)
    try:
        async with server.http.stream("GET", "/plugin/private/sse/live",
                                      headers={"Accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            assert await anext(lines) == "data:open"
            assert host.manager is not None
            plugin = host.manager.plugins["sse"]
            await host.manager.unload("sse")
            rest = [line async for line in lines]  # the response ends: no hanging client
        assert rest == [""]
        lines_logged = [record.message for record in plugin.logs]
        assert "onclose close" in lines_logged, lines_logged
    finally:
        await server.close()


async def test_sse_stream_stays_open_until_the_client_leaves(server: Server) -> None:
    async with server.http.stream("GET", "/plugin/private/web/long", headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200
        lines = []
        async for line in r.aiter_lines():
            lines.append(line)
            if line == "data:<nil>":
                break
    for _ in range(200):
        got = (await logs(server))["esLog"]
        if got and got[-1].get("type") == "close":
            break
        await asyncio.sleep(0.02)
    assert got[-1] == {"type": "close"}


async def test_a_hostile_page_gets_the_host_sandbox_and_cannot_set_the_server_cookies(host: Host) -> None:
    from hostile_pages import PLUGIN as HOSTILE
    from hostile_pages import assert_sandboxed

    host.plugin("evil", HOSTILE)
    await host.start(restart_limit=0)
    server = Server(host)
    try:
        r = await server.http.get("/plugin/private/evil/page")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert_sandboxed(r.headers.get_list("Content-Security-Policy"))
        assert "Content-Security-Policy-Report-Only" not in r.headers
        assert "Access-Control-Allow-Origin" not in r.headers and "Access-Control-Allow-Credentials" not in r.headers
        assert r.headers["X-Plugin"] == "kept"
        cookies = r.headers.get_list("Set-Cookie")
        assert not [c for c in cookies if "_xsrf" in c], cookies
        assert sorted(cookies) == ["deep=2; Path=/plugin/private/evil/sub", "mine=1; Path=/plugin/private/evil/"]
        r = await server.http.get("/plugin/private/evil/weak")
        assert r.text == "weak"
        assert_sandboxed(r.headers.get_list("Content-Security-Policy"))
        for bad in ("badname", "badvalue"):
            r = await server.http.get(f"/plugin/private/evil/{bad}")
            assert r.status_code == 500 and "invalid" in r.text and "Set-Cookie" not in r.headers, bad
            assert_sandboxed(r.headers.get_list("Content-Security-Policy"))
        r = await server.http.get("/plugin/private/evil/missing")  # the plugin's error page is sandboxed too
        assert r.status_code == 500 and "no page /missing" in r.text
        assert_sandboxed(r.headers.get_list("Content-Security-Policy"))
    finally:
        await server.close()
