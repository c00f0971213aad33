"""``kplug.stats`` as the host measures it: calls and errors per method, restarts after a crash, memory from the VM."""

from __future__ import annotations

from typing import Any

import pytest
from kplug_testing import Host, wait_for

from kplug_lab.errors import MethodNotFound, PluginNotLoaded
from kplug_lab.host.runtime.api import PluginState


def entry(stats: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(p for p in stats if p["name"] == name)


async def test_a_crash_counts_as_an_error_and_a_restart_and_the_numbers_survive_it(host: Host) -> None:
    host.plugin("crashy", """
        let kept = [];
        siyuan.rpc.bind("keep", (n) => { kept.push("y".repeat(n)); return kept.length; });
        siyuan.rpc.bind("crash", () => {
          let o = {}, x = o; for (let i = 0; i < 100000; i++) { x.a = {}; x = x.a; }
          return JSON.stringify(o).length;
        });
    """)
    m = await host.start(restart_initial=0.05)
    small = entry(await m.plugin_stats(), "crashy")
    await m.call("crashy", "keep", [1_000_000])
    grown = entry(await m.plugin_stats(), "crashy")
    assert grown["memory"]["used"] >= small["memory"]["used"] + 1_000_000

    with pytest.raises(Exception, match="crashed"):
        await m.call("crashy", "crash")
    await wait_for(lambda: host.state("crashy") == PluginState.RUNNING and m.plugins["crashy"].vm is not None
                   and m.stats.of("crashy").restarts == 1, what="the restart")
    after = entry(await m.plugin_stats(), "crashy")
    assert after["restarts"] == 1 and after["reloads"] == 0
    calls = after["calls"]
    assert calls["calls"] == 2 and calls["errors"] == 1
    assert calls["methods"]["crash"]["errors"] == 1
    assert after["memory"]["used"] < grown["memory"]["used"]  # a fresh VM


async def test_calls_to_unknown_plugins_or_methods_are_not_counted(host: Host) -> None:
    host.plugin("tiny", 'siyuan.rpc.bind("one", () => 1);')
    m = await host.start()
    with pytest.raises(MethodNotFound):
        await m.call("tiny", "nope")
    with pytest.raises(PluginNotLoaded):
        await m.call("nobody", "one")
    assert [p["name"] for p in await m.plugin_stats()] == ["tiny"]
    assert entry(await m.plugin_stats(), "tiny")["calls"]["methods"] == {}
