"""Cross-origin calls in a real browser (headless Debian Chromium via playwright): a page on one origin (standing
in for SiYuan's frontend) imports kplug-client.js from a standalone server on another port and calls a plugin
(preflight, call, broadcast over the WebSocket) when the server allows that origin, and is refused otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.httpserver
import tornado.web
from kplug_testing import CHROMIUM, CHROMIUM_ARGS, Host, free_port, require_chromium
from rpc_server import TOKEN, Server, html_page

require_chromium()  # before playwright is imported: a missing browser skips here, fails on CI

from playwright.async_api import async_playwright  # noqa: E402 - after the browser check, on purpose

PLUGIN = """
siyuan.rpc.bind("echo", (x) => x);
siyuan.rpc.bind("shout", async () => { await siyuan.rpc.broadcast("tick", [1]); return "shouted"; });
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cross-origin kplug-client</title></head><body>
<script type="module">
const params = new URLSearchParams(location.search);
const kplug = params.get("kplug"), token = params.get("t");
const out = (window.results = {});
try {
  const { KplugClient } = await import(`${kplug}/kplug/static/kplug-client.js`);
  const p = new KplugClient({ plugin: "p", baseUrl: kplug, token, maxRetries: 0 });
  try {
    out.echo = await p.call("echo", "from another origin");
  } catch (e) {
    out.callError = e.name + ": " + e.message;
  }
  if (params.get("socket")) {
    const tick = new Promise((resolve) => p.on("tick", (n) => resolve(n)));
    await p.opened();
    out.shout = await p.call("shout");
    out.tick = await tick;
  }
  p.close();
} catch (e) {
  out.failure = String(e && e.stack || e);
}
window.finished = true;
</script></body></html>
"""


PageHandler = html_page(PAGE)


@pytest.fixture
async def page_origin() -> AsyncIterator[str]:
    """A second server, on its own port (so its own origin), serving only the page."""
    port = free_port()
    server: tornado.httpserver.HTTPServer = tornado.web.Application([(r"/page", PageHandler)]).listen(
        port, address="127.0.0.1")
    yield f"http://127.0.0.1:{port}"
    server.stop()
    await server.close_all_connections()


async def open_page(page_origin: str, kplug: Server, socket: bool) -> dict[str, Any]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            query = f"kplug={kplug.url}&t={TOKEN}" + ("&socket=1" if socket else "")
            await page.goto(f"{page_origin}/page?{query}")
            await page.wait_for_function("window.finished === true", timeout=30_000)
            results: dict[str, Any] = await page.evaluate("window.results")
        finally:
            await browser.close()
    return results


async def test_a_page_on_an_allowed_origin_calls_the_plugin(host: Host, page_origin: str) -> None:
    host.plugin("p", PLUGIN)
    await host.start()
    kplug = Server(host, allow_origins=[page_origin])
    try:
        results = await open_page(page_origin, kplug, socket=True)
    finally:
        await kplug.close()
    assert "failure" not in results and "callError" not in results, results
    assert results["echo"] == "from another origin"
    assert results["shout"] == "shouted" and results["tick"] == 1


async def test_a_page_on_another_origin_is_refused_by_the_browser(host: Host, page_origin: str) -> None:
    host.plugin("p", PLUGIN)
    await host.start()
    kplug = Server(host)  # no --allow-origin: same-origin only
    try:
        results = await open_page(page_origin, kplug, socket=False)
    finally:
        await kplug.close()
    assert "failure" not in results, results
    assert "echo" not in results
    assert results["callError"].startswith("TypeError")  # fetch fails: the preflight was refused
