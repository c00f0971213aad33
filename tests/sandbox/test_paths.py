"""The two boundary paths (wasmtime's C API and plain wasmtime-py), threads, and the module cache."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kplug_lab.errors import CPUTimeout
from kplug_lab.sandbox import VM, _engine


def test_the_plain_path_is_chosen_by_environment_or_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KPLUG_SANDBOX_PLAIN", raising=False)
    assert VM().fast is True
    monkeypatch.setenv("KPLUG_SANDBOX_PLAIN", "1")
    plain = VM()
    assert plain.fast is False
    assert VM(fast=True).fast is True
    assert plain.eval("[1, 'two', {three: 3}]") == [1, "two", {"three": 3}]


def test_both_paths_give_the_same_results() -> None:
    script = ("function work(n) { const out = []; for (let i = 0; i < n; i++) out.push({ i, sq: i * i, s: 'é' + i });"
              " return out; }")
    results = []
    for fast in (True, False):
        v = VM(fast=fast)
        v.register("twice", lambda x: x * 2)
        v.eval(script)
        results.append((v.call("work", 50), v.eval("twice(21)"), v.eval("try { null.x } catch (e) { e.name }")))
        v.close()
    assert results[0] == results[1]


WasmThread = Callable[[Callable[[], Any]], Any]


def test_wasm_runs_on_a_big_stack_thread_and_other_callers_are_handed_over(wasm_thread: WasmThread) -> None:
    threads: list[str] = []
    v = VM()
    v.register("whereAmI", lambda: threads.append(threading.current_thread().name))
    v.eval("whereAmI()")
    wasm_thread(lambda: v.eval("whereAmI()"))
    assert threads == ["kplug-wasm", "kplug-test"]


def test_vms_on_different_threads_run_at_the_same_time(fast: bool, wasm_thread: WasmThread) -> None:
    spinner, other = VM(cpu_limit=60, fast=fast), VM(fast=fast)
    spinning = threading.Event()
    spinner.register("started", spinning.set)
    outcome: list[BaseException] = []

    def spin() -> None:
        try:
            spinner.eval("started(); for (;;) {}")
        except BaseException as exc:
            outcome.append(exc)

    thread = _engine.big_stack_thread(spin, name="kplug-spinner")
    thread.start()
    assert spinning.wait(30)
    # While the first VM is still inside wasm, a second VM on another thread computes to completion: wasm
    # does not hold the GIL, so neither waits for the other.
    count = "(() => { let x = 0; for (let i = 0; i < 1e6; i++) x += i; return x; })()"
    total = wasm_thread(lambda: other.eval(count))
    assert total == sum(range(1_000_000))
    assert thread.is_alive() and not outcome
    spinner.interrupt()
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], CPUTimeout)
    assert spinner.eval("'usable'") == "usable"


def test_the_compiled_module_is_cached_on_disk_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPLUG_CACHE_DIR", str(tmp_path))
    first = _engine.load_module()
    [cached] = tmp_path.glob("kplug-*.cwasm")
    assert cached == _engine.module_cache_path()
    stamp = cached.stat().st_mtime_ns
    second = _engine.load_module()
    assert cached.stat().st_mtime_ns == stamp  # loaded, not rewritten
    assert [e.name for e in second.exports] == [e.name for e in first.exports]


def test_a_corrupt_cache_entry_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPLUG_CACHE_DIR", str(tmp_path))
    cached = _engine.module_cache_path()
    cached.write_bytes(b"not a compiled module")
    module = _engine.load_module()
    assert "kp_eval" in {e.name for e in module.exports}
    assert cached.stat().st_size > 1_000_000
