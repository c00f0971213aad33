"""The sandbox engine: values across the boundary, host functions, limits, isolation (no SiYuan here)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from kplug_lab.errors import CPUTimeout, JSError, OutOfMemory, ValueConversionError, VMCrashed
from kplug_lab.sandbox import VM
from kplug_lab.sandbox._engine import big_stack_thread

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
def vm(request: pytest.FixtureRequest) -> Any:
    v = VM(fast=request.param)
    yield v
    v.close()


VALUES = [None, True, False, 0, -1, 2**53, 1.5, -0.25, "", "plain", "astral 😀𝄞", "nul\x00inside", [], {},
          [1, [2, [3, {"a": None}]]], {"k": {"nested": ["x", 1.25, False]}}]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_every_json_type_round_trips(vm: VM, value: Any) -> None:
    vm.eval("function id(x) { return x; }")
    assert vm.call("id", value) == value


def test_big_strings_and_lone_surrogates_round_trip(vm: VM) -> None:
    vm.eval("function id(x) { return x; } function len(x) { return x.length; }")
    big = "x" * 10_000_000
    assert vm.call("len", big) == 10_000_000
    assert vm.call("id", big) == big
    assert vm.call("id", "\ud800 alone") == "\ud800 alone"
    assert vm.eval("'\\ud83d\\ude00'.length") == 2


def test_a_deeply_nested_argument_is_refused_cleanly(vm: VM) -> None:
    vm.eval("function id(x) { return x; }")
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueConversionError, match="nested too deeply"):
        vm.call("id", deep)
    assert vm.call("id", [1]) == [1]


def test_sync_host_function_and_its_errors(vm: VM) -> None:
    vm.register("add", lambda a, b: a + b)

    def fail(msg: str) -> None:
        raise RuntimeError(msg)

    vm.register("fail", fail)
    assert vm.eval("add(2, 3)") == 5
    assert vm.eval("try { fail('nope'); } catch (e) { [e instanceof Error, e.message] }") == [True, "nope"]
    assert vm.eval("add('a', 'b')") == "ab"


async def test_async_host_function_awaits_a_python_coroutine() -> None:
    v = VM()

    async def slow_double(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("async failure")

    v.register("slowDouble", slow_double, is_async=True)
    v.register("broken", broken, is_async=True)
    v.eval("async function f(x) { return (await slowDouble(x)) + 1; }")
    v.eval("async function g() { try { await broken(); } catch (e) { return e.message; } }")
    assert await v.acall("f", 20) == 41
    assert await v.acall("g") == "async failure"
    assert v.eval("1 + 1") == 2


def test_infinite_loop_is_stopped_within_twice_the_limit_and_vm_survives() -> None:
    v = VM(cpu_limit=0.5)
    t = time.monotonic()
    with pytest.raises(CPUTimeout):
        v.eval("while (true) {}")
    assert time.monotonic() - t < 1.0
    assert v.eval("'still here'") == "still here"


def test_recursion_gives_range_error(vm: VM) -> None:
    with pytest.raises(JSError) as info:
        vm.eval("function r(n) { return r(n + 1) + 1; } r(0)")
    assert info.value.name == "RangeError"
    assert vm.eval("1 + 1") == 2


def test_deep_json_parse_is_a_range_error_not_a_crash() -> None:
    v = VM()
    out = v.eval("(() => { try { JSON.parse('['.repeat(100000) + ']'.repeat(100000)); } "
                 "catch (e) { return e.name; } })()")
    assert out == "RangeError"
    assert v.crashed is None


def test_a_long_builtin_is_ended_by_the_epoch_backstop() -> None:
    v = VM(cpu_limit=0.2)
    with pytest.raises(VMCrashed):
        v.eval("let o = {}, c = o; for (let i = 0; i < 1e5; i++) { c.a = {}; c = c.a; } JSON.stringify(o)")
    assert v.crashed
    with pytest.raises(VMCrashed):
        v.eval("1")


BOMBS = textwrap.dedent("""
    import sys
    from kplug_lab.sandbox import VM
    from kplug_lab.errors import OutOfMemory
    vm = VM(memory_limit=32 * 1024 * 1024)
    for code in ["(() => { const a = []; while (true) a.push({ n: a.length }); })()",
                 "(() => { const a = []; while (true) a.push(new Uint8Array(1 << 20)); })()"]:
        try:
            vm.eval(code)
            print("no error"); sys.exit(1)
        except OutOfMemory:
            pass
        assert vm.eval("'ok'") == "ok"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
    status = open("/proc/self/status").read()
    print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
