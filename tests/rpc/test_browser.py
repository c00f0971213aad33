"""kplug-client.js in a real browser (headless Debian Chromium driven by playwright): a page served by the test
server imports the client from ``/kplug/static/kplug-client.js``, calls plugin methods, receives broadcasts,
and rides out a plugin that is not loaded yet (SiYuan's -32001 retry)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.web
from kplug_testing import CHROMIUM, CHROMIUM_ARGS, Host, captured_logs, require_chromium
from rpc_server import TOKEN, Server, html_page

require_chromium()  # before playwright is imported: a missing browser skips here, fails on CI

from playwright.async_api import async_playwright  # noqa: E402 - after the browser check, on purpose

PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a));
siyuan.rpc.bind("boom", () => { throw new Error("kaboom"); });
siyuan.rpc.bind("shout", async (n) => {
  for (let i = 0; i < n; i++) await siyuan.rpc.broadcast("tick", [i, "t" + i]);
  await siyuan.rpc.broadcast("done");
  return n;
});
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>kplug-client test</title></head><body>
<script type="module">
import { KplugClient, JsonRpcError } from "/kplug/static/kplug-client.js";
const token = new URLSearchParams(location.search).get("t");
const out = (window.results = { ticks: [], states: [] });
try {
  const p = new KplugClient({ plugin: "p", token, onConnection: (s) => out.states.push(s) });
  p.on("tick", (i, label) => out.ticks.push([i, label]));
  const done = new Promise((resolve) => p.on("done", (...args) => resolve(args.length)));
  await p.opened();
  out.echo = await p.call("echo", "hi");
  out.echoObject = await p.call("echo", { a: [1, 2] });
  out.shout = await p.call("shout", 3);
  out.doneArgs = await done;
  try { await p.call("boom"); } catch (e) {
    out.boom = { isJsonRpcError: e instanceof JsonRpcError, code: e.code, data: e.data };
  }
  try { await p.call("nope"); } catch (e) { out.nope = { code: e.code, message: e.rpcMessage }; }
  out.notify = (await p.notify("echo", 1)) === undefined;
  out.batch = await p.batch({ method: "echo", params: ["a"], id: 1 },
                            { method: "echo", params: ["b"], notification: true }, { method: "nope", id: 2 });
  out.batchOfNotifications = await p.batch({ method: "echo", notification: true });
  window.ready = true;  // the test loads plugin "late" now; this call is retried until it answers
  out.late = await new KplugClient({ plugin: "late", token }).call("ping");
  const unauth = new KplugClient({ plugin: "p", maxRetries: 0 });
  try { await unauth.call("echo", 1); } catch (e) { out.unauthenticated = [e.name, e.status]; }
  p.close();
} catch (e) {
  out.failure = String(e && e.stack || e);
}
window.finished = true;
</script></body></html>
"""


PageHandler = html_page(PAGE)


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    host.plugin("p", PLUGIN)
    await host.start()
    s = Server(host)
    yield s
    await s.close()


async def test_page_calls_a_plugin_and_receives_broadcasts_through_kplug_client_js(
        server: Server, host: Host) -> None:
    app = server._server.request_callback
    assert isinstance(app, tornado.web.Application)
    app.add_handlers(r".*", [(r"/test-page", PageHandler)])
    host.plugin("late", "siyuan.rpc.bind('ping', () => 'pong, finally');")
    console: list[str] = []
    with captured_logs("kplug_lab.access") as records:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = await browser.new_page()
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
                await page.goto(f"{server.url}/test-page?t={TOKEN}")
                await page.wait_for_function("window.ready === true || window.finished === true", timeout=30_000)
                await asyncio.sleep(0.3)  # a few -32001 answers and retries happen meanwhile
                assert host.manager is not None
                await host.manager.load(str(host.root / "late"))
                await page.wait_for_function("window.finished === true", timeout=30_000)
                results: dict[str, Any] = await page.evaluate("window.results")
            finally:
                await browser.close()
    assert "failure" not in results, (results.get("failure"), console)
    assert results["echo"] == "hi" and results["echoObject"] == {"a": [1, 2]}
    assert results["shout"] == 3
    assert results["ticks"] == [[0, "t0"], [1, "t1"], [2, "t2"]]
    assert results["doneArgs"] == 1  # params absent: the handler gets one undefined argument, as in SiYuan
    assert results["states"][:2] == ["connecting", "open"]
    assert results["boom"]["isJsonRpcError"] and results["boom"]["code"] == -32603
    assert results["boom"]["data"].startswith('error invoking method "boom": Error: kaboom')
    assert results["nope"] == {"code": -32601, "message": "Method not found"}
    assert results["notify"] is True
    assert results["batch"] == [
        {"jsonrpc": "2.0", "result": "a", "id": 1},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found",
                                     "data": "method [nope] not found in plugin [p]"}, "id": 2},
    ]
    assert results["batchOfNotifications"] is None  # undefined on 204
    assert results["late"] == "pong, finally"
    assert results["unauthenticated"] == ["HttpError", 401]
    # the client's WebSocket carried its token as a subprotocol, never in the URL the access log writes
    access = [r.getMessage() for r in records if r.name == "kplug_lab.access"]
    sockets = [line for line in access if "/ws/plugin/rpc/" in line]
    assert sockets and not [line for line in sockets if "token" in line], sockets
    # the browser logs the favicon 404 and the deliberate 401 itself; nothing else may go wrong
    assert not [c for c in console if c.startswith(("error", "pageerror")) and "Failed to load resource" not in c], \
        console


async def test_client_script_is_served_publicly_as_javascript(server: Server) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as anon:
        r = await anon.get("/kplug/static/kplug-client.js")
    assert r.status_code == 200 and "javascript" in r.headers["Content-Type"]
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "export class KplugClient" in r.text
