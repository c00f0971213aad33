"""``%kplug bench``: percentiles and a histogram for one method, over HTTP and WebSocket."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from kplug_lab.client import Client, MethodNotFoundError
from kplug_lab.notebook._bench import BenchResult
from kplug_lab.notebook._magics import split_options
from kplug_lab.notebook._process import ServerProcess


def test_options_are_split_from_json_arguments_with_their_quotes_kept() -> None:
    assert split_options('hello.echo "a b" {"k": [1, -2]} -n 5 --ws -3') == \
        ('hello.echo "a b" {"k": [1, -2]} -3', ["-n", "5", "--ws"])
    assert split_options("-c 2 counter.get --warmup 0") == ("counter.get", ["-c", "2", "--warmup", "0"])


def echo_calls(server: ServerProcess) -> int:
    with Client(server.url, server.token) as c:
        entry = next(p for p in c.stats() if p["name"] == "hello")
    return int(entry["calls"]["methods"].get("echo", {}).get("calls", 0))


@pytest.mark.parametrize("transport", ["", "--ws"])
def test_bench_makes_exactly_the_calls_asked_for_and_reports_percentiles(
        connected: InteractiveShell, server: ServerProcess, transport: str) -> None:
    before = echo_calls(server)
    line = f'bench hello.echo "hi there" -n 30 --concurrency 3 --warmup 2 {transport}'
    result = connected.run_line_magic("kplug", line)
    assert isinstance(result, BenchResult)
    assert result.transport == ("ws" if transport else "http")
    assert result.calls == 30 and not result.errors and len(result.latencies) == 30
    p50, p90, p99 = (result.quantile_ms(q) for q in (0.5, 0.9, 0.99))
    assert p50 is not None and p90 is not None and p99 is not None and 0 < p50 <= p90 <= p99
    assert sum(count for _, _, count in result.histogram()) == 30
    # one probe call, 2 warm-up calls per worker, then the 30 measured ones: the host counted each
    assert echo_calls(server) - before == 1 + 3 * 2 + 30
    text = result.text()
    assert text.startswith("hello.echo over ") and "p99" in text
    bundle = result._repr_mimebundle_()
    assert bundle["text/plain"] == text and bundle["image/png"]


def test_bench_reports_a_wrong_method_once_and_wrong_usage(connected: InteractiveShell) -> None:
    with pytest.raises(MethodNotFoundError):
        connected.run_line_magic("kplug", "bench hello.nope -n 5")
    with pytest.raises(UsageError, match=r"NAME\.METHOD"):
        connected.run_line_magic("kplug", "bench hello -n 5")
    with pytest.raises(UsageError, match="at least 1"):
        connected.run_line_magic("kplug", "bench hello.echo 1 -n 0")
    assert "--concurrency" in connected.run_line_magic("kplug", "bench --help").text()
