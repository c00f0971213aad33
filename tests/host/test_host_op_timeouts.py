"""Host operations have their own timeouts with their own clear errors (issue 11 item 3): a durable operation that
cannot get the store's lock in time fails in JavaScript with "the durable store is busy", instead of waiting for
SQLite's default, and the plugin keeps running."""

from __future__ import annotations

import sqlite3

from kplug_testing import Host

from kplug_lab.host.api import PluginState

PLUGIN = """
siyuan.rpc.bind("save", async (value) => {
  try { await kplug.kv.set("k", value); return "saved"; } catch (e) { return `${e.name}: ${e.message}`; }
});
siyuan.rpc.bind("ping", () => "pong");
"""


async def test_a_durable_op_on_a_locked_store_fails_in_js_with_a_clear_error_within_its_timeout(host: Host) -> None:
    host.plugin("saver", PLUGIN)
    m = await host.start(durable_busy_timeout=0.5)
    assert await m.call("saver", "save", [1]) == "saved"
    other = sqlite3.connect(str(m.durable.path), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another connection holds the database
    try:
        answer = await m.call("saver", "save", [2])
    finally:
        other.execute("COMMIT")
        other.close()
    assert "the durable store is busy (locked by another connection) for 0.5 s" in answer, answer
    assert await m.call("saver", "save", [3]) == "saved"
    assert await m.call("saver", "ping") == "pong"
    assert m.plugins["saver"].state == PluginState.RUNNING


async def test_the_busy_timeout_never_exceeds_the_call_timeout(host: Host) -> None:
    host.plugin("saver", PLUGIN)
    m = await host.start(durable_busy_timeout=60, call_timeout=3)
    assert m.durable.busy_timeout == 3
    row = m.durable._db.execute("PRAGMA busy_timeout").fetchone()
    assert row[0] == 3000