""")


def test_memory_bombs_end_in_out_of_memory_with_bounded_rss() -> None:
    proc = subprocess.run([sys.executable, "-c", BOMBS], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rss_mb = int(proc.stdout.strip().splitlines()[-1])
    assert rss_mb < 32 + 100


def test_memory_bomb_in_process_keeps_vm_usable() -> None:
    v = VM(memory_limit=32 * 1024 * 1024)
    with pytest.raises(OutOfMemory):
        v.eval("(() => { const a = []; while (true) a.push([a.length]); })()")
    assert v.eval("[1, 2].length") == 2


@pytest.mark.parametrize("code", [
    "require('fs')", "process.env", "std.loadFile('/etc/passwd')", "os.exec(['ls'])",
    "fetch('http://127.0.0.1/')", "new XMLHttpRequest()",
])
def test_no_ambient_authority(code: str) -> None:
    v = VM()
    with pytest.raises(JSError) as info:
        v.eval(code)
    assert info.value.name == "ReferenceError"


async def test_modules_cannot_be_loaded() -> None:
    v = VM()
    with pytest.raises(JSError) as info:
        v.eval("import fs from 'fs';")
    assert info.value.name == "SyntaxError"
    v.eval("async function dyn() { try { await import('fs'); return 'loaded'; } catch (e) { return 'refused'; } }")
    assert await v.acall("dyn") == "refused"
    assert v.eval("typeof __kplug_console") == "undefined"


def test_syntax_errors_name_file_and_line() -> None:
    v = VM()
    with pytest.raises(JSError) as info:
        v.eval("const ok = 1;\nconst broken = ;\n", "plugin/kernel.js")
    assert info.value.name == "SyntaxError" and "plugin/kernel.js:2" in info.value.stack


def test_clock_random_and_console() -> None:
    lines: list[tuple[str, str]] = []
    a, b = VM(console=lambda lvl, text: lines.append((lvl, text))), VM()
    assert abs(a.eval("Date.now()") / 1000 - time.time()) < 5
    assert a.eval("Math.random()") != b.eval("Math.random()")
    a.eval("console.log('hi', 1); console.error('bad')")
    assert lines == [("info", "hi 1"), ("error", "bad")]


def test_vms_on_two_threads_run_in_parallel() -> None:
    code = "(() => { let x = 0; for (let i = 0; i < 3e7; i++) x += i; return x; })()"
    vms = [VM(cpu_limit=30), VM(cpu_limit=30)]
    for v in vms:
        v.eval("1")

    def work(v: VM) -> None:
        v.eval(code)

    t = time.monotonic()
    for v in vms:
        th = big_stack_thread(work, name="serial", args=(v,))
        th.start()
        th.join()
    serial = time.monotonic() - t
    t = time.monotonic()
    threads = [big_stack_thread(work, name="par", args=(v,)) for v in vms]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    parallel = time.monotonic() - t
    assert parallel < 0.8 * serial, (serial, parallel)


def test_module_cache_is_written(tmp_path: Path) -> None:
    script = "from kplug_lab.sandbox._engine import get_module; get_module()"
    env = {"KPLUG_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    import os

    env = dict(os.environ, **env)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, env=env, timeout=120)
    assert list(tmp_path.glob("kplug-*.cwasm"))
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, env=env, timeout=120)


def test_dead_vm_fails_every_call_with_the_same_reason() -> None:
    v = VM()
    v.close()
    with pytest.raises(VMCrashed, match="closed"):
        v.eval("1")
