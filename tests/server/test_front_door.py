"""The front door (``kplug serve --front-door``): plugin routes answered by kplug_lab behind the kernel's own
authentication, everything else passed to the (fake) SiYuan kernel unchanged and streamed both ways."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
from kplug_testing import CHROMIUM, CHROMIUM_ARGS, Host, loopback_app, wait_for

from kplug_lab.server.front_door import FrontDoor, FrontDoorConfig, make_front_door_app
from kplug_lab.testing.fake_siyuan import FakeSiYuan, download_chunk

PLUGIN = """
siyuan.rpc.bind("echo", (x) => x);
siyuan.rpc.bind("shout", async (text) => { await siyuan.rpc.broadcast("heard", text); return "ok"; });
siyuan.server.private.http.handler = async () => ({
  statusCode: 200, body: { data: { type: "JSON", data: { page: "private page" } } } });
"""

KPLUG_TOKEN = "kplug-own-token"
#: the front door's own buffer cap in these tests: every body below is many times larger
BUFFER_CAP = 256 * 1024


@dataclass
class Door:
    url: str
    kernel: FakeSiYuan
    door: FrontDoor

    @property
    def ws(self) -> str:
        return "ws" + self.url[len("http"):]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.kernel.token}"}


@pytest.fixture
async def front(host: Host, tmp_path: Path) -> AsyncIterator[Door]:
    host.plugin("hello", PLUGIN)
    manager = await host.start()
    async with FakeSiYuan(tmp_path / "ws") as kernel:
        door = FrontDoor(FrontDoorConfig(kernel_url=kernel.url, max_buffer_bytes=BUFFER_CAP))
        app = make_front_door_app(manager, KPLUG_TOKEN, door)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app, max_buffer_size=BUFFER_CAP)
        server.add_sockets(sockets)
        try:
            yield Door(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", kernel, door)
        finally:
            server.stop()
            door.close()
            await server.close_all_connections()


async def fetch(url: str, **kw: object) -> tornado.httpclient.HTTPResponse:
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_body_size=1 << 30,
                                                max_buffer_size=1 << 30)
    try:
        return await client.fetch(url, raise_error=False, follow_redirects=False, **kw)  # type: ignore[arg-type]
    finally:
        client.close()


def rpc(method: str, *params: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()


# ---- plugin routes: answered here, with the kernel's authentication ---------------------------------------

async def test_plugin_call_with_the_kernels_token_is_answered_by_kplug_lab(front: Door) -> None:
    r = await fetch(f"{front.url}/api/plugin/rpc/hello", method="POST", body=rpc("echo", "hi"), headers=front.auth())
    assert r.code == 200 and json.loads(r.body)["result"] == "hi"
    assert front.kernel.requests_to("/api/plugin/rpc/hello") == []  # answered here, never passed on
    assert [q.authorized for q in front.kernel.requests_to("/api/system/getNetwork")] == [True]


async def test_plugin_call_without_the_kernels_credential_is_refused(front: Door) -> None:
    for headers in ({}, {"Authorization": "Token wrong"}, {"Cookie": "siyuan=forged"}):
        r = await fetch(f"{front.url}/api/plugin/rpc/hello", method="POST", body=rpc("echo", 1), headers=headers)
        assert r.code == 401, headers
        assert json.loads(r.body)["code"] == -1
    ws = tornado.httpclient.HTTPRequest(f"{front.ws}/ws/plugin/rpc/hello")
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(ws)
    assert refused.value.code == 401


async def test_an_accepted_credential_is_checked_once_then_cached(front: Door) -> None:
    for _ in range(3):
        r = await fetch(f"{front.url}/api/plugin/rpc/hello", method="POST", body=rpc("echo", 1), headers=front.auth())
        assert r.code == 200
    assert front.door.credentials.probes == 1


async def test_kplug_labs_own_token_still_works_and_the_admin_api_takes_only_it(front: Door) -> None:
    own = {"Authorization": f"Token {KPLUG_TOKEN}"}
    r = await fetch(f"{front.url}/api/plugin/rpc/hello", method="POST", body=rpc("echo", 2), headers=own)
    assert json.loads(r.body)["result"] == 2
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "kplug.list"}).encode()
    assert (await fetch(f"{front.url}/kplug/api/rpc", method="POST", body=body, headers=own)).code == 200
    assert (await fetch(f"{front.url}/kplug/api/rpc", method="POST", body=body, headers=front.auth())).code == 401


async def test_a_plugin_kplug_lab_does_not_run_is_the_kernels(front: Door) -> None:
    r = await fetch(f"{front.url}/api/plugin/rpc/siyuans-own", method="POST", body=rpc("x"), headers=front.auth())
    assert [q.method for q in front.kernel.requests_to("/api/plugin/rpc/siyuans-own")] == ["POST"]
    assert r.code == 404  # the fake kernel has no plugin routes


async def test_private_pages_under_the_kernels_origin_keep_the_sandbox_policy(front: Door) -> None:
    r = await fetch(f"{front.url}/plugin/private/hello/page", headers=front.auth())
    assert r.code == 200 and b"private page" in r.body
    assert "sandbox" in r.headers["Content-Security-Policy"]


# ---- everything else: passed to the kernel -------------------------------------------------------------

async def test_kernel_api_passes_through_with_the_kernel_deciding_auth(front: Door) -> None:
    r = await fetch(f"{front.url}/api/system/getConf", method="POST", body=b"{}", headers=front.auth())
    assert r.code == 200 and json.loads(r.body)["data"]["conf"]["lang"] == "en_US"
    refused = await fetch(f"{front.url}/api/system/getConf", method="POST", body=b"{}")
    assert refused.code == 401 and json.loads(refused.body)["code"] == -1
    seen = front.kernel.requests_to("/api/system/getConf")[0].headers
    assert seen["Host"] == front.url.split("//")[1]  # the client's Host, so the kernel's redirects stay here
    assert seen["X-Forwarded-For"] == "127.0.0.1"


async def test_forwarding_and_hop_by_hop_headers_are_the_front_doors_alone(front: Door) -> None:
    headers = {**front.auth(), "X-Forwarded-For": "10.0.0.1", "Forwarded": "for=10.0.0.1", "Connection":
               "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1", "Keep-Alive": "timeout=5", "X-Kept": "yes"}
    await fetch(f"{front.url}/api/system/version", headers=headers)
    seen = {k.lower(): v for k, v in front.kernel.requests_to("/api/system/version")[0].headers.items()}
    assert seen["x-forwarded-for"] == "127.0.0.1" and "forwarded" not in seen
    assert "x-secret-hop" not in seen and "keep-alive" not in seen
    assert seen["x-kept"] == "yes" and seen["authorization"] == f"Token {front.kernel.token}"


async def test_large_upload_and_download_stream_past_the_buffer_cap(front: Door) -> None:
    chunks = 64  # 4 MiB each way, 16 x the front door's buffer cap
    payload = b"".join(download_chunk(i) for i in range(chunks))
    r = await fetch(f"{front.url}/test/upload", method="POST", body=payload,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.code == 200, r.body
    assert json.loads(r.body) == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                                  "contentType": "application/octet-stream"}

    async def chunked_body(write: object) -> None:
        for i in range(chunks):
            await write(download_chunk(i))  # type: ignore[operator]
    r = await fetch(f"{front.url}/test/upload", method="PUT", body_producer=chunked_body)
    assert json.loads(r.body)["size"] == len(payload)

    received = hashlib.sha256()
    sizes: list[int] = []

    def got(chunk: bytes) -> None:
        received.update(chunk)
        sizes.append(len(chunk))
    r = await fetch(f"{front.url}/test/download?chunks={chunks}", streaming_callback=got)
    assert r.code == 200 and sum(sizes) == len(payload)
    assert received.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert max(sizes) <= BUFFER_CAP


async def test_event_stream_arrives_event_by_event(front: Door) -> None:
    parts: list[bytes] = []
    r = await fetch(f"{front.url}/test/events?n=3", streaming_callback=parts.append)
    assert r.code == 200 and r.headers["Content-Type"] == "text/event-stream"
    assert b"".join(parts) == b"".join(f"id: {i}\ndata: event {i}\n\n".encode() for i in range(3))


async def test_range_requests_and_validators_pass_through(front: Door) -> None:
    assets = front.kernel.workspace / "data" / "assets"
    assets.mkdir(parents=True)
    (assets / "a.bin").write_bytes(bytes(range(256)) * 40)
    r = await fetch(f"{front.url}/test/files/a.bin", headers={"Range": "bytes=10-19"})
    assert r.code == 206 and r.body == bytes(range(10, 20))
    assert r.headers["Content-Range"] == "bytes 10-19/10240"
    full = await fetch(f"{front.url}/test/files/a.bin")
    again = await fetch(f"{front.url}/test/files/a.bin", headers={"If-None-Match": full.headers["Etag"]})
    assert again.code == 304 and again.body == b""
    head = await fetch(f"{front.url}/test/files/a.bin", method="HEAD")
    assert head.code == 200 and head.headers["Content-Length"] == "10240" and head.body == b""


async def test_redirects_and_cookies_pass_through_unfollowed(front: Door) -> None:
    r = await fetch(f"{front.url}/test/redirect?to=/check-auth")
    assert r.code == 302 and r.headers["Location"] == "/check-auth"
    assert "redirected=yes" in r.headers["Set-Cookie"]
    login = await fetch(f"{front.url}/api/system/loginAuth", method="POST",
                        body=json.dumps({"authCode": front.kernel.token}).encode(),
                        headers={"Content-Type": "application/json"})
    cookie = login.headers["Set-Cookie"].split(";")[0]
    assert cookie == f"siyuan={front.kernel.session}"
    r = await fetch(f"{front.url}/api/plugin/rpc/hello", method="POST", body=rpc("echo", "c"),
                    headers={"Cookie": cookie})
    assert json.loads(r.body)["result"] == "c"  # the kernel's session cookie is a credential here too


async def test_websocket_relays_both_ways_with_close_codes(front: Door) -> None:
    ws = await tornado.websocket.websocket_connect(f"{front.ws}/ws/test/echo", subprotocols=["siyuan"])
    assert ws.selected_subprotocol == "siyuan"
    await ws.write_message("text")
    assert await ws.read_message() == "text"
    await ws.write_message(b"\x00\x01", binary=True)
    assert await ws.read_message() == b"\x00\x01"
    await ws.write_message("close:4001:kernel says bye")
    assert await ws.read_message() is None
    assert (ws.close_code, ws.close_reason) == (4001, "kernel says bye")

    ws = await tornado.websocket.websocket_connect(f"{front.ws}/ws/test/echo")
    ws.close(4002, "client says bye")
    await wait_for(lambda: (4002, "client says bye") in front.kernel.echo_closes, what="the kernel sees the close")


async def test_kernel_ws_refusal_and_pushes_pass_through_and_injected_pushes_merge(front: Door) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(f"{front.ws}/ws?app=x&id=1&type=main")
    assert refused.value.code == 401

    # a stub publisher, as the main channel's publisher will call the front door's hook
    subscribers: list[object] = []

    def subscribe(callback: object) -> object:
        subscribers.append(callback)
        return lambda: subscribers.remove(callback)
    unsubscribe = front.door.follow(subscribe)  # type: ignore[arg-type]

    main = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
        f"{front.ws}/ws?app=x&id=1&type=main", headers=front.auth()))
    other = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(
        f"{front.ws}/ws?app=x&id=2&type=protyle", headers=front.auth()))
    await wait_for(lambda: len(front.kernel._sockets) == 2, what="both sockets reach the kernel")
    front.kernel.push("reloadui", None)
    assert json.loads(await main.read_message())["cmd"] == "reloadui"  # type: ignore[arg-type]
    assert json.loads(await other.read_message())["cmd"] == "reloadui"  # type: ignore[arg-type]
    push = {"cmd": "updateKernelPluginState", "reqId": 0, "app": "", "sid": "", "pushMode": 0, "callback": "",
            "code": 0, "msg": "", "data": {"name": "hello", "state": 2}}
    subscribers[0](json.dumps(push))  # type: ignore[operator]
    assert json.loads(await main.read_message()) == push  # type: ignore[arg-type]
    front.kernel.push("after", None)
    assert json.loads(await other.read_message())["cmd"] == "after"  # type: ignore[arg-type]
    assert json.loads(await main.read_message())["cmd"] == "after"  # type: ignore[arg-type]  # not injected there
    unsubscribe()  # type: ignore[operator]
    assert subscribers == []
    main.close()
    other.close()


async def test_the_proxy_never_reaches_anything_but_the_kernel(front: Door) -> None:
    hits: list[str] = []

    class Elsewhere(tornado.web.RequestHandler):
        def get(self, path: str) -> None:
            hits.append(path)
            self.finish("elsewhere")

    async with loopback_app([(r"/(.*)", Elsewhere)]) as other:
        host_port = other.split("//")[1]
        port = int(front.url.rsplit(":", 1)[1])
        for target in (f"http://{host_port}/x", f"//{host_port}/x", "*"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n".encode())
            answer = await reader.read()
            writer.close()
            assert b"elsewhere" not in answer, target
        # a Host header naming another server changes nothing: the kernel gets the request
        r = await fetch(f"{front.url}/api/system/version", headers={"Host": host_port})
        assert json.loads(r.body)["data"] == front.kernel.version
    assert hits == []


async def test_an_unreachable_kernel_is_a_502(host: Host) -> None:
    manager = await host.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    door = FrontDoor(FrontDoorConfig(kernel_url=dead))
    app = make_front_door_app(manager, KPLUG_TOKEN, door)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    try:
        r = await fetch(f"http://127.0.0.1:{sockets[0].getsockname()[1]}/api/system/version")
        assert r.code == 502
    finally:
        server.stop()
        door.close()
        await server.close_all_connections()


def test_the_kernel_url_must_be_an_origin() -> None:
    for bad in ("ftp://x", "http://h/path", "http://h?q=1", "h:6806"):
        with pytest.raises(ValueError):
            FrontDoorConfig(kernel_url=bad)
    config = FrontDoorConfig(kernel_url="http://127.0.0.1:6806")
    with pytest.raises(ValueError):
        config.target("http://evil.example/")
    assert config.target("//evil.example/x") == "http://127.0.0.1:6806//evil.example/x"


# ---- the browser ---------------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>SiYuan through the front door</title></head><body>
<script type="module">
const out = (window.results = {});
try {
  const login = await fetch("/api/system/loginAuth", { method: "POST", body: JSON.stringify({ authCode: TOKEN }) });
  out.login = (await login.json()).code;
  const call = await fetch("/api/plugin/rpc/hello", { method: "POST",
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "echo", params: ["from the page"] }) });
  out.echo = (await call.json()).result;
  out.kernelApi = (await (await fetch("/api/system/getConf", { method: "POST", body: "{}" })).json()).code;
  const ws = new WebSocket(`ws://${location.host}/ws/plugin/rpc/hello`);
  out.heard = await new Promise((resolve, reject) => {
    ws.onmessage = (e) => resolve(JSON.parse(e.data));
    ws.onerror = () => reject(new Error("plugin socket failed"));
    ws.onopen = () => fetch("/api/plugin/rpc/hello", { method: "POST",
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "shout", params: ["broadcast!"] }) });
  });
  ws.close();
  const main = new WebSocket(`ws://${location.host}/ws?app=page&id=1&type=main`);
  out.kernelPush = await new Promise((resolve, reject) => {
    main.onmessage = (e) => resolve(JSON.parse(e.data).cmd);
    main.onerror = () => reject(new Error("kernel socket failed"));
    main.onopen = () => { window.mainOpen = true; };
  });
  main.close();
} catch (e) {
  out.failure = String(e && e.stack || e);
}
window.finished = true;
</script></body></html>
"""


