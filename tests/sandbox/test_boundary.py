"""The boundary validates everything the guest hands over (issue 11, item 4).

* A host call whose result cannot be written into the VM (larger than its memory) reaches JS as an exception
  with the reason, for sync and async host functions; the VM keeps working.
* Out-of-range pointers and lengths from the guest (in ``kplug.host_call`` and the WASI stubs) trap that VM with
  a reason; the host never reads or writes outside the guest's memory, and the process and other VMs go on.
* Limits are validated where they are configured: a memory limit a wasm32 VM cannot honour (4096 MiB used to
  wrap to "no limit") and nonsensical CPU or stack limits are refused with a clear message.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kplug_lab.errors import JSError, OutOfMemory
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.sandbox import MAX_MEMORY_LIMIT, MAX_STACK_LIMIT, VM, check_limits

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
BIG = 40 * MiB  # a host result larger than a 16 MiB VM's whole linear memory (48 MiB with its doubling)


@pytest.fixture
def small(fast: bool) -> Any:
    v = VM(memory_limit=16 * MiB, fast=fast)
    yield v
    v.close()


# ---- host results that do not fit ----------------------------------------------------------------------


def test_a_sync_host_result_larger_than_the_vm_throws_in_js_with_the_reason(small: VM) -> None:
    small.register("huge", lambda: "x" * BIG)
    small.register("tiny", lambda: "ok")
    caught = small.eval("try { huge(); 'no error' } catch (e) { [e instanceof Error, e.message] }")
    assert caught == [True, "host result too large for the plugin's memory (40.0 MiB)"]
    assert small.eval("tiny() + [1, 2].length") == "ok2"  # the VM keeps working
    assert small.crashed is None
    with pytest.raises(JSError, match=r"too large for the plugin's memory \(40\.0 MiB\)"):
        small.eval("huge()")  # uncaught, it reaches Python as the JS error it is
    assert small.eval("tiny()") == "ok"


async def test_an_async_host_result_larger_than_the_vm_rejects_with_the_reason(small: VM) -> None:
    async def huge() -> str:
        await asyncio.sleep(0)
        return "x" * BIG

    small.register("huge", huge, is_async=True)
    small.register("hugeNow", lambda: "y" * BIG, is_async=True)  # an immediate value, settled later
    small.eval("async function f(g) { try { await globalThis[g](); return 'resolved'; }"
               " catch (e) { return [e instanceof Error, e.message]; } }")
    expected = [True, "host result too large for the plugin's memory (40.0 MiB)"]
    assert await small.acall("f", "huge") == expected
    assert await small.acall("f", "hugeNow") == expected
    assert small.eval("1 + 1") == 2 and small.crashed is None


def test_an_owner_settling_a_result_too_large_rejects_the_promise_instead_of_raising(small: VM) -> None:
    small.register("later", lambda: None, is_async=True)
    small.eval("globalThis.out = 'pending'; later().then(() => { out = 'resolved'; }, (e) => { out = e.message; })")
    [(pid, _)] = small.take_pending().items()
    small.settle(pid, "z" * BIG)  # no exception here: the Promise settles
    assert small.eval("out") == "host result too large for the plugin's memory (40.0 MiB)"


def test_a_host_error_message_larger_than_the_vm_is_truncated_not_lost(small: VM) -> None:
    def fail() -> None:
        raise RuntimeError("disk says: " + "e" * BIG)

    small.register("fail", fail)
    message = small.eval("try { fail(); } catch (e) { e.message }")
    assert message.startswith("disk says: eee") and message.endswith("... (truncated)")
    assert len(message) < 64 * 1024
    assert small.eval("1 + 1") == 2


def test_an_argument_larger_than_the_vm_is_out_of_memory_and_the_vm_survives(small: VM) -> None:
    small.eval("function len(s) { return s.length; }")
    with pytest.raises(OutOfMemory):
        small.call("len", "x" * BIG)
    assert small.call("len", "abc") == 3


# ---- hostile pointers and lengths from the guest ----------------------------------------------------------

# Each case runs in a fresh VM in a child process (on today's unchecked code a bad pointer crashes the process,
# so the test process must not be the one at risk). The import is called through wasmtime, exactly as the guest
# calls it, with fabricated arguments; "IOV" is the address of an iovec {0xFFFF0000, 0x20000} placed in the
# guest's scratch buffer, "OK" an in-bounds address.
HOSTILE = textwrap.dedent("""
    import json, struct, sys
    import wasmtime
    from kplug_lab.sandbox import VM, on_wasm_thread

    CASES = json.loads(sys.argv[2])

    def run():
        bystander = VM(fast=sys.argv[1] == "fast")
        bystander.eval("globalThis.n = 41")
        results = []
        for name, args in CASES:
            vm = VM(fast=sys.argv[1] == "fast")
            vm._write_scratch(struct.pack("<II", 0xFFFF0000, 0x20000))
            args = [vm._scratch_ptr if a == "IOV" else vm._scratch_ptr + 64 if a == "OK" else a for a in args]
            try:
                vm._imports[name](vm._store, *args)
                outcome = "returned"
            except (wasmtime.Trap, wasmtime.WasmtimeError) as trap:  # called from Python, a trap may come as either
                outcome = "trap" if str(vm.crashed) in str(trap) else "trap without the reason: " + str(trap)
            except BaseException as exc:
                outcome = "raised " + type(exc).__name__
            try:
                vm.eval("1")
                later = "usable"
            except Exception as exc:
                later = type(exc).__name__
            results.append([name, outcome, vm.crashed, later])
            vm.close()
        fresh = VM(fast=sys.argv[1] == "fast")
        results.append(["others", bystander.eval("n + 1"), fresh.eval("'fresh'"), None])
        return results

    print(json.dumps(on_wasm_thread(run)))
