"""Limits: CPU time (soft deadline and the epoch backstop), memory, stack. After each, the VM either keeps
serving or, for the backstop, reports itself dead on every later use."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kplug_lab.errors import CPUTimeout, JSError, OutOfMemory, SandboxError, VMCrashed
from kplug_lab.sandbox import VM

REPO = Path(__file__).resolve().parents[2]


def test_an_infinite_loop_is_stopped_within_twice_the_cpu_limit_and_the_vm_survives(fast: bool) -> None:
    cpu_limit = 0.5
    v = VM(cpu_limit=cpu_limit, fast=fast)
    v.eval("function spin() { for (;;) {} }")
    # the limit counts CPU time, so this process's CPU time is the measure (wall time grows on a loaded machine)
    start = time.process_time()
    with pytest.raises(CPUTimeout, match=r"CPU limit of 0\.5 s"):
        v.eval("while (true) {}")
    assert time.process_time() - start < 2 * cpu_limit
    assert v.eval("'still here'") == "still here"
    start = time.process_time()
    with pytest.raises(CPUTimeout):
        v.call("spin")
    assert time.process_time() - start < 2 * cpu_limit
    assert v.call("String", 7) == "7"
    assert v.crashed is None


def test_a_promise_job_that_never_ends_is_stopped_too(vm: VM) -> None:
    vm.cpu_limit, vm.hard_cpu_limit = 0.3, 5.0
    with pytest.raises(CPUTimeout):
        vm.eval("Promise.resolve().then(() => { for (;;) {} }); 'scheduled'")
    assert vm.eval("1 + 1") == 2


def test_catastrophic_regex_backtracking_is_stopped_softly(vm: VM) -> None:
    vm.cpu_limit, vm.hard_cpu_limit = 0.3, 10.0
    with pytest.raises(CPUTimeout):
        vm.eval("/(a+)+$/.test('a'.repeat(40) + 'b')")
    assert vm.eval("/a+/.test('aaa')") is True


def test_unbounded_recursion_gives_range_error_and_the_vm_survives(vm: VM) -> None:
    with pytest.raises(JSError) as info:
        vm.eval("function r(n) { return r(n + 1) + 1; } r(0)")
    assert info.value.name == "RangeError" and "stack" in info.value.message
    assert vm.eval("(() => { try { r(0); } catch (e) { return e.name; } })()") == "RangeError"
    with pytest.raises(JSError, match="RangeError"):
        vm.call("r", 0)
    assert vm.eval("1 + 1") == 2


# JSON.stringify checks for cycles by scanning its stack at every level: on a 100,000-deep value it runs for
# seconds inside one builtin, never reaching QuickJS's interrupt handler.
LONG_BUILTIN = "let o = {}, c = o; for (let i = 0; i < 1e5; i++) { c.a = {}; c = c.a; } JSON.stringify(o).length"


def test_a_call_stuck_in_one_long_builtin_is_ended_by_the_epoch_backstop(fast: bool) -> None:
    v = VM(cpu_limit=0.1, fast=fast)
    start = time.process_time()
    with pytest.raises(VMCrashed, match=r"hard CPU limit of 0\.2 s") as first:
        v.eval(LONG_BUILTIN)
    assert time.process_time() - start < 5  # the builtin alone would run far longer
    reason = v.crashed
    assert reason and "hard CPU limit" in reason and reason in str(first.value)
    later_uses = [
        lambda: v.eval("1"), lambda: v.call("String", 1), lambda: v.call_start("String", 1).result(),
        lambda: v.register("f", print), v.run_jobs, v.memory_used, lambda: v.settle(1, None),
    ]
    for use in later_uses:
        with pytest.raises(VMCrashed) as info:
            use()
        assert reason in str(info.value)


BOMBS = textwrap.dedent("""
    import sys
    from kplug_lab.sandbox import VM
    from kplug_lab.errors import OutOfMemory
    vm = VM(memory_limit=32 * 1024 * 1024)
    assert vm.fast == (sys.argv[1] == "fast")
    for code in ["(() => { const a = []; while (true) a.push({ n: a.length, s: 'x' + a.length }); })()",
                 "(() => { const a = []; while (true) a.push(new Uint8Array(1 << 20)); })()",
                 "(() => { const a = []; while (true) a.push(new ArrayBuffer(8 << 20)); })()",
                 "(() => { const a = []; while (true) a.push('x'.repeat(1 << 20) + a.length); })()"]:
        try:
            vm.eval(code)
            print("no error for", code)
            sys.exit(1)
        except OutOfMemory as exc:
            print("OutOfMemory:", exc)
        assert vm.eval("'ok'") == "ok"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
    status = open("/proc/self/status").read()
    print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
""")


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_allocation_and_typed_array_bombs_end_in_out_of_memory_with_bounded_rss(path: str) -> None:
    env = dict(os.environ, KPLUG_SANDBOX_PLAIN="1" if path == "plain" else "0")
    proc = subprocess.run([sys.executable, "-c", BOMBS, path], capture_output=True, text=True, cwd=REPO,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len([line for line in lines if line.startswith("OutOfMemory: ")]) == 4
    peak_rss_mb = int(lines[-1])
    assert peak_rss_mb < 32 + 100, proc.stdout


def test_a_memory_bomb_in_process_leaves_the_vm_usable(vm: VM) -> None:
    small = VM(memory_limit=32 * 1024 * 1024, fast=vm.fast)
    try:
        with pytest.raises(OutOfMemory, match="memory limit of 32 MiB"):
            small.eval("(() => { const a = []; while (true) a.push([a.length]); })()")
        assert small.eval("[1, 2].length") == 2
        with pytest.raises(OutOfMemory):
            small.eval("new Uint8Array(64 * 1024 * 1024)")
        assert small.eval("new Uint8Array(1024).length") == 1024
    finally:
        small.close()


def test_memory_use_is_reported(vm: VM) -> None:
    before = vm.memory_used()
    vm.eval("globalThis.keep = new Array(100000).fill(1)")
    assert vm.memory_used() > before + 100_000 * 4


def test_a_dead_vm_fails_every_call_with_the_same_reason() -> None:
    v = VM()
    v.close()
    with pytest.raises(VMCrashed, match="closed"):
        v.eval("1")
    with pytest.raises(SandboxError, match="closed"):
        v.call("String", 1)
