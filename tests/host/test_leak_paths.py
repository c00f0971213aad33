"""No crash or leak paths (issue 11 item 5): a VM whose stop timed out is freed once its job ends; a plugin's thread
outlives an error from its inbox and reports it; methods and tools a plugin changes on its thread are listed on
the loop without "dictionary changed size during iteration"."""

from __future__ import annotations

import asyncio
from typing import Any

from kplug_testing import Host, wait_for

from kplug_lab.host.runtime.actor import Actor
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.sandbox import live_vm_count

STUCK_UNLOAD = """
siyuan.plugin.lifecycle.onunload = () => { while (true) {} };  // busy until its CPU limit
siyuan.rpc.bind("ping", () => "pong");
"""

CHURN = """
for (let i = 0; i < 1000; i++) siyuan.rpc.bind("base" + i, () => i);
const schema = { type: "object" };
siyuan.rpc.bind("churn", async (rounds) => {
  for (let i = 0; i < rounds; i++) {
    siyuan.rpc.bind("m" + (i % 50), () => i);
    siyuan.rpc.unbind("m" + ((i + 25) % 50));
    siyuan.mcp.registerTool("t" + (i % 50), { description: "d", inputSchema: schema }, () => i);
    siyuan.mcp.unregisterTool("t" + ((i + 25) % 50));
  }
  return rounds;
});
"""


async def test_three_reloads_with_a_busy_onunload_leave_exactly_one_live_vm(host: Host) -> None:
    baseline = live_vm_count()
    host.plugin("stuck", STUCK_UNLOAD)
    # the onunload busy loop outlives the hook timeout and the 2 s the stop waits for the thread: the stop times out
    m = await host.start(cpu_limit=3.0, hook_timeout=0.2)
    assert live_vm_count() == baseline + 1
    for _ in range(3):
        info = await m.reload("stuck")
        assert info.state == PluginState.RUNNING
        assert await m.call("stuck", "ping") == "pong"
    # each stuck onunload ends at its CPU limit; then its thread closes the VM it was stuck in
    await wait_for(lambda: live_vm_count() == baseline + 1, timeout=120, what="the stuck VMs to be closed")
    assert await m.call("stuck", "ping") == "pong"


def test_the_plugin_thread_survives_an_error_from_its_inbox_and_reports_it() -> None:
    reported: list[str] = []
    actor = Actor("inbox", lambda _timer: None, on_error=reported.append)
    inbox: Any = actor._queue
    real_get = inbox.get
    failures = [RuntimeError("the inbox broke")]

    def broken_get(timeout: float | None = None) -> Any:
        if failures:
            raise failures.pop()
        return real_get(timeout)

    inbox.get = broken_get
    try:
        # the thread sleeps in the real get: this job wakes it, and its next wait meets the broken one
        assert actor.submit(lambda: 1).result(timeout=30) == 1
        assert actor.submit(lambda: 2).result(timeout=30) == 2
        assert not failures
        assert len(reported) == 1 and "RuntimeError: the inbox broke" in reported[0], reported
        assert actor.thread.is_alive()
    finally:
        assert actor.stop(10)


async def test_methods_and_tools_are_listed_on_the_loop_while_the_plugin_changes_them(host: Host) -> None:
    host.plugin("churn", CHURN)
    m = await host.start(cpu_limit=60, call_timeout=600)
    churn = asyncio.ensure_future(m.call("churn", "churn", [4000]))
    listed = 0
    while not churn.done():
        info = m.get_plugin("churn")
        assert info is not None and len(info.methods) >= 1000
        m.list_plugins()
        m.tools()
        listed += 1
        await asyncio.sleep(0)
    assert await churn == 4000
    assert listed > 0
