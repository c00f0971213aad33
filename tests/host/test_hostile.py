"""Hostile plugins are contained while a well-behaved plugin keeps answering."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kplug_testing import Host, wait_for, write_plugin

from kplug_lab.errors import KplugError
from kplug_lab.host.ops.storage import Storage
from kplug_lab.host.runtime.api import PluginState

HOSTILE = """
siyuan.rpc.bind("loop", () => { while (true) {} });
siyuan.rpc.bind("bomb", () => { const a = []; while (true) a.push({ n: a.length, s: "x".repeat(64) }); });
siyuan.rpc.bind("typed", () => { const a = []; while (true) a.push(new Uint8Array(1 << 20)); });
siyuan.rpc.bind("recurse", () => { const f = (n) => f(n + 1) + 1; return f(0); });
siyuan.rpc.bind("timerLoop", () => { setTimeout(() => { while (true) {} }, 0); return "armed"; });
siyuan.rpc.bind("flood", async () => { for (let i = 0; i < 5000; i++) siyuan.rpc.broadcast("spam", i); return 1; });
siyuan.rpc.bind("fetchOut", async (path) => {
  try { await siyuan.client.fetch(path); return "fetched"; } catch (e) { return e.name + ": " + e.message; }
});
siyuan.rpc.bind("alive", () => "yes");
"""


@pytest.fixture
async def pair(host: Host) -> Host:
    host.plugin("evil", HOSTILE)
    host.plugin("good", "siyuan.rpc.bind('ping', () => 'pong');")
    # The CPU limit is wall-clock time on the plugin's thread: 1 s leaves a memory bomb room to reach the 32 MB
    # limit first even on a loaded machine (it needs about 0.1 s of CPU).
    await host.start(cpu_limit=1.0, memory_limit=32 * 1024 * 1024, siyuan_url="http://127.0.0.1:9")
    return host


async def expect_error(coro: object, text: str) -> None:
    try:
        await coro  # type: ignore[misc]
    except KplugError as exc:
        assert text in str(exc), str(exc)
    else:
        raise AssertionError(f"expected an error containing {text!r}")


async def test_infinite_loop_in_a_method_is_stopped_and_others_keep_answering(pair: Host) -> None:
    m = pair.manager
    assert m is not None
    call = asyncio.ensure_future(m.call("evil", "loop"))
    assert await m.call("good", "ping") == "pong"  # answered while evil spins on its own thread
    await expect_error(call, "CPU limit")
    assert await m.call("evil", "alive") == "yes"


async def test_memory_bombs_and_recursion_fail_cleanly(pair: Host) -> None:
    m = pair.manager
    assert m is not None
    await expect_error(m.call("evil", "bomb"), "memory limit")
    await expect_error(m.call("evil", "typed"), "memory limit")
    await expect_error(m.call("evil", "recurse"), "RangeError")
    assert await m.call("evil", "alive") == "yes"
    assert await m.call("good", "ping") == "pong"


async def test_infinite_loop_in_a_timer_is_stopped(pair: Host) -> None:
    m = pair.manager
    assert m is not None
    assert await m.call("evil", "timerLoop") == "armed"
    await wait_for(lambda: any("timer callback was stopped" in r.message for r in m.plugins["evil"].logs),
                   what="timer stopped")
    assert await m.call("evil", "alive") == "yes"
    assert await m.call("good", "ping") == "pong"


async def test_client_fetch_cannot_leave_the_kernel(pair: Host) -> None:
    m = pair.manager
    assert m is not None
    out = await m.call("evil", "fetchOut", ["http://10.0.0.1/steal"])
    assert out == "GoError: path must start with /"
    out = await m.call("evil", "fetchOut", ["//10.0.0.1/steal"])
    assert out.startswith("GoError:")  # to the configured kernel (refused port), never to 10.0.0.1
    out = await m.call("evil", "fetchOut", ["/@10.0.0.1/x"])
    assert "only reaches the SiYuan kernel" in out


async def test_broadcast_flood_does_not_stop_other_plugins(pair: Host) -> None:
    m = pair.manager
    assert m is not None
    got: list[int] = []
    m.subscribe_broadcasts("evil", lambda method, p: got.append(p))
    assert await m.call("evil", "flood") == 1
    assert await m.call("good", "ping") == "pong"
    await wait_for(lambda: len(got) == 5000, what="all broadcasts")


WRITER_PLUGIN = """
siyuan.plugin.lifecycle.onrunning = () => {
  (async () => {
    for (let i = 1; ; i++) {
      for (const name of ["a.json", "b.json"]) {
        await siyuan.storage.put(name, JSON.stringify({ i, fill: String(i % 10).repeat(20000 + (i % 7) * 1000) }));
      }
    }
  })();
};
"""

WRITER_HOST = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from kplug_lab.host.runtime.config import HostConfig
    from kplug_lab.host.runtime.manager import PluginManager

    async def main():
        manager = PluginManager(HostConfig(data_dir=Path(sys.argv[2]), hot_reload=False),
                                plugins_dir=Path(sys.argv[1]))
        await manager.start()
        await asyncio.Event().wait()

    asyncio.run(main())
""")


