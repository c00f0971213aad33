"""The sections of ``bench/scale.py`` for issue 14: big bundles, durable pushes from many plugins, a thousand idle
plugins, large payloads. Each returns metrics; ratios are against a baseline measured in the same run.

* ``big_bundle``: a synthetic ~2 MB minified-like bundle (``_bundle.py``) started through the host's normal start
  path (``PluginManager.reload``: new VM, prelude, ``kernel.js``, hooks), with the compiled-code cache off
  (``big_bundle_start_uncached_ms``) and warm (``big_bundle_start_cached_ms``), against the same source
  evaluated by native QuickJS-NG (the PyPI ``quickjs`` binding, ``big_bundle_native_eval_ms``). Also the bare VM's
  eval, compile-only and bytecode-load times, and the prelude's eval against its bytecode (does caching it pay?).
* ``durable``: every plugin pushes items to its durable queue, each push awaited (durable when its Promise
  resolves); pushes per second with 10 plugins at once against 1, and the disk's fsync time (the cost that
  group commit shares).
* ``idle_plugins``: start a host with N idle plugins (1,000; 200 with ``--quick``): seconds, threads, open
  descriptors and resident memory per plugin, and the host's CPU use (% of one core) while they idle.
* ``json``: a 100 KB JSON argument and result through ``VM.call`` against native QuickJS-NG doing the same work
  with the same Python encoding (``json.dumps`` in, ``JSON.parse``, the call, ``JSON.stringify``, ``json.loads``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import quickjs
from _bundle import make_bundle
from _common import Target, rss_kib

from kplug_lab.durable.store import DurableStore
from kplug_lab.host import js
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager
from kplug_lab.host.runtime.plugin import _NATIVE_BRIDGE
from kplug_lab.sandbox import VM

__all__ = ["TARGETS", "big_bundle", "durable", "idle_plugins", "json_payloads"]

TARGETS = [
    Target("big_bundle_start_cached_ms", 0.3, baseline="big_bundle_start_uncached_ms"),
    Target("big_bundle_start_uncached_ms", 1.3, baseline="big_bundle_native_eval_ms"),
    Target("load_1000_plugins_s", 10.0),
    Target("rss_per_idle_plugin_mb", 2.0),
    Target("durable_push_10_plugins_per_s", 3.0, baseline="durable_push_1_plugin_per_s", at_least=True),
    Target("json_100kb_roundtrip_ms", 1.2, baseline="json_100kb_native_ms"),
]

BUNDLE_BYTES = 2_000_000


def _write_plugin(root: Path, name: str, code: str) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "plugin.json").write_text(json.dumps({"name": name, "kernels": ["all"]}))
    (root / name / "kernel.js").write_text(code)


def _median_ms(fn: Callable[[], Any], samples: int) -> float:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


# ---- big bundles -------------------------------------------------------------------------------------------


async def _start_times(folder: Path, cached: bool, samples: int) -> float:
    manager = PluginManager(HostConfig(data_dir=folder / "data", hot_reload=False, memory_limit=256 << 20,
                                       cpu_limit=30.0, bytecode_cache=cached), plugins_dir=folder / "plugins")
    await manager.start()
    try:
        info = manager.get_plugin("big")
        assert info is not None and info.state.label == "running", info
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            info = await manager.reload("big")
            times.append(time.perf_counter() - start)
            assert info.state.label == "running" and info.compiled_from_cache == cached, info
        return 1e3 * statistics.median(times)
    finally:
        await manager.close()


def big_bundle(quick: bool) -> dict[str, float]:
    samples = 3 if quick else 7
    source = make_bundle(BUNDLE_BYTES)
    metrics: dict[str, float] = {"bundle_bytes": float(len(source.encode()))}

    def native() -> None:
        quickjs.Context().eval(source)

    def vm_eval() -> None:
        with VM(memory_limit=256 << 20, cpu_limit=30.0) as vm:
            vm.eval(source, "big/kernel.js", want_result=False)

    native()
    vm_eval()
    # alternate the two so load changes hit both alike
    nat, ev = [], []
    for _ in range(samples):
        nat.append(_median_ms(native, 1))
        ev.append(_median_ms(vm_eval, 1))
    metrics["big_bundle_native_eval_ms"] = statistics.median(nat)
    metrics["big_bundle_vm_eval_ms"] = statistics.median(ev)

    with VM(memory_limit=256 << 20, cpu_limit=30.0) as vm:
        start = time.perf_counter()
        bytecode = vm.compile(source, "big/kernel.js")
        metrics["big_bundle_vm_compile_only_ms"] = 1e3 * (time.perf_counter() - start)
    metrics["big_bundle_bytecode_bytes"] = float(len(bytecode))

    def from_bytecode() -> None:
        with VM(memory_limit=256 << 20, cpu_limit=30.0) as vm:
            vm.eval_bytecode(bytecode, want_result=False)

    metrics["big_bundle_vm_bytecode_ms"] = _median_ms(from_bytecode, samples)
    metrics["new_vm_ms"] = _median_ms(lambda: VM().close(), samples)

    with tempfile.TemporaryDirectory(prefix="kplug-bundle-") as tmp:
        folder = Path(tmp)
        _write_plugin(folder / "plugins", "big", source)
        metrics["big_bundle_start_uncached_ms"] = asyncio.run(_start_times(folder, False, samples))
        metrics["big_bundle_start_cached_ms"] = asyncio.run(_start_times(folder, True, samples))

    prelude = js.prelude()
    with _bridged_vm() as vm:
        prelude_code = vm.compile(prelude, js.PRELUDE_FILENAME)
    metrics["prelude_bytes"] = float(len(prelude.encode()))
    metrics["prelude_bytecode_bytes"] = float(len(prelude_code))
    base = _median_ms(lambda: _bridged_vm().close(), samples * 3)

    def prelude_eval() -> None:
        with _bridged_vm() as vm:
            vm.eval(prelude, js.PRELUDE_FILENAME, want_result=False)

    def prelude_bytecode() -> None:
        with _bridged_vm() as vm:
            vm.eval_bytecode(prelude_code, want_result=False)

    metrics["prelude_vm_eval_ms"] = _median_ms(prelude_eval, samples * 3) - base
    metrics["prelude_vm_bytecode_ms"] = _median_ms(prelude_bytecode, samples * 3) - base
    return metrics


def _bridged_vm() -> VM:
    """A VM with the native bridge the prelude expects (its host functions answer nothing)."""
    vm = VM()
    vm.register("__kplug_native_call", lambda *a: None)
    vm.register("__kplug_native_call_async", lambda *a: None, is_async=True)
    vm.eval(_NATIVE_BRIDGE, "<kplug native>", want_result=False)
    return vm


# ---- durable pushes ----------------------------------------------------------------------------------------

PUSH_JS = """
siyuan.rpc.bind("push", async (n) => {
  const q = kplug.queue("work");
  for (let i = 0; i < n; i++) await q.push({ i, at: Date.now() });
  return n;
});
"""


async def _push_rate(manager: PluginManager, names: list[str], per_plugin: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(manager.call(name, "push", [per_plugin]) for name in names))
    return len(names) * per_plugin / (time.perf_counter() - start)


async def _durable(folder: Path, per_plugin: int, rounds: int) -> dict[str, float]:
    manager = PluginManager(HostConfig(data_dir=folder / "data", hot_reload=False, call_timeout=300.0),
                            plugins_dir=folder / "plugins")
    await manager.start()
    try:
        names = [f"pusher{i}" for i in range(10)]
        await _push_rate(manager, names, 5)  # warm-up
        one, ten = [], []
        for _ in range(rounds):
            one.append(await _push_rate(manager, names[:1], per_plugin))
            ten.append(await _push_rate(manager, names, per_plugin))
        commits = manager.durable.commits
        return {"durable_push_1_plugin_per_s": statistics.median(one),
                "durable_push_10_plugins_per_s": statistics.median(ten),
                "durable_commits": float(commits)}
    finally:
        await manager.close()


def _one_commit_per_write(self: DurableStore, work: Callable[[Any], Any]) -> Any:
    """The store before group commit (the baseline): every write its own transaction and fsync."""
    with self._lock:
        self.commits += 1
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = work(self._db)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result


def fsync_ms(folder: Path, samples: int = 30) -> float:
    """The median time of writing 4 KiB to a file in ``folder`` and fsyncing it: what group commit can share.
    Where it is near zero (a disk cache that acknowledges at once, tmpfs), ten plugins have nothing to share
    and their pushes are bounded by the host's CPU like one plugin's."""
    path = folder / "fsync-probe"
    times = []
    with path.open("wb") as f:
        for _ in range(samples):
            f.write(b"x" * 4096)
            f.flush()
            start = time.perf_counter()
            os.fsync(f.fileno())
            times.append(time.perf_counter() - start)
    path.unlink()
    return 1e3 * statistics.median(times)


def durable(quick: bool) -> dict[str, float]:
    """With group commit, and (``*_ungrouped``) with one commit per write as before, in the same run. The data
    folder is on the same disk as the system's temporary folder (``TMPDIR`` moves it); ``durable_fsync_ms``
    tells what an fsync there costs."""
    per_plugin, rounds = (40, 3) if quick else (150, 5)
    metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kplug-fsync-") as tmp:
        metrics["durable_fsync_ms"] = fsync_ms(Path(tmp))
    for suffix in ("_ungrouped", ""):
        with tempfile.TemporaryDirectory(prefix="kplug-durable-") as tmp:
            folder = Path(tmp)
            for i in range(10):
                _write_plugin(folder / "plugins", f"pusher{i}", PUSH_JS)
            grouped = DurableStore._write
            if suffix:
                DurableStore._write = _one_commit_per_write  # type: ignore[method-assign]
            try:
                got = asyncio.run(_durable(folder, per_plugin, rounds))
            finally:
                DurableStore._write = grouped  # type: ignore[method-assign]
        metrics.update({k.replace("_per_s", suffix + "_per_s").replace("commits", "commits" + suffix): v
                        for k, v in got.items()})
    return metrics


# ---- a thousand idle plugins -------------------------------------------------------------------------------

IDLE_JS = """
let hits = 0;
siyuan.rpc.bind("hit", () => ++hits);
"""


def _fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


async def _idle(folder: Path, count: int) -> dict[str, float]:
    VM().close()  # engine, module, watchdog exist before the baseline
    gc.collect()
    rss0, threads0, fds0 = rss_kib(), threading.active_count(), _fds()
    manager = PluginManager(HostConfig(data_dir=folder / "data", hot_reload=False), plugins_dir=folder / "plugins")
    start = time.perf_counter()
    await manager.start()
    took = time.perf_counter() - start
    try:
        running = sum(1 for info in manager.list_plugins() if info.state.label == "running")
        assert running == count, f"{running} of {count} plugins running"
        assert await manager.call(f"idle{count - 1}", "hit", []) == 1
        gc.collect()
        rss1, threads1, fds1 = rss_kib(), threading.active_count(), _fds()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(3.0)  # the plugins idle: what does the host spend meanwhile?
        idle_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    finally:
        await manager.close()
    return {
        "idle_plugins": float(count),
        "load_plugins_s": took,
        "threads_per_idle_plugin": (threads1 - threads0) / count,
        "fds_per_idle_plugin": (fds1 - fds0) / count,
        "rss_per_idle_plugin_mb": (rss1 - rss0) / 1024 / count,
        "idle_host_cpu_percent": 100 * idle_cpu,
    }


def idle_plugins(quick: bool) -> dict[str, float]:
    count = 200 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="kplug-idle-") as tmp:
        folder = Path(tmp)
        for i in range(count):
            _write_plugin(folder / "plugins", f"idle{i}", IDLE_JS)
        metrics = asyncio.run(_idle(folder, count))
    # the target is for 1,000: a quick run scales its time linearly (marked by idle_plugins < 1000)
    metrics["load_1000_plugins_s"] = metrics["load_plugins_s"] * 1000 / count
    return metrics


# ---- large payloads ----------------------------------------------------------------------------------------

ECHO_JS = "globalThis.echo = (x) => x;"


def payload(size: int = 100_000) -> dict[str, Any]:
    """A JSON value of about ``size`` bytes, as a plugin's arguments and results look (records of strings and
    numbers)."""
    rows = []
    n = 0
    while n < size:
        row = {"id": len(rows), "title": f"block {len(rows)} \u00e9\u4e2d", "tags": ["a", "bb", "ccc"],
               "score": len(rows) * 0.25, "done": len(rows) % 2 == 0, "text": "lorem ipsum dolor sit amet " * 3}
        rows.append(row)
        n += len(json.dumps(row))
    return {"rows": rows}


def json_payloads(quick: bool) -> dict[str, float]:
    samples = 30 if quick else 200
    value = payload()
    vm = VM(cpu_limit=30.0)
    native = quickjs.Context()
    try:
        vm.eval(ECHO_JS)
        native.eval("globalThis.echo = (x) => x; globalThis.echoJson = (t) => JSON.stringify(echo(JSON.parse(t)));")
        echo_json = native.get("echoJson")
        assert vm.call("echo", value) == value
        assert json.loads(echo_json(json.dumps(value))) == value
        runs = {"json_100kb_roundtrip_ms": lambda: vm.call("echo", value),
                "json_100kb_native_ms": lambda: json.loads(echo_json(json.dumps(value)))}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(samples):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    finally:
        vm.close()
    metrics = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    metrics["json_payload_bytes"] = float(len(json.dumps(value)))
    return metrics