async def test_a_page_from_the_kernel_reaches_plugins_and_the_kernel_through_the_front_door(front: Door) -> None:
    from kplug_testing import require_chromium
    require_chromium()
    from playwright.async_api import async_playwright

    front.kernel.serve_page("/stage/index.html", PAGE.replace("TOKEN", json.dumps(front.kernel.token)))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{front.url}/stage/index.html")
            await page.wait_for_function("window.mainOpen === true || window.finished === true", timeout=30_000)
            await wait_for(lambda: len(front.kernel._sockets) == 1, what="the page's /ws reaches the kernel")
            front.kernel.push("reloadui", None)
            await page.wait_for_function("window.finished === true", timeout=30_000)
            results = await page.evaluate("window.results")
        finally:
            await browser.close()
    assert "failure" not in results, results["failure"]
    assert results["login"] == 0 and results["echo"] == "from the page" and results["kernelApi"] == 0
    assert results["heard"] == {"jsonrpc": "2.0", "method": "heard", "params": "broadcast!"}
    assert results["kernelPush"] == "reloadui"
    assert front.kernel.requests_to("/api/plugin/rpc/hello") == []
    # the page's plugin calls carried only SiYuan's session cookie, checked with the kernel
    probe = front.kernel.requests_to("/api/system/getNetwork")[0]
    assert probe.authorized and "siyuan=" in probe.headers["Cookie"] and "Authorization" not in probe.headers
