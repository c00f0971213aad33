"""Smoke tests of bench/host.py and bench/durability.py: they run and report every metric the issues name, with
a verdict per target (no timing assertions: the verdicts themselves are the benchmarks' business)."""

from __future__ import annotations

from pathlib import Path

from kplug_testing import run_benchmark


def test_quick_host_benchmark_writes_every_metric_and_target(tmp_path: Path) -> None:
    table, result = run_benchmark("host.py", tmp_path / "host.json", timeout=240)
    assert set(result["metrics"]) >= {"cold_start_ms", "load_100_plugins_s", "storage_put_ms",
                                      "storage_put_baseline_ms", "storage_put_ratio", "storage_put_overhead_us",
                                      "storage_get_ms", "logger_call_us", "rss_per_running_plugin_mb"}
    assert set(result["passed"]) == {"cold_start_ms", "load_100_plugins_s", "storage_put_ratio", "storage_get_ms",
                                     "logger_call_us"}
    assert all(isinstance(ok, bool) for ok in result["passed"].values())
    assert result["metrics"]["storage_put_baseline_ms"] > 0 and "storage_put_ratio" in table


def test_quick_durability_benchmark_writes_every_metric_and_target(tmp_path: Path) -> None:
    table, result = run_benchmark("durability.py", tmp_path / "durability.json", timeout=240)
    assert set(result["metrics"]) >= {"queue_push_ms", "queue_push_baseline_ms", "kv_cas_ms", "takeover_ms"}
    assert set(result["passed"]) == {"queue_push_ratio", "takeover_ms"}
    assert all(isinstance(ok, bool) for ok in result["passed"].values())
    assert result["metrics"]["queue_push_baseline_ms"] > 0 and "takeover_ms" in table
