"""Hostile plugins are contained while a well-behaved plugin keeps answering."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kplug_testing import Host, wait_for

from kplug_lab.errors import KplugError
from kplug_lab.host.api import PluginState

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
    await host.start(cpu_limit=0.3, memory_limit=32 * 1024 * 1024, siyuan_url="http://127.0.0.1:9")
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


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from kplug_lab.host.storage import Storage
    s = Storage(Path(sys.argv[1]))
    i = 0
    while True:
        i += 1
        for name in ("a.json", "b.json"):
            s.put(name, (str(i) * 20000).encode())
        print(i, flush=True)
""")


def test_a_writer_killed_mid_put_leaves_old_or_new_content(tmp_path: Path) -> None:
    root = tmp_path / "store"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.05 + 0.03 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for name in ("a.json", "b.json"):
            data = (root / name).read_bytes()
            assert len(data) >= 20000, f"{name} is torn: {len(data)} bytes"
            unit = data[: len(data) // 20000]
            assert data == unit * 20000, f"{name} mixes two versions"


async def test_plugin_state_after_hostility_is_still_running(pair: Host) -> None:
    m = pair.manager
    assert m is not None
    await expect_error(m.call("evil", "loop"), "CPU limit")
    assert pair.state("evil") == PluginState.RUNNING
