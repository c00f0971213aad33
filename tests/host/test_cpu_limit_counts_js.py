"""A plugin's CPU limit counts its JavaScript, not the host's work (issue 11 item 3): a durable write that waits
on a locked SQLite database for longer than the limit succeeds, and the plugin keeps running without a restart;
a busy loop in JavaScript still ends in the CPU-limit error, and the plugin keeps running too."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from kplug_testing import Host, wait_for

from kplug_lab.errors import KplugError
from kplug_lab.host.api import PluginState

PLUGIN = """
siyuan.rpc.bind("save", async (value) => {
  console.log("saving");
  await kplug.kv.set("k", value);
  return await kplug.kv.get("k");
});
siyuan.rpc.bind("spin", () => { const end = Date.now() + 2000; while (Date.now() < end) {} return "finished"; });
siyuan.rpc.bind("ping", () => "pong");
"""


async def test_a_write_blocked_longer_than_the_cpu_limit_succeeds_and_a_busy_loop_still_fails(host: Host) -> None:
    host.plugin("saver", PLUGIN)
    m = await host.start(cpu_limit=0.2)  # hard limit 0.4 s
    plugin = m.plugins["saver"]
    vm = plugin.vm
    states: list[PluginState] = []
    m.subscribe_states(lambda name, s: states.append(s))
    assert await m.call("saver", "save", [1]) == 1

    # another process's transaction holds the database: the plugin's write waits in SQLite's busy handler
    other = sqlite3.connect(str(m.durable.path), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        call = asyncio.ensure_future(m.call("saver", "save", [2]))
        await wait_for(lambda: sum("saving" in r.message for r in plugin.logs) == 2,
                       what="the plugin to start its write")
        await asyncio.sleep(0.6)  # the lock held past both limits: the slow host operation under test
    finally:
        other.execute("COMMIT")
        other.close()
    assert await call == 2
    assert time.monotonic() - start >= 0.6

    # JavaScript computation is still limited (2 s of busy loop, ten times the limit)
    try:
        await m.call("saver", "spin")
    except KplugError as exc:
        assert "CPU limit" in str(exc), str(exc)
    else:
        raise AssertionError("the busy loop was not stopped")

    assert await m.call("saver", "ping") == "pong"
    assert plugin.state == PluginState.RUNNING and plugin.vm is vm and vm.crashed is None
    assert PluginState.ERROR not in states, "the plugin was restarted"
