"""Benchmark the sandbox engine: module load, VM creation, boundary crossings, interpreter speed, memory.

Run ``python bench/engine.py --json OUT [--quick]``. Prints a table and writes ``{"metrics": {...},
"targets": {...}, "passed": {...}}``. Every figure is a median over repeated samples. The interpreter's speed
is compared with native QuickJS-NG (the PyPI ``quickjs`` binding from ``quickjs-ng``, the same engine version)
measured in the same run, so the ratio holds on a slow or loaded machine.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import time

import quickjs
from _common import Target, arg_parser, median_time, report, rss_kib, target_table, write_json

from kplug_lab.sandbox import VM, on_wasm_thread
from kplug_lab.sandbox._engine import load_module

FIB = "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }"
SMALL_ARG = {"id": 7, "name": "note", "tags": ["a", "b"], "done": False}
IDLE_VMS = 100

TARGETS = [
    Target("cached_module_load_ms", 5),
    Target("new_vm_ms", 2),
    Target("host_to_js_call_us", 20),
    Target("js_to_host_call_us", 25),
    Target("fib27_ms", 1.2, baseline="fib27_native_ms"),
    Target("rss_per_idle_vm_mb", 1),
]


def cached_module_load_ms(samples: int) -> float:
    """What a new process pays for the guest once the disk cache is warm: hash the wasm, deserialize."""
    load_module()  # makes sure the cache entry exists
    return 1e3 * median_time(load_module, samples=samples)


def new_vm_ms(samples: int) -> float:
    return 1e3 * median_time(lambda: VM().close(), samples=samples)


def handoff_call_us(samples: int, inner: int) -> float:
    """host_to_js_call_us from a thread without a big stack: each call is handed over to the wasm thread."""
    vm = VM()
    try:
        vm.eval("function echo(x) { return x; }")
        return 1e6 * median_time(lambda: vm.call("echo", SMALL_ARG), samples=samples, inner=inner)
    finally:
        vm.close()


def boundary_metrics(samples: int, inner: int) -> dict[str, float]:
    vm = VM()
    try:
        vm.eval("function echo(x) { return x; }")
        eval_us = 1e6 * median_time(lambda: vm.eval("1"), samples=samples, inner=inner)
        host_to_js_us = 1e6 * median_time(lambda: vm.call("echo", SMALL_ARG), samples=samples, inner=inner)

        vm.register("hostEcho", lambda x: x)
        vm.eval(f"const smallArg = {json.dumps(SMALL_ARG)};"
                "function callHost(n) { for (let i = 0; i < n; i++) hostEcho(smallArg); }")
        calls = inner * 10
        with_calls = median_time(lambda: vm.call("callHost", calls), samples=samples)
        without = median_time(lambda: vm.call("callHost", 0), samples=samples)
        js_to_host_us = 1e6 * max(with_calls - without, 0.0) / calls

        doc = {"rows": [{"id": i, "title": f"row {i}", "tags": ["x", "y"], "score": i / 7} for i in range(1250)]}
        assert 90_000 < len(json.dumps(doc)) < 110_000
        json_ms = 1e3 * median_time(lambda: vm.call("echo", doc), samples=samples)
        return {
            "eval_trivial_us": eval_us,
            "host_to_js_call_us": host_to_js_us,
            "js_to_host_call_us": js_to_host_us,
            "json_100kb_roundtrip_ms": json_ms,
        }
    finally:
        vm.close()


def fib_metrics(samples: int) -> dict[str, float]:
    """fib(27) in the sandbox and in native QuickJS-NG, sampled alternately so load changes hit both alike."""
    vm = VM(cpu_limit=60)
    native_ctx = quickjs.Context()
    try:
        vm.eval(FIB)
        native_ctx.eval(FIB)
        runs = {"fib27_ms": lambda: vm.eval("fib(27)"), "fib27_native_ms": lambda: native_ctx.eval("fib(27)")}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run_once in runs.values():
            run_once()  # warm up
        for _ in range(samples):
            for name, run_once in runs.items():
                start = time.perf_counter()
                run_once()
                times[name].append(time.perf_counter() - start)
    finally:
        vm.close()
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def rss_probe(count: int) -> float:
    """MiB of resident memory each idle VM adds (run in a fresh process: see rss_per_idle_vm_mb)."""
    VM().close()  # engine, module and the wasm thread exist before the baseline
    gc.collect()
    before = rss_kib()
    vms = [VM() for _ in range(count)]
    for vm in vms:
        vm.eval("globalThis.ready = true")
    gc.collect()
    after = rss_kib()
    assert all(vm.crashed is None for vm in vms)
    return (after - before) / 1024 / count


def rss_per_idle_vm_mb(count: int) -> float:
    proc = subprocess.run([sys.executable, __file__, "--rss-probe", str(count)], capture_output=True,
                          text=True, check=True, timeout=300)
    return float(proc.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict[str, float]:
    samples = 5 if quick else 15
    inner = 200 if quick else 2000
    metrics: dict[str, float] = {}
    metrics["cached_module_load_ms"] = cached_module_load_ms(samples=20 if quick else 50)
    metrics["new_vm_ms"] = on_wasm_thread(lambda: new_vm_ms(samples=20 if quick else 100), name="kplug-bench")
    metrics.update(on_wasm_thread(lambda: boundary_metrics(samples, inner), name="kplug-bench"))
    metrics["host_to_js_call_handoff_us"] = handoff_call_us(samples, inner)
    metrics.update(on_wasm_thread(lambda: fib_metrics(samples=5 if quick else 15), name="kplug-bench"))
    metrics["rss_per_idle_vm_mb"] = rss_per_idle_vm_mb(IDLE_VMS)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser(__doc__, quick="fewer samples (finishes in well under 30 s)")
    parser.add_argument("--rss-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_probe:
        print(rss_probe(args.rss_probe))
        return 0
    metrics = run(args.quick)
    print(target_table(metrics, TARGETS))
    write_json(args.json, report(metrics, TARGETS, quick=args.quick,
                                 fast_path=os.environ.get("KPLUG_SANDBOX_PLAIN") != "1",
                                 python=sys.version.split()[0], wasmtime=importlib.metadata.version("wasmtime")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
