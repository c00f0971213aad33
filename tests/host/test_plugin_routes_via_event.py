"""A plugin's ``siyuan.client.event`` to another plugin's private SSE route (``/plugin/private/<name>/...``) is
answered by kplug_lab's own host, in-process, by that plugin's ``siyuan.server.private.es`` handler, as SiYuan's
kernel answers it for its own plugins (changes §5): events (names, ids, multi-line data) arrive as over the wire,
the caller's ``close()`` runs the handler's ``onclose``, the handler's ``close()`` and its plugin stopping end the
subscription. It never dials the kernel at ``siyuan_url``."""

from __future__ import annotations

import asyncio
from typing import Any

from kplug_testing import Host

from kplug_lab.host.runtime.api import PluginState

FEED = """
const log = [];
let port = null;
siyuan.rpc.bind("log", () => log);
siyuan.rpc.bind("push", (data, event, id) => { port.send({ data, event, id }); return true; });
siyuan.rpc.bind("end", () => { port.close(); return true; });
siyuan.server.private.es.handler = (req) => {
  if (req.context.path === "/broken") throw new Error("no feed here");
  port = req.port;
  log.push("request " + req.context.path + " " + req.url.query.topic + " " + req.request.headers.Accept);
  port.onclose = () => log.push("onclose");
  port.send({ data: "hello" });
};
"""

READER = """
const seen = [];
let es = null;
siyuan.rpc.bind("seen", () => seen);
siyuan.rpc.bind("listen", async (path) => {
  es = await siyuan.client.event(path);
  es.onopen = () => seen.push("open");
  es.onmessage = (ev) => seen.push([ev.type, ev.data, ev.lastEventId]);
  es.onerror = (ev) => seen.push("error " + ev.error.message);
  es.onclose = () => seen.push("close");
  return true;
});
siyuan.rpc.bind("stop", () => { es.close(); return true; });
"""


async def start(host: Host) -> Any:
    host.plugin("feed", FEED)
    host.plugin("reader", READER)
    m = await host.start(siyuan_url="http://127.0.0.1:9")  # no kernel there: the subscription must not dial it
    for name in ("feed", "reader"):
        info = m.get_plugin(name)
        assert info is not None and info.state == PluginState.RUNNING
    return m


async def test_a_subscription_to_a_private_sse_route_reaches_that_plugins_es_handler(host: Host) -> None:
    m = await start(host)
    assert await m.call("reader", "listen", ["/plugin/private/feed/live?topic=news"]) is True
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: s == ["open", ["message", "hello", ""]])
    assert await m.call("feed", "log") == ["request /live news text/event-stream"]

    await m.call("feed", "push", ["line 1\nline 2", "update", "7"])
    await m.call("feed", "push", ["after", None, None])
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: len(s) == 4)
    assert (await m.call("reader", "seen"))[2:] == [["update", "line 1\nline 2", "7"], ["message", "after", "7"]]

    await m.call("feed", "end")  # the handler ends the stream: the subscription closes, the handler hears onclose
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: s[-1] == "close")
    await wait_for_async(lambda: m.call("feed", "log"), lambda s: s[-1] == "onclose")


async def test_the_callers_close_runs_the_handlers_onclose(host: Host) -> None:
    m = await start(host)
    await m.call("reader", "listen", ["/plugin/private/feed/live"])
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: len(s) == 2)
    await m.call("reader", "stop")
    await wait_for_async(lambda: m.call("feed", "log"), lambda s: s[-1:] == ["onclose"])
    assert (await m.call("reader", "seen"))[-1] == "close"


async def test_the_subscription_closes_when_the_serving_plugin_stops(host: Host) -> None:
    m = await start(host)
    await m.call("reader", "listen", ["/plugin/private/feed/live"])
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: len(s) == 2)
    await m.unload("feed")
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: s[-1] == "close")
    assert not any(str(e).startswith("error") for e in await m.call("reader", "seen"))


async def test_a_plugin_not_loaded_or_a_failing_handler_fails_like_the_wire(host: Host) -> None:
    m = await start(host)
    await m.call("reader", "listen", ["/plugin/private/nobody/live"])
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: s[-1:] == ["close"])
    [error, _] = await m.call("reader", "seen")
    assert error == "error GET http://127.0.0.1:9/plugin/private/nobody/live: unexpected status 404 Not Found"

    await m.call("reader", "listen", ["/plugin/private/feed/broken"])
    await wait_for_async(lambda: m.call("reader", "seen"), lambda s: len(s) == 4)
    assert (await m.call("reader", "seen"))[2:] == [
        "error GET http://127.0.0.1:9/plugin/private/feed/broken: unexpected status 500 Internal Server Error",
        "close"]


async def wait_for_async(get: Any, check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await get()
        if check(value):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.02)
