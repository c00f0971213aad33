"""Health at a glance: the host's numbers (``kplug.stats``), ``%kplug top`` and the inspector's charts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from kplug_testing import write_plugin

from kplug_lab.client import CallFailed, Client
from kplug_lab.host.runtime.stats import percentile
from kplug_lab.notebook._health import Top, render_charts_png, top_text
from kplug_lab.notebook._inspector import Inspector
from kplug_lab.notebook._process import ServerProcess

GROW = """
let kept = [];
siyuan.rpc.bind("grow", (n) => { kept.push(new Array(n).fill("x".repeat(64)).join("")); return kept.length; });
siyuan.rpc.bind("spin", (ms) => { const end = Date.now() + ms; let i = 0; while (Date.now() < end) i++; return i; });
siyuan.rpc.bind("boom", () => { throw new Error("boom"); });
"""


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


def entry(client: Client, name: str) -> dict[str, Any]:
    return next(p for p in client.stats() if p["name"] == name)


def test_percentile_uses_the_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99)) == (50.0, 90.0, 99.0)
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.99) == 3.0


def test_stats_count_calls_and_errors_per_method_and_memory_grows(client: Client, tmp_path: Path) -> None:
    client.load(str(write_plugin(tmp_path, "health-grow", GROW)))
    before = entry(client, "health-grow")
    assert before["state"] == "running"
    assert before["memory"]["limit"] > before["memory"]["used"] > 0
    assert before["calls"]["calls"] == 0

    for _ in range(3):
        client.call("health-grow", "grow", 20000)
    with pytest.raises(CallFailed):
        client.call("health-grow", "boom")
    client.call("health-grow", "spin", 50)

    after = entry(client, "health-grow")
    methods = after["calls"]["methods"]
    assert methods["grow"]["calls"] == 3 and methods["grow"]["errors"] == 0
    assert methods["boom"]["calls"] == 1 and methods["boom"]["errors"] == 1
    assert after["calls"]["calls"] == 5 and after["calls"]["errors"] == 1
    assert after["calls"]["perSecond"] > 0
    assert methods["spin"]["p50"] >= 40.0  # milliseconds (Date.now is coarse), measured by the host around the call
    assert after["memory"]["used"] > before["memory"]["used"] + 3 * 20000 * 64 // 2
    if after["cpu"]["seconds"] is not None:  # platforms without a per-thread CPU clock report none
        assert after["cpu"]["seconds"] >= 0.04


def test_reload_is_counted_and_numbers_survive_it(client: Client, tmp_path: Path) -> None:
    client.load(str(write_plugin(tmp_path, "health-reload", GROW)))
    client.call("health-reload", "grow", 10)
    client.reload("health-reload")
    after = entry(client, "health-reload")
    assert after["reloads"] == 1 and after["restarts"] == 0
    assert after["calls"]["methods"]["grow"]["calls"] == 1


def test_top_once_is_a_table_of_every_plugin(connected: InteractiveShell) -> None:
    out = connected.run_line_magic("kplug", "top --once")
    lines = out.text().splitlines()
    assert lines[0].split()[:3] == ["plugin", "state", "memory"]
    names = {line.split()[0] for line in lines[1:]}
    assert {"hello", "counter", "heartbeat"} <= names


def test_top_refreshes_in_place_with_new_call_counts(connected: InteractiveShell, server: ServerProcess) -> None:
    top = connected.run_line_magic("kplug", "top --interval 0.1")
    try:
        assert isinstance(top, Top)
        bundle = top._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle and "hello" in bundle["text/plain"]
        calls_before = next(p for p in top.stats if p["name"] == "hello")["calls"]["calls"]
        with Client(server.url, server.token) as other:
            other.call("hello", "echo", 1)
        _eventually(lambda: next(p for p in top.stats if p["name"] == "hello")["calls"]["calls"] > calls_before)
        assert "hello" in top.html.value
    finally:
        connected.run_line_magic("kplug", "disconnect")
    assert top._thread is not None and not top._thread.is_alive()


def test_inspector_draws_charts_of_the_selected_plugin(client: Client) -> None:
    with closing(Inspector(client, select="hello", live=False)) as ins:
        client.call("hello", "echo", "x")
        ins.refresh_stats()
        assert ins.charts.name == "hello" and len(ins.charts.points) == 2
        assert ins.charts.png().startswith(b"\x89PNG")


def test_charts_render_without_points_and_with_unknown_numbers() -> None:
    assert render_charts_png("none", []).startswith(b"\x89PNG")
    point = {"name": "p", "memory": {"used": None, "limit": 1}, "cpu": {"perSecond": None},
             "calls": {"perSecond": 0, "errors": 0, "methods": {}}}
    assert render_charts_png("p", [(0.0, point)]).startswith(b"\x89PNG")
    assert top_text([]) == "no plugins"


def _eventually(check: Any, timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