""")

HC, CLOCK, FDW = "kplug.host_call", "wasi_snapshot_preview1.clock_time_get", "wasi_snapshot_preview1.fd_write"
HOSTILE_CASES: list[tuple[str, list[Any], str]] = [
    (HC, [0, 0xFFFFFF00 - (1 << 32), 0x1000, 0], "host_call arguments is out of bounds"),
    (HC, [0, "OK", -5, 0], "host_call arguments is out of bounds: -5 bytes"),
    (HC, [0, "OK", 0x7FFFFFFF, 0], "host_call arguments is out of bounds"),
    (HC, [999, "OK", 2, 0], "host_call to host function 999"),
    (HC, [-1, -16, 100, 1], "notification is out of bounds"),
    (HC, [-2, "OK", -7, 1], "notification -2 with length -7"),
    (HC, [-9, "OK", 0, 1], "unknown notification -9"),
    (CLOCK, [0, 0, -4], "clock_time_get's result is out of bounds"),
    (FDW, [1, -8, 2, "OK"], "fd_write's iovecs is out of bounds"),
    (FDW, [1, "OK", 0x10000000, "OK"], "fd_write's iovecs is out of bounds"),
    (FDW, [1, "OK", -1, "OK"], "fd_write with -1 iovecs"),
    (FDW, [1, "IOV", 1, "OK"], "fd_write's buffer 0 is out of bounds"),
    (FDW, [1, "OK", 0, -1], "fd_write's nwritten is out of bounds"),
]


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_out_of_range_guest_pointers_trap_that_vm_and_the_process_and_other_vms_go_on(path: str) -> None:
    cases = [[name, args] for name, args, _ in HOSTILE_CASES]
    proc = subprocess.run([sys.executable, "-c", HOSTILE, path, json.dumps(cases)], capture_output=True, text=True,
                          cwd=REPO, timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, f"the process died ({proc.returncode}): {proc.stderr[-2000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    *per_case, others = results
    for (name, args, expected), (_, outcome, crashed, later) in zip(HOSTILE_CASES, per_case, strict=True):
        assert outcome == "trap", (name, args, outcome, crashed)
        assert crashed and "the guest broke the host boundary" in crashed and expected in crashed, (args, crashed)
        assert later == "VMCrashed", (args, later)  # that VM is dead, with its reason
    assert others == ["others", 42, "fresh", None]


def test_fd_write_reads_at_most_64_kib_per_call_whatever_the_iovecs_say(fast: bool) -> None:
    lines: list[tuple[str, str]] = []
    vm = VM(fast=fast, console=lambda level, text: lines.append((level, text)))
    try:
        size = vm.linear_memory_size()
        # 1,000 iovecs, each the whole memory: an unchecked host would join 1,000 x its size
        vm._write_scratch(b"\1" * 64 + b"".join(b"\0\0\0\0" + size.to_bytes(4, "little") for _ in range(1000)))
        ok = vm._scratch_ptr + 64
        vm._imports["wasi_snapshot_preview1.fd_write"](vm._store, 2, ok, 1000, vm._scratch_ptr)
        written = int.from_bytes(vm._read(vm._scratch_ptr, 4), "little")
        assert written == 64 * 1024
        assert len(lines) == 1 and lines[0][0] == "error" and len(lines[0][1].encode()) <= 64 * 1024
        assert vm.crashed is None and vm.eval("1 + 1") == 2
    finally:
        vm.close()


# ---- limits validated where they are configured ---------------------------------------------------------


@pytest.mark.parametrize("mib", [4096, 4097, 2041, 1 << 20])
def test_a_memory_limit_no_wasm32_vm_can_honour_is_refused_with_the_reason(mib: int) -> None:
    with pytest.raises(ValueError, match=r"too large: a plugin's wasm32 memory is at most 4 GiB.*at most 2040 MiB"):
        VM(memory_limit=mib * MiB)
    with pytest.raises(ValueError, match="at most 2040 MiB"):
        HostConfig(memory_limit=mib * MiB)  # what `kplug serve --memory-mb` and the Jupyter trait build


def test_the_largest_memory_limit_is_accepted(fast: bool) -> None:
    assert MAX_MEMORY_LIMIT // MiB == 2040
    check_limits(memory_limit=MAX_MEMORY_LIMIT)
    vm = VM(memory_limit=MAX_MEMORY_LIMIT, fast=fast)
    try:
        assert vm.eval("new Uint8Array(1 << 20).length + [1, 2].length") == (1 << 20) + 2
    finally:
        vm.close()


@pytest.mark.parametrize("kwargs", [
    {"memory_limit": 0}, {"memory_limit": -1}, {"memory_limit": 1.5 * MiB}, {"memory_limit": True},
    {"cpu_limit": 0}, {"cpu_limit": -1.0}, {"cpu_limit": math.nan}, {"cpu_limit": math.inf}, {"cpu_limit": "1"},
    {"hard_cpu_limit": 0.0}, {"hard_cpu_limit": math.nan}, {"hard_cpu_limit": -math.inf},
    {"stack_limit": 0}, {"stack_limit": -1}, {"stack_limit": 2 * MiB}, {"stack_limit": MAX_STACK_LIMIT + 1},
])
def test_nonsensical_limits_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="limit must be"):
        VM(**kwargs)


def test_limits_set_on_a_live_vm_are_checked_too_and_a_huge_one_does_not_wrap(vm: VM) -> None:
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="CPU limit must be a positive, finite number"):
            vm.cpu_limit = bad
        with pytest.raises(ValueError, match="hard CPU limit must be a positive, finite number"):
            vm.hard_cpu_limit = bad
    vm.cpu_limit, vm.hard_cpu_limit = 1e300, 1e300  # the epoch deadline saturates instead of wrapping to ~0
    assert vm.eval("let s = 0; for (let i = 0; i < 1e5; i++) s += i; s") == 4999950000
    assert vm.crashed is None
    with pytest.raises(ValueError, match="CPU limit"):
        HostConfig(cpu_limit=math.nan)


def test_deep_recursion_at_the_largest_stack_limit_is_still_a_range_error(fast: bool) -> None:
    vm = VM(stack_limit=MAX_STACK_LIMIT, fast=fast)
    try:
        for code in ["function r(n) { return r(n + 1) + 1; } r(0)", "JSON.parse('['.repeat(1e6))",
                     "let o = []; for (let i = 0; i < 1e5; i++) o = [o]; String(o)"]:
            with pytest.raises(JSError, match="RangeError"):
                vm.eval(code)
        assert vm.crashed is None
    finally:
        vm.close()