def _complete(data: bytes) -> bool:
    doc = json.loads(data)
    return bool(doc["fill"] == str(doc["i"] % 10) * (20000 + (doc["i"] % 7) * 1000))


def test_a_host_killed_mid_put_leaves_old_or_new_content(tmp_path: Path) -> None:
    """SIGKILL a real host whose plugin writes in a loop, at random moments: files are never torn or empty."""
    write_plugin(tmp_path / "plugins", "writer", WRITER_PLUGIN)
    data_dir = tmp_path / "data"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    rng = random.Random()
    last_seen: dict[str, int] = {}
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER_HOST, str(tmp_path / "plugins"), str(data_dir)],
                                env=env)
        try:
            deadline = time.monotonic() + 60
            while not list(data_dir.glob("storage/writer/b.json")):
                assert time.monotonic() < deadline and proc.poll() is None, "the writer never wrote"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        root = data_dir / "storage" / "writer"
        for name in ("a.json", "b.json"):
            data = (root / name).read_bytes()
            assert data and _complete(data), f"{name} is torn ({len(data)} bytes)"
            last_seen[name] = json.loads(data)["i"]
    assert last_seen["a.json"] >= 1
    Storage(data_dir / "storage" / "writer")  # a new start drops what killed writers left behind
    assert sorted(p.name for p in (data_dir / "storage" / "writer").iterdir()) == ["a.json", "b.json"]


async def test_plugin_state_after_hostility_is_still_running(pair: Host) -> None:
    m = pair.manager
    assert m is not None
    await expect_error(m.call("evil", "loop"), "CPU limit")
    assert pair.state("evil") == PluginState.RUNNING


async def test_timer_floods_are_bounded_in_host_memory_and_timers_keep_working(host: Host) -> None:
    host.plugin("timers", """
        siyuan.rpc.bind("flood", () => {
          let n = 0;
          try { for (;;) { setTimeout(() => {}, 1e9); n++; } } catch (e) { return [n, String(e.message)]; }
        });
        siyuan.rpc.bind("churn", (k) => { for (let i = 0; i < k; i++) clearTimeout(setTimeout(() => {}, 1e9)); });
        siyuan.rpc.bind("soon", () => new Promise((resolve) => setTimeout(() => resolve("fired"), 10)));
    """)
    m = await host.start(cpu_limit=5.0)
    n, message = await m.call("timers", "flood")
    assert n == 10_000 and "too many timers" in message
    actor = m.plugins["timers"].actor
    assert actor is not None
    await m.reload("timers")
    await m.call("timers", "churn", [50_000])
    actor = m.plugins["timers"].actor
    assert actor is not None and len(actor._timers) < 5_000  # cleared timers do not pile up in the host
    assert await m.call("timers", "soon") == "fired"


async def test_a_flood_of_fetches_is_bounded_and_the_plugin_can_fetch_again(host: Host) -> None:
    from kplug_lab.testing import RecordingEndpoint

    host.plugin("fetcher", """
        siyuan.rpc.bind("flood", async (n) => {
          const all = [];
          for (let i = 0; i < n; i++) all.push(siyuan.client.fetch("/x").then(() => "ok", (e) => e.message));
          const outcomes = await Promise.all(all);
          return [outcomes.filter((o) => o === "ok").length, outcomes.find((o) => o !== "ok") || ""];
        });
    """)
    async with RecordingEndpoint() as endpoint:
        m = await host.start(siyuan_url=endpoint.url, cpu_limit=5.0, max_io_in_flight=40)
        ok, refused = await m.call("fetcher", "flood", [100], timeout=60)
        assert ok == 40 and "too many operations in flight: 40 are waiting" in refused
        assert await m.call("fetcher", "flood", [10], timeout=60) == [10, ""]


async def test_binding_methods_and_tools_without_end_is_refused_past_ten_thousand(host: Host) -> None:
    host.plugin("binder", """
        siyuan.rpc.bind("bindAll", async () => {
          for (let i = 0; ; i++) {
            try { await siyuan.rpc.bind("m" + i, () => i); } catch (e) { return [i, e.message]; }
          }
        });
        siyuan.rpc.bind("toolAll", async () => {
          for (let i = 0; ; i++) {
            try {
              await siyuan.mcp.registerTool("t" + i, { description: "d", inputSchema: { type: "object" } }, () => i);
            } catch (e) { return [i, e.message]; }
          }
        });
    """)
    m = await host.start(cpu_limit=20.0)
    n, message = await m.call("binder", "bindAll", timeout=60)
    assert n == 10_000 - 2 and "too many methods: 10000 are bound" in message  # bindAll and toolAll count too
    assert len(m.plugins["binder"].methods) == 10_000
    assert await m.call("binder", "m5") == 5
    n, message = await m.call("binder", "toolAll", timeout=60)
    assert n == 10_000 and "too many tools" in message
    assert len(m.tools()) == 10_000
