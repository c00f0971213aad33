"""Smoke test of bench/engine.py: it runs and reports every metric with its target (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

from kplug_testing import run_benchmark

METRICS = {
    "cached_module_load_ms", "new_vm_ms", "eval_trivial_us", "host_to_js_call_us", "js_to_host_call_us",
    "fib27_ms", "fib27_native_ms", "json_100kb_roundtrip_ms", "rss_per_idle_vm_mb",
}
TARGETED = {"cached_module_load_ms", "new_vm_ms", "host_to_js_call_us", "js_to_host_call_us", "fib27_ms",
            "rss_per_idle_vm_mb"}


def test_quick_engine_benchmark_writes_every_metric_and_target(tmp_path: Path) -> None:
    table, result = run_benchmark("engine.py", tmp_path / "engine.json", timeout=120)
    assert set(result["metrics"]) >= METRICS
    assert all(value > 0 for value in result["metrics"].values())
    assert set(result["targets"]) == TARGETED == set(result["passed"])
    assert result["targets"]["fib27_ms"]["baseline"] == "fib27_native_ms"
    assert all(isinstance(ok, bool) for ok in result["passed"].values())
    for name in METRICS:
        assert name in table
