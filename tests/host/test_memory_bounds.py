"""Host memory is bounded per plugin, in bytes (issue 11 item 2): whatever a plugin logs, broadcasts or pushes to a
client that reads nothing, the process grows by less than 256 MiB, the slow client is cut off, and a well-behaved
plugin beside it keeps answering. Measured as the growth of this process's resident set (the host runs in it)."""

from __future__ import annotations

import asyncio
import os

import pytest
from kplug_testing import Host

from kplug_lab.host.runtime.api import LogRecord
from kplug_lab.host.runtime.bounds import ByteBudget, LogBuffer, clip_text
from kplug_lab.host.runtime.manager import PluginManager

MiB = 1024 * 1024
BOUND = 256 * MiB

CALM = 'siyuan.rpc.bind("ping", () => "pong");'

LOGGER = """
const line = (n) => "x".repeat(n * 1048576);
siyuan.rpc.bind("flood", (mib, times) => {
  const text = line(mib);
  for (let i = 0; i < times; i++) {
    siyuan.logger.info(text);
    console.log(text);
  }
  return times * 2 * mib;
});
"""

def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def pings(m: PluginManager, until: asyncio.Future[object]) -> int:
    """Call the calm plugin until ``until`` is done; how many answers came (each must be "pong")."""
    answered = 0
    while not until.done() or answered == 0:
        assert await m.call("calm", "ping") == "pong"
        answered += 1
    return answered


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="measures RSS through /proc")
async def test_800_mib_of_log_lines_grow_the_host_by_less_than_256_mib_and_a_neighbour_keeps_answering(
        host: Host) -> None:
    host.plugin("calm", CALM)
    host.plugin("noisy", LOGGER)
    m = await host.start(call_timeout=600, cpu_limit=120)  # formatting 800 MiB takes the plugin a while
    assert await m.call("noisy", "flood", [1, 1]) == 2  # warm: the first line crosses whole
    before = rss()
    flood = asyncio.ensure_future(m.call("noisy", "flood", [4, 100]))
    answered = await pings(m, flood)
    assert await flood == 800
    grown = rss() - before
    assert grown < BOUND, f"the host grew by {grown / MiB:.0f} MiB for 800 MiB of log lines"
    assert answered >= 1

    plugin = m.plugins["noisy"]
    assert plugin.logs.size <= m.config.log_buffer_bytes
    kept = [r.message for r in plugin.logs]
    assert kept and all(len(line.encode()) <= m.config.log_line_max + 64 for line in kept)
    assert kept[-1].endswith("… [truncated 3.9 MiB]"), kept[-1][-60:]  # 4 MiB less the 64 KiB kept


def test_clip_text_cuts_on_a_character_boundary_and_says_how_much() -> None:
    assert clip_text("short", 10) == "short"
    clipped = clip_text("é" * 100, 11)
    assert clipped.startswith("é" * 5) and clipped.endswith("… [truncated 190 B]")
    assert clip_text("x" * (5 * 1024 * 1024), 1024).endswith("… [truncated 5.0 MiB]")


def test_the_kept_log_is_bounded_in_bytes_and_in_lines() -> None:
    buf = LogBuffer(max_lines=100, max_bytes=1000)
    for i in range(50):
        buf.append(LogRecord("p", "info", f"{i:03d}" + "x" * 97, 0.0))
    assert buf.size <= 1000 and len(buf) == 10 and next(iter(buf)).message.startswith("040")
    for _ in range(200):
        buf.append(LogRecord("p", "info", "", 0.0))
    assert len(buf) == 100


def test_a_byte_budget_refuses_past_its_limit_and_takes_again_once_given_back() -> None:
    budget = ByteBudget(100)
    assert budget.take(60) and not budget.take(50)
    budget.give(60)
    assert budget.take(500)  # one message at a time always passes: it is bounded where it was made
    assert not budget.take(1)
