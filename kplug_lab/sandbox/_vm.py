"""One sandboxed JavaScript VM: a wasmtime store and instance holding one QuickJS runtime and context."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import inspect
import itertools
import json
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from ..errors import (
    CPUTimeout,
    JSError,
    OutOfMemory,
    SandboxError,
    ValueConversionError,
    VMCrashed,
)
from ._engine import EPOCH_TICK_S, address_of, get_engine, get_module, get_watchdog, on_big_stack

__all__ = [
    "CPU_CLOCK",
    "EPOCH_CALLBACK",
    "MAX_MEMORY_LIMIT",
    "MAX_STACK_LIMIT",
    "VM",
    "ConsoleCallback",
    "HostFunction",
    "check_limits",
    "live_vm_count",
]

log = logging.getLogger("kplug_lab.sandbox")

HostFunction = Callable[..., Any]
ConsoleCallback = Callable[[str, str], None]

KP_OK, KP_EXCEPTION, KP_INTERRUPTED, KP_OOM, KP_PENDING, KP_ERROR = range(6)
KIND_JSON, KIND_UNDEFINED, KIND_BYTES = 0, 1, 2
OP_SETTLED_OK, OP_SETTLED_ERR, OP_UNHANDLED_REJECTION, OP_REJECTION_HANDLED = -1, -2, -3, -4

WASI_EBADF = 8
WASI_ENOSYS = 52
# host_call's answer when the call failed and not even its error message fitted into the guest (kplug.c)
KP_HOST_NO_ROOM = -0x80000000
# the most fd_write takes in one call (libc writes the rest in later calls): the guest cannot make the host
# hold more than this for one console line, whatever iovecs it passes
_FD_WRITE_MAX = 64 * 1024

_BOOTSTRAP = r"""
(function () {
  const write = globalThis.__kplug_console;
  delete globalThis.__kplug_console;
  const render = (args) => args.map((a) => (typeof a === "string" ? a : String(a))).join(" ");
  const make = (level) => (...args) => { write(level, render(args)); };
  globalThis.console = {
    log: make("info"), info: make("info"), debug: make("debug"), warn: make("warn"), error: make("error"),
    trace: make("trace"),
  };
})();
"""

_DEFAULT_MEMORY = 64 * 1024 * 1024
# QuickJS's stack limit: deep recursion (about 3,000 JS frames) ends in RangeError well before the 4 MiB C
# stack or wasmtime's native stack is exhausted (see _engine.MAX_WASM_STACK).
_DEFAULT_STACK = 1024 * 1024
# Linear memory beyond the JS heap limit: C stack, static data and allocator slack. QuickJS must hit its own
# limit first: when the linear memory runs out instead, its arenas can stay fragmented and the VM unusable.
_LINEAR_OVERHEAD = 16 * 1024 * 1024
# wasm32 addresses 4 GiB of linear memory at most. The linear memory gets twice the JS heap limit plus the
# overhead above, so the largest heap limit for which QuickJS still reaches its own limit first is 2040 MiB.
# Larger values (4096 MiB would wrap to 0 in the guest's 32-bit size_t: no limit at all) are refused.
WASM32_MAX_MEMORY = 1 << 32
MAX_MEMORY_LIMIT = (WASM32_MAX_MEMORY - _LINEAR_OVERHEAD) // 2
# QuickJS's stack limit must stay well inside the guest's 4 MiB C stack and wasmtime's native stack (some C
# recursions use 10-15x more native than C stack, see _engine.MAX_WASM_STACK). Measured: at 1.5 MiB deep
# recursion, JSON.parse, eval and String of nested arrays all end in RangeError; at 2 MiB some trap the VM.
MAX_STACK_LIMIT = 1536 * 1024
_MIN_STACK_LIMIT = 64 * 1024

# wasmtime_func_call_unchecked with plain addresses: wasmtime-py's binding converts and checks every argument,
# which costs more than the crossing itself. A CFUNCTYPE call releases the GIL like any ctypes call.
_call_unchecked = ctypes.CFUNCTYPE(
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p
)(("wasmtime_func_call_unchecked", ffi.dll))
# Two calls made on every host call that take nanoseconds keep the GIL (PYFUNCTYPE): releasing it for them
# meant waiting to get it back behind every other plugin's thread. Ten plugins making host calls at once spent
# 4x the CPU per call of one plugin alone, and did fewer calls per second than one (bench/scale.py, durable
# section on a disk whose fsync costs nothing; docs/adr/0008-big-bundles-many-plugins.md).
_set_epoch_deadline = ctypes.PYFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)(
    ("wasmtime_context_set_epoch_deadline", ffi.dll)
)
_caller_context = ctypes.PYFUNCTYPE(ctypes.POINTER(ffi.wasmtime_context_t), ctypes.c_void_p)(
    ("wasmtime_caller_context", ffi.dll)
)
_UNSIGNED_RESULTS = frozenset({"kp_out", "kp_flag", "kp_buf", "kp_memory"})

# ---- what the CPU limits count ---------------------------------------------------------------------------
#
# A call's budget is the VM thread's CPU time from the start of the call, minus the time spent inside host
# functions (storage, SQLite, fetch set-up, console output: the host's work and waits, not the plugin's). Where
# threads have no CPU clock that another thread can read (pthread_getcpuclockid: Linux and most Unixes; not
# macOS or Windows), the budget is wall time instead, still minus host time. The soft limit is checked by the
# watchdog thread (_engine.Watchdog), which reads the VM thread's clock; the hard limit by wasmtime's
# epoch-deadline callback, which runs on the VM's own thread whenever the epoch deadline passes and extends the
# deadline while the budget allows (without the callback, the epochs count wall time outside host calls).


def _probe_thread_clock() -> str:
    try:
        time.clock_gettime(time.pthread_getcpuclockid(threading.get_ident()))
    except (AttributeError, OSError):
        return "wall"
    return "thread"


#: ``"thread"``: the limits count the VM thread's CPU time; ``"wall"``: wall time (no per-thread CPU clock).
CPU_CLOCK = _probe_thread_clock()
_WALL = -1  # the budget's clock id for wall time
_clock_tls = threading.local()


def _thread_clock() -> int:
    """The calling thread's CPU clock id (or _WALL), cached per thread."""
    clock: int | None = getattr(_clock_tls, "clock", None)
    if clock is None:
        clock = _WALL
        if CPU_CLOCK == "thread":
            try:
                clock = time.pthread_getcpuclockid(threading.get_ident())
            except OSError:
                pass
        _clock_tls.clock = clock
    return clock


def _now(clock: int) -> float:
    return time.monotonic() if clock == _WALL else time.clock_gettime(clock)


_EPOCH_CALLBACK_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8)
)
_UPDATE_DEADLINE_CONTINUE = 0
_store_epoch_deadline_callback: Any
try:
    _store_epoch_deadline_callback = ctypes.CFUNCTYPE(
        None, ctypes.c_void_p, _EPOCH_CALLBACK_TYPE, ctypes.c_void_p, ctypes.c_void_p
    )(("wasmtime_store_epoch_deadline_callback", ffi.dll))
except AttributeError:  # pragma: no cover - a wasmtime without the C API entry point
    _store_epoch_deadline_callback = None
#: True when the hard limit is checked by wasmtime's epoch-deadline callback (it then counts the same budget as
#: the soft limit); False: plain epoch interruption, counting wall time outside host calls.
EPOCH_CALLBACK = _store_epoch_deadline_callback is not None and os.environ.get("KPLUG_EPOCH_CALLBACK") != "0"
# a deadline far enough away never to pass while the host works inside a host call (about 3 years of ticks)
_FAR = 1e7

_VM_IDS = itertools.count(1)
_VMS: dict[int, VM] = {}
_VMS_LOCK = threading.Lock()


def live_vm_count() -> int:
    """How many VMs of this process are open (made and not yet closed): each holds its wasm memory until
    :meth:`VM.close`. A host that leaks no VM sees this go back down when its plugins stop."""
    with _VMS_LOCK:
        return len(_VMS)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_DECODE = json.JSONDecoder().decode


def _dumps(value: Any) -> bytes:
    """Python -> JSON bytes for the guest. Refuses what JSON cannot carry, with a clear error."""
    try:
        text = _ENCODE(value)
    except RecursionError:
        raise ValueConversionError("value is nested too deeply to pass to JavaScript") from None
    except (TypeError, ValueError) as exc:
        raise ValueConversionError(f"value cannot be passed to JavaScript: {exc}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let JSON escape them
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}")
    return float(value)


def check_limits(*, memory_limit: Any = None, cpu_limit: Any = None, hard_cpu_limit: Any = None,
                 stack_limit: Any = None) -> None:
    """Refuse limits a VM cannot honour, with a clear :class:`ValueError` (``None``: not checked).

    ``memory_limit``: whole bytes, more than 0 and at most :data:`MAX_MEMORY_LIMIT` (2040 MiB: wasm32 memory
    is at most 4 GiB and the VM's linear memory is twice the heap limit plus 16 MiB). ``cpu_limit`` and
    ``hard_cpu_limit``: positive, finite seconds. ``stack_limit``: 64 KiB to :data:`MAX_STACK_LIMIT` bytes.
    Call it where limits are configured, so a bad value is refused there rather than when a plugin starts.
    """
    if memory_limit is not None:
        if isinstance(memory_limit, bool) or not isinstance(memory_limit, int):
            raise ValueError(f"memory limit must be a whole number of bytes, not {memory_limit!r}")
        if memory_limit <= 0:
            raise ValueError(f"memory limit must be more than 0 bytes, not {memory_limit}")
        if memory_limit > MAX_MEMORY_LIMIT:
            raise ValueError(
                f"memory limit of {_mib(memory_limit)} is too large: a plugin's wasm32 memory is at most 4 GiB, "
                f"which allows a JS heap limit of at most {MAX_MEMORY_LIMIT >> 20} MiB")
    if cpu_limit is not None:
        _positive_seconds("CPU limit", cpu_limit)
    if hard_cpu_limit is not None:
        _positive_seconds("hard CPU limit", hard_cpu_limit)
    if stack_limit is not None:
        if isinstance(stack_limit, bool) or not isinstance(stack_limit, int):
            raise ValueError(f"stack limit must be a whole number of bytes, not {stack_limit!r}")
        if not _MIN_STACK_LIMIT <= stack_limit <= MAX_STACK_LIMIT:
            raise ValueError(f"stack limit must be between {_MIN_STACK_LIMIT >> 10} KiB and "
                             f"{MAX_STACK_LIMIT >> 10} KiB, not {stack_limit} bytes")


class _GuestFault(VMCrashed):
    """The guest handed the host a pointer or length outside its memory, or otherwise broke the boundary
    protocol. The VM is dead (a memory-safety bug inside it is the likely cause); the host is untouched."""


def _loads(data: bytes) -> Any:
    try:
        return _DECODE(data.decode("utf-8", "surrogatepass"))
    except RecursionError:
        raise ValueConversionError("value from JavaScript is nested too deeply") from None


class VM:
    """A QuickJS-NG context inside its own wasm instance, with memory, CPU-time and stack limits.

    A VM is used by one thread at a time (the plugin host gives each plugin its own thread). Different VMs
    run in parallel on different threads: wasmtime releases the GIL while wasm runs.

    * ``memory_limit``: bytes for the JS heap (QuickJS's limit) and, with some slack, for the wasm linear
      memory (wasmtime's store limit), so typed arrays are bounded too. Exceeding it raises
      :class:`OutOfMemory`; the VM stays usable.
    * ``cpu_limit``: CPU seconds one operation (eval, call, job run) may compute before QuickJS's interrupt
      handler stops it with :class:`CPUTimeout`; the VM stays usable. Both CPU limits count the VM thread's CPU
      time (wall time where there is no thread CPU clock, :data:`CPU_CLOCK`) minus time inside host functions.
      ``hard_cpu_limit`` (default twice that) is the
      wasmtime epoch backstop for code that never reaches the interrupt handler (a long builtin): the VM is
      then dead (:class:`VMCrashed`).
    * ``stack_limit``: bytes of C stack QuickJS may use; deep recursion raises ``RangeError``.

    There is no file system, network, environment or module loader inside: everything a script can reach
    is a host function registered with :meth:`register`.
    """

    def __init__(
        self,
        *,
        memory_limit: int = _DEFAULT_MEMORY,
        cpu_limit: float = 1.0,
        hard_cpu_limit: float | None = None,
        stack_limit: int = _DEFAULT_STACK,
        console: ConsoleCallback | None = None,
        fast: bool | None = None,
    ) -> None:
        check_limits(memory_limit=memory_limit, cpu_limit=cpu_limit, hard_cpu_limit=hard_cpu_limit,
                     stack_limit=stack_limit)
        self.memory_limit = memory_limit
        self.cpu_limit = cpu_limit
        self.hard_cpu_limit = hard_cpu_limit if hard_cpu_limit is not None else 2 * cpu_limit
        self.fast = fast if fast is not None else os.environ.get("KPLUG_SANDBOX_PLAIN") != "1"
        self._console = console
        self._dead: str | None = None
        self._fault: str | None = None  # why an import trapped the guest (the reason its trap reports)
        # the running call's CPU budget: (clock id, wall time it started or resumed, time used before that); None
        # while the VM is idle or inside a host function (the budget is paused and the host's time credited
        # after). Reading a thread's CPU clock is a system call (no vDSO), so a call does not read it: the
        # watchdog anchors the budget on its first tick (_anchor: the budget, its CPU clock then, time used then)
        # and counts CPU time from there; the time before counts as at most one tick (on a starved machine the
        # tick may come late: the limit then errs on the lenient side, never on the plugin's)
        self._budget: tuple[int, float, float] | None = None
        self._anchor: tuple[tuple[int, float, float], float, float] | None = None
        self._running = 0  # outer calls under way (a host function may call into its VM again)
        self._watchdog = get_watchdog()  # told when the first call starts and the last one ends
        self._functions: list[tuple[HostFunction, bool]] = []
        self._pending_async: dict[int, Any] = {}
        self._calls: dict[int, _Outcome | concurrent.futures.Future[Any]] = {}
        self._call_tokens = itertools.count(1)
        self._probing = False
        self._unhandled: dict[int, str] = {}  # rejected promises without a handler, by address
        self._id = next(_VM_IDS)

        engine = get_engine()
        module = get_module()
        self._store = wasmtime.Store(engine)
        self._store.set_limits(memory_size=min(2 * memory_limit + _LINEAR_OVERHEAD, WASM32_MAX_MEMORY))
        self._ctx = self._store._context()
        self._ctx_addr = address_of(self._ctx)
        self._set_epoch_deadline(self.hard_cpu_limit)
        self._callbacks: list[Any] = []  # keep ctypes callbacks alive as long as the store
        if EPOCH_CALLBACK:
            on_deadline = _EPOCH_CALLBACK_TYPE(self._on_epoch_deadline)
            self._callbacks.append(on_deadline)
            _store_epoch_deadline_callback(address_of(self._store.ptr()), on_deadline, None, None)
        imports = [self._make_import(imp) for imp in module.imports]
        # the functions the guest imports, by "module.name": tests call them with hostile arguments
        self._imports = {f"{imp.module}.{imp.name}": f for imp, f in zip(module.imports, imports, strict=True)}
        with _VMS_LOCK:
            _VMS[self._id] = self
        self._instance = wasmtime.Instance(self._store, module, imports)
        exports = self._instance.exports(self._store)
        self._memory: wasmtime.Memory = exports["memory"]  # type: ignore[assignment]
        self._exports: dict[str, wasmtime.Func] = {
            e.name: exports[e.name] for e in module.exports if e.name.startswith(("kp_", "_init"))  # type: ignore[misc]
        }
        self._raw_args = {name: (ffi.wasmtime_val_raw_t * 4)() for name in self._exports}
        self._raw_addrs = {name: ctypes.addressof(raw) for name, raw in self._raw_args.items()}
        self._func_addrs = {name: ctypes.addressof(f._func) for name, f in self._exports.items()}
        self._trap = ctypes.c_void_p()
        self._trap_addr = ctypes.addressof(self._trap)
        self._base = 0
        self._size = 0  # bytes of linear memory the host knows of: it only grows
        self._scratch_ptr = self._scratch_cap = 0
        self._refresh_base()
        self._invoke("_initialize")
        seed = int.from_bytes(os.urandom(8), "little")
        status = self._invoke("kp_init", memory_limit, stack_limit, seed & 0xFFFFFFFF, seed >> 32)
        if status != KP_OK:
            raise SandboxError(f"could not create the QuickJS runtime (status {status})")
        self._out_addr = self._invoke("kp_out")
        self._flag_addr = self._invoke("kp_flag")
        self._span(self._out_addr, 20, "the OUT record")
        self._span(self._flag_addr, 4, "the interrupt flag")
        self._read_out_scratch()
        self.register("__kplug_console", self._on_console)
        self.eval(_BOOTSTRAP, "<kplug bootstrap>")

    # ---- public API ---------------------------------------------------------------------------------

    @property
    def cpu_limit(self) -> float:
        return self._cpu_limit

    @cpu_limit.setter
    def cpu_limit(self, seconds: float) -> None:
        self._cpu_limit = _positive_seconds("CPU limit", seconds)

    @property
    def hard_cpu_limit(self) -> float:
        return self._hard_cpu_limit

    @hard_cpu_limit.setter
    def hard_cpu_limit(self, seconds: float) -> None:
        self._hard_cpu_limit = _positive_seconds("hard CPU limit", seconds)

    @property
    def crashed(self) -> str | None:
        """Why the VM died, or ``None`` while it is alive."""
        return self._dead

    def register(self, name: str, func: HostFunction, *, is_async: bool = False) -> None:
        """Define global ``name`` in JS, calling ``func`` with the JS arguments (JSON-decoded).

        Sync: ``func``'s return value (JSON-compatible) is returned to JS; an exception becomes a JS
        ``Error`` with its message. Async (``is_async=True``): JS gets a Promise at once; ``func`` may return
        a value, an awaitable or a ``concurrent.futures.Future``. Values settle the Promise immediately;
        awaitables are kept until :meth:`acall` (or the owner, through :meth:`take_pending` and
        :meth:`settle`) drives them.
        """
        fn_id = len(self._functions)
        self._functions.append((func, is_async))
        data = name.encode()
        self._write_scratch(data)
        self._check(self._invoke("kp_register", len(data), fn_id, int(is_async)))

    def eval(self, code: str, filename: str = "<eval>", *, want_result: bool = True) -> Any:
        """Evaluate a classic script; return its completion value (``None`` for ``undefined``)."""
        name = filename.encode()
        src = code.encode("utf-8", "surrogatepass")
        self._write_scratch(name, src)
        status = self._invoke("kp_eval", len(name), len(src), int(want_result))
        return self._check(status)

    def compile(self, code: str, filename: str = "<eval>") -> bytes:
        """Compile a classic script without running it and return its bytecode (for :class:`BytecodeCache`).

        The compiled script is kept: :meth:`run_compiled` runs it without parsing again. The bytecode is only
        valid for this engine build (:func:`engine_build`). A syntax error raises :class:`JSError`.
        """
        name = filename.encode()
        src = code.encode("utf-8", "surrogatepass")
        self._write_scratch(name, src)
        status = self._invoke("kp_compile", len(name), len(src))
        if status != KP_OK:
            return self._check(status)  # type: ignore[no-any-return]
        out = (ctypes.c_uint32 * 5).from_address(self._span(self._out_addr, 20, "the OUT record"))
        if out[2] != KIND_BYTES:
            self._guest_fault(f"kp_compile answered kind {out[2]}, not bytecode")
        return self._read(int(out[0]), int(out[1]), "the bytecode")

    def run_compiled(self, *, want_result: bool = True) -> Any:
        """Run the script :meth:`compile` compiled last (once); return its completion value."""
        status = self._invoke("kp_run_compiled", int(want_result))
        if status == KP_ERROR:
            raise SandboxError("nothing compiled to run")
        return self._check(status)

    def eval_bytecode(self, bytecode: bytes, *, want_result: bool = True) -> Any:
        """Run bytecode that :meth:`compile` produced with this engine build.

        Bytecode is code, and QuickJS trusts it completely: reading crafted bytes can corrupt the VM's
        memory (inside the sandbox, but still). Pass only bytes this host wrote and verified, as
        :class:`BytecodeCache` does.
        """
        if not bytecode:
            raise SandboxError("empty bytecode")
        self._write_scratch(bytecode)
        status = self._invoke("kp_eval_bytecode", len(bytecode), int(want_result))
        if status == KP_ERROR:
            raise SandboxError("bytecode does not fit the scratch buffer")
        return self._check(status)

    def call_start(self, name: str, *args: Any) -> concurrent.futures.Future[Any]:
        """Call global function ``name`` (dotted paths allowed, ``this`` is the parent object).

        Returns a future: done at once for a plain value, or when the returned Promise settles.
        """
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._start_call(name, args, fut)
        return fut

    def call(self, name: str, *args: Any) -> Any:
        """Call ``name`` and return its result; a returned Promise must settle during the job run."""
        outcome = _Outcome()
        token = self._start_call(name, args, outcome)
        if not outcome.done():
            self._calls.pop(token, None)
            raise SandboxError(
                f"{name}() returned a Promise that is still pending: use acall() or call_start()"
            )
        return outcome.result()

    def _start_call(self, name: str, args: tuple[Any, ...], outcome: _Outcome | concurrent.futures.Future[Any]) -> int:
        payload = _dumps(list(args))
        fname = name.encode()
        token = next(self._call_tokens) & 0x7FFFFFFF or 1
        self._calls[token] = outcome
        try:
            self._write_scratch(fname, payload)  # name NUL args, without joining 100 KB of args in Python
            status = self._invoke("kp_call", len(fname), len(payload), token)
            if status == KP_PENDING:
                return token
            self._calls.pop(token, None)
            value = self._check(status)
        except BaseException as exc:
            self._calls.pop(token, None)
            if outcome.done():  # settled during the job run before the failure
                return token
            if isinstance(exc, (SandboxError, ValueConversionError)):
                outcome.set_exception(exc)
                return token
            raise
        outcome.set_result(value)
        return token

    async def acall(self, name: str, *args: Any) -> Any:
        """Call ``name`` from asyncio, driving pending async host functions until its Promise settles."""
        fut = self.call_start(name, *args)
        running: dict[int, asyncio.Future[Any]] = {}
        while not fut.done():
            for pid, obj in self.take_pending().items():
                running[pid] = asyncio.ensure_future(_as_awaitable(obj))
            if not running:
                raise SandboxError(f"{name}() returned a Promise that can never settle (nothing pending)")
            done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
            for pid, task in list(running.items()):
                if task in done:
                    del running[pid]
                    exc = task.exception()
                    if exc is None:
                        self.settle(pid, task.result())
                    else:
                        self.settle(pid, error=exc)
        return fut.result()

    def interrupt(self) -> None:
        """Stop the operation running now as if its CPU limit had passed: it raises :class:`CPUTimeout` and
        the VM stays usable. Safe to call from any thread; does nothing while the VM is idle."""
        if self._running:
            self._raise_flag()

    def take_pending(self) -> dict[int, Any]:
        """Async host calls started since the last look: ``{promise_id: awaitable or future}``."""
        pending, self._pending_async = self._pending_async, {}
        return pending

    def settle(self, promise_id: int, value: Any = None, error: BaseException | str | None = None) -> None:
        """Resolve (or, with ``error``, reject with an ``Error`` of that message) an async host call's
        Promise, then run the job queue."""
        if error is not None:
            payload = _dumps(str(error) if not isinstance(error, str) else error)
        elif value is None:
            payload = b"null"
        else:
            try:
                payload = _dumps(value)
            except ValueConversionError as exc:
                payload, error = _dumps(str(exc)), exc
        try:
            self._write_scratch(payload)
        except OutOfMemory:  # the value (or message) does not fit into the VM: reject with the reason instead
            reason = _too_large(len(payload)) if error is None else str(error)
            error = OutOfMemory(reason)
            fitted = self._fit_message(reason)
            if fitted is None:
                raise
            payload = fitted
            self._write_scratch(payload)
        status = self._invoke("kp_settle", promise_id, int(error is not None), len(payload))
        if status == KP_ERROR:
            raise SandboxError(f"no pending host call with id {promise_id}")
        self._check(status)

    def run_jobs(self) -> None:
        """Run every pending Promise job."""
        self._check(self._invoke("kp_run_jobs"))

    def memory_used(self) -> int:
        """Bytes the JS heap has allocated (QuickJS's count)."""
        return int(self._invoke("kp_memory"))

    def linear_memory_size(self) -> int:
        return int(self._memory.data_len(self._store))

    def gc(self) -> None:
        self._invoke("kp_gc")

    def close(self) -> None:
        if self._dead is None:
            self._dead = "closed"
        with _VMS_LOCK:
            _VMS.pop(self._id, None)
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(VMCrashed(f"VM {self._dead}"))
        self._calls.clear()
        self._base = 0
        self._exports = {}
        self._func_addrs = {}
        self._instance = None  # type: ignore[assignment]
        self._store = None  # type: ignore[assignment]

    def __enter__(self) -> VM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- invoking exports ---------------------------------------------------------------------------

    def _set_epoch_deadline(self, seconds: float, ctx: Any = None) -> None:
        if isinstance(ctx, wasmtime.Caller):
            ctx = ctx._context()  # type: ignore[attr-defined]
        _set_epoch_deadline(address_of(ctx) if ctx is not None else self._ctx_addr, _ticks(seconds))

    def _used(self) -> float | None:
        """CPU seconds the running call has used so far (host time excluded), or None if it is paused or idle:
        counted on its CPU clock from the anchor on, and the time before the anchor as at most one tick."""
        budget = self._budget
        if budget is None:
            return None
        clock, wall, before = budget
        anchor = self._anchor
        if anchor is not None and anchor[0] is budget:
            return anchor[2] + (_now(clock) - anchor[1])
        return before + min(time.monotonic() - wall, EPOCH_TICK_S) if clock != _WALL else before + (
            time.monotonic() - wall)

    def _anchor_budget(self) -> None:
        """Start counting the running call's CPU clock (once per budget; from the watchdog's first tick, or the
        epoch callback): a call shorter than a tick never pays for reading it."""
        budget = self._budget
        if budget is None or budget[0] == _WALL:
            return
        anchor = self._anchor
        if anchor is None or anchor[0] is not budget:
            clock, wall, before = budget
            self._anchor = (budget, _now(clock), before + min(time.monotonic() - wall, EPOCH_TICK_S))

    def _watchdog_tick(self) -> None:
        """On the watchdog's thread: raise the soft interrupt flag once the running call used its CPU limit."""
        self._anchor_budget()
        used = self._used()
        if used is not None and used >= self._cpu_limit:
            self._raise_flag()

    def _on_epoch_deadline(self, ctx: Any, data: Any, delta: Any, kind: Any) -> int:
        """wasmtime's epoch-deadline callback, on the VM's own thread: extend the deadline while the call's CPU
        time (host time excluded) is under the hard limit; otherwise fail the call, which kills the VM."""
        try:
            self._anchor_budget()
            used = self._used()
            remaining = self._hard_cpu_limit - (used or 0.0)
            if remaining > 0:
                delta[0] = _ticks(remaining)
                kind[0] = _UPDATE_DEADLINE_CONTINUE
                return 0
            reason = self._hard_limit_reason()
        except BaseException as exc:  # never unwind through wasm: stop the call instead
            reason = f"the hard CPU limit's check failed: {str(exc) or type(exc).__name__}"
        self._fault = self._fault or reason
        message = reason.encode()
        error = ffi.wasmtime_error_new(ctypes.create_string_buffer(message))
        return ctypes.cast(error, ctypes.c_void_p).value or 0

    def _hard_limit_reason(self) -> str:
        return (f"stopped by the hard CPU limit of {self.hard_cpu_limit:g} s: one operation never reached a "
                "point where the soft limit could interrupt it (a long builtin call)")

    def _invoke(self, name: str, *args: int, ctx: Any = None) -> int:
        if ctx is None:
            return int(on_big_stack(lambda: self._invoke_here(name, args, None)))
        return self._invoke_here(name, args, ctx)

    def _invoke_here(self, name: str, args: tuple[int, ...], ctx: Any) -> int:
        if self._dead is not None:
            raise VMCrashed(f"VM is dead: {self._dead}")
        outer = ctx is None
        if outer:
            outer_budget = self._budget  # not None only if a host function calls into its VM
            self._set_epoch_deadline(self.hard_cpu_limit)
            self._budget = (_thread_clock(), time.monotonic(), 0.0)
            self._running += 1
            if self._running == 1:
                self._watchdog.enter(self)
        try:
            if self.fast:
                return self._invoke_fast(name, args, ctx if ctx is not None else self._ctx)
            store = ctx if ctx is not None else self._store
            result = self._exports[name](store, *args)
            if result is None:
                return 0
            return int(result) & 0xFFFFFFFF if name in _UNSIGNED_RESULTS else int(result)
        except wasmtime.Trap as trap:
            self._die(self._fault or self._trap_reason(trap))
            raise VMCrashed(f"the VM crashed: {self._dead}") from None
        except wasmtime.WasmtimeError as err:
            self._die(self._fault or f"wasmtime error: {err}")
            raise VMCrashed(f"the VM crashed: {self._dead}") from None
        finally:
            if outer:
                self._running -= 1
                self._budget = outer_budget
                if not self._running:
                    self._watchdog.leave(self)
                if self._unhandled:
                    self._report_unhandled()

    def _invoke_fast(self, name: str, args: tuple[int, ...], ctx: Any) -> int:
        raw = self._raw_args[name]
        for i, a in enumerate(args):
            raw[i].i32 = a if a < 0x80000000 else a - 0x100000000
        trap = self._trap
        trap.value = None
        ctx_addr = self._ctx_addr if ctx is self._ctx else address_of(ctx)
        err = _call_unchecked(ctx_addr, self._func_addrs[name], self._raw_addrs[name], 4, self._trap_addr)
        if trap.value:
            raise wasmtime.Trap._from_ptr(ctypes.cast(trap.value, ctypes.POINTER(ffi.wasm_trap_t)))
        if err:
            raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))
        return raw[0].i32 & 0xFFFFFFFF if name in _UNSIGNED_RESULTS else raw[0].i32

    def _trap_reason(self, trap: wasmtime.Trap) -> str:
        code = trap.trap_code
        if code == wasmtime.TrapCode.INTERRUPT:
            return self._hard_limit_reason()
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            return "the native wasm stack overflowed"
        return f"wasm trap: {_trap_text(trap)}"

    def _die(self, reason: str) -> None:
        self._dead = reason
        for fut in self._calls.values():
            if not fut.done():
                fut.set_exception(VMCrashed(f"the VM crashed: {reason}"))
        self._calls.clear()

    def _raise_flag(self) -> None:
        if self._dead is None and self._base:
            ctypes.c_int32.from_address(self._base + self._flag_addr).value = 1

    # ---- linear memory ------------------------------------------------------------------------------
    #
    # Every pointer and length the guest hands over (export results, the OUT record, host_call and WASI
    # arguments) is checked by _span before the host touches the bytes. The memory's base address is fixed for
    # the VM's life (the engine reserves the whole 4 GiB and never moves a memory: _engine.get_engine), and
    # wasm memory never shrinks, so a range inside the size last seen stays valid; a range past it makes the
    # host look at the size again before it is refused.

    def _refresh_base(self, ctx: Any = None) -> None:
        if isinstance(ctx, wasmtime.Caller):
            ctx = ctx._context()  # type: ignore[attr-defined]
        ctx = ctx if ctx is not None else self._ctx
        mem = ctypes.byref(self._memory._memory)  # type: ignore[attr-defined]
        self._base = address_of(ffi.wasmtime_memory_data(ctx, mem))
        self._size = int(ffi.wasmtime_memory_data_size(ctx, mem))

    def _span(self, ptr: int, n: int, what: str, ctx: Any = None) -> int:
        """The host address of guest bytes ``[ptr, ptr + n)``, or :class:`_GuestFault` (the VM dies) if any of
        them lies outside the guest's memory."""
        end = ptr + n
        if ptr < 0 or n < 0 or end > self._size:
            if ptr >= 0 and n >= 0:
                self._refresh_base(ctx)
            if ptr < 0 or n < 0 or end > self._size:
                self._guest_fault(f"{what} is out of bounds: {n} bytes at {ptr:#x}, in {self._size} bytes of "
                                  "linear memory")
        return self._base + ptr

    def _guest_fault(self, reason: str) -> None:
        reason = f"the guest broke the host boundary: {reason}"
        self._fault = self._fault or reason
        self._die(self._fault)
        raise _GuestFault(f"the VM crashed: {self._fault}")

    def _read_out_scratch(self, ctx: Any = None) -> None:
        out = (ctypes.c_uint32 * 5).from_address(self._span(self._out_addr, 20, "the OUT record", ctx))
        ptr, cap = int(out[3]), int(out[4])
        self._span(ptr, cap, "the scratch buffer", ctx)
        self._scratch_ptr, self._scratch_cap = ptr, cap

    def _write_scratch(self, data: bytes, args: bytes | None = None, ctx: Any = None) -> None:
        """Put ``data`` (and, if given, a NUL and ``args``) at the start of the scratch buffer."""
        if self._dead is not None:
            raise VMCrashed(f"VM is dead: {self._dead}")
        n = len(data) if args is None else len(data) + 1 + len(args)
        if n + 1 > self._scratch_cap:
            # kp_buf takes a 32-bit size and rounds up to a power of two: refuse what no wasm32 VM can hold
            ptr = self._invoke("kp_buf", n + 1, ctx=ctx) if n + 1 < WASM32_MAX_MEMORY // 2 else 0
            if not ptr:
                raise OutOfMemory(f"cannot pass {_mib(n)} into the VM: its memory limit is reached")
            self._refresh_base(ctx)
            self._read_out_scratch(ctx)
            if self._scratch_ptr != ptr or n + 1 > self._scratch_cap:
                self._guest_fault(f"kp_buf({n + 1}) gave {self._scratch_cap} bytes at {ptr:#x}")
        base = self._span(self._scratch_ptr, n + 1, "the scratch buffer", ctx)
        ctypes.memmove(base, data, len(data))
        if args is not None:
            ctypes.memmove(base + len(data), b"\0", 1)
            ctypes.memmove(base + len(data) + 1, args, len(args))

    def _fit_message(self, message: str) -> bytes | None:
        """``message`` as JSON that fits into the scratch buffer as it is (no allocation in the guest, so this
        cannot fail for lack of memory), shortened with a marker if need be; ``None`` if not even that fits."""
        payload = _dumps(message)
        keep = len(message)
        while len(payload) + 1 > self._scratch_cap:
            if keep == 0:
                return None
            keep //= 2
            payload = _dumps(message[:keep] + "... (truncated)")
        return payload

    def _read(self, ptr: int, n: int, what: str = "a guest buffer", ctx: Any = None) -> bytes:
        return ctypes.string_at(self._span(ptr, n, what, ctx), n) if n else b""

    def _read_out(self) -> tuple[int, bytes]:
        out = (ctypes.c_uint32 * 5).from_address(self._span(self._out_addr, 20, "the OUT record"))
        kind = out[2]
        if kind != KIND_JSON:
            return kind, b""
        return kind, self._read(int(out[0]), int(out[1]), "the OUT value")

    def _check(self, status: int) -> Any:
        if status == KP_OK:
            kind, data = self._read_out()
            return None if kind == KIND_UNDEFINED else _loads(data)
        if status == KP_OOM:
            err = self._error_from_out(status)
            if not self._usable_after_oom():
                self._die("out of memory, and the heap cannot recover (fragmented linear memory)")
                raise VMCrashed(f"the VM crashed: {self._dead}")
            raise err
        if status in (KP_EXCEPTION, KP_INTERRUPTED):
            raise self._error_from_out(status)
        raise SandboxError(f"unexpected guest status {status}")

    def _usable_after_oom(self) -> bool:
        """After an out-of-memory error, can the VM still allocate? (Its arenas may stay fragmented.)"""
        if self._probing:
            return True
        self._probing = True
        try:
            self._invoke("kp_gc")
            self.eval("[0].map(String).join()", "<kplug probe>")
            return True
        except OutOfMemory:
            return False
        finally:
            self._probing = False

    def _error_from_out(self, status: int, data: bytes | None = None) -> SandboxError:
        if data is None:
            data = self._read_out()[1]
        info: dict[str, Any] = {}
        if data:
            try:
                info = _loads(data)
            except (ValueError, ValueConversionError):
                info = {}
        if status == KP_INTERRUPTED:
            return CPUTimeout(f"the script ran longer than the CPU limit of {self.cpu_limit:g} s")
        if status == KP_OOM:
            mib = self.memory_limit // (1 << 20)
            return OutOfMemory(f"the script exceeded the memory limit of {mib} MiB")
        return JSError(
            str(info.get("name") or ""),
            str(info.get("message", "")),
            str(info.get("stack") or ""),
            info.get("value", info.get("code")),
        )

    # ---- imports ------------------------------------------------------------------------------------

    def _make_import(self, imp: wasmtime.ImportType) -> wasmtime.Func:
        handlers: dict[tuple[str, str | None], Callable[..., int]] = {
            ("kplug", "host_call"): self._host_call,
            ("wasi_snapshot_preview1", "clock_time_get"): self._wasi_clock_time_get,
            ("wasi_snapshot_preview1", "fd_write"): self._wasi_fd_write,
        }
        handler = handlers.get((imp.module, imp.name))
        ty = imp.type
        assert isinstance(ty, wasmtime.FuncType)
        if handler is None:
            def handler(ctx: Any, *args: int) -> int:
                return WASI_EBADF if imp.module == "wasi_snapshot_preview1" else WASI_ENOSYS
        nparams = len(ty.params)
        name = f"{imp.module}.{imp.name}"
        if self.fast:
            return self._fast_import(ty, handler, nparams, name)

        def plain(caller: wasmtime.Caller, *args: int) -> int:
            try:
                return handler(caller, *args)
            except BaseException as exc:  # never unwind through wasm: trap the guest instead
                raise wasmtime.Trap(self._import_failed(name, exc)) from None

        return wasmtime.Func(self._store, ty, plain, access_caller=True)

    def _import_failed(self, name: str, exc: BaseException) -> str:
        """An import could not complete (the guest broke the protocol, the VM died under it, or a host bug):
        the guest is trapped with this reason, and the VM is dead. Nothing unwinds through wasm."""
        if not isinstance(exc, VMCrashed):
            log.error("host import %s failed", name, exc_info=exc)
        if self._fault is None:
            self._fault = self._dead or f"host import {name} failed: {str(exc) or type(exc).__name__}"
        return self._fault

    def _fast_import(self, ty: wasmtime.FuncType, handler: Callable[..., int], nparams: int,
                     name: str) -> wasmtime.Func:
        caller_context = _caller_context

        def callback(env: Any, caller: Any, raw: Any, nraw: int) -> int:
            try:
                ctx = caller_context(caller)
                raw[0].i32 = handler(ctx, *[raw[i].i32 for i in range(nparams)])
                return 0
            except BaseException as exc:  # never unwind through wasm: trap the guest instead
                try:
                    message = self._import_failed(name, exc).encode()
                    trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(message, len(message)), len(message))
                    return ctypes.cast(trap, ctypes.c_void_p).value or 0
                except BaseException:  # pragma: no cover - out of memory while building the trap
                    raw[0].i32 = WASI_ENOSYS
                    return 0

        cb = ffi.wasmtime_func_unchecked_callback_t(callback)
        fin = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(0)
        self._callbacks.append(cb)
        func = ffi.wasmtime_func_t()
        ffi.wasmtime_func_new_unchecked(self._ctx, ty.ptr(), cb, None, fin, ctypes.byref(func))
        return wasmtime.Func._from_raw(func)

    def _host_call(self, ctx: Any, fn_id: int, ptr: int, n: int, token: int) -> int:
        """kplug.host_call. The time it takes is the host's, not the plugin's: the call's CPU budget is paused
        meanwhile and the epoch deadline moved out of reach (so that neither limit can fire, also in a nested
        call such as kp_buf for a large result), then both resume from where the call had got to."""
        budget = self._budget
        if budget is None:  # paused already (a host function's own call into its VM), or no call running
            return self._host_call_here(ctx, fn_id, ptr, n, token)
        used = self._used() or 0.0
        self._budget = None
        self._set_epoch_deadline(_FAR, ctx)
        try:
            return self._host_call_here(ctx, fn_id, ptr, n, token)
        finally:
            if self._dead is None:
                self._set_epoch_deadline(max(self._hard_cpu_limit - used, EPOCH_TICK_S), ctx)
            self._budget = (budget[0], time.monotonic(), used)  # a new budget: anchored again on the next tick

    def _host_call_here(self, ctx: Any, fn_id: int, ptr: int, n: int, token: int) -> int:
        """Answers (see kplug.c): ``n >= 0``, a JSON result of ``n`` bytes in scratch; ``-n - 1`` bytes of a
        JSON error message; :data:`KP_HOST_NO_ROOM`. Any failure of the host function, including a result too
        large to write into the VM, is answered as an error the script sees."""
        ptr &= 0xFFFFFFFF
        if fn_id < 0:
            if fn_id < OP_REJECTION_HANDLED:
                self._guest_fault(f"host_call with unknown notification {fn_id}")
            if n < 0 and not (fn_id == OP_SETTLED_OK and n == -1):  # -1: the call settled with undefined
                self._guest_fault(f"host_call notification {fn_id} with length {n}")
            data = self._read(ptr, max(n, 0), "a host_call notification", ctx)
            self._on_notification(fn_id, data, token, n)
            return 0
        if fn_id >= len(self._functions):
            self._guest_fault(f"host_call to host function {fn_id}, of {len(self._functions)}")
        data = self._read(ptr, n, "host_call arguments", ctx)
        func, is_async = self._functions[fn_id]
        try:
            args = _loads(data)
            if not isinstance(args, list):
                raise ValueConversionError("host call arguments are not an array")
            result = func(*args)
            if is_async:
                if result is not None and (inspect.isawaitable(result)
                                           or isinstance(result, concurrent.futures.Future)):
                    self._pending_async[token] = result
                    return 0
                # an immediate value (None for most ops) still settles asynchronously, as the spec asks
                self._pending_async[token] = _Ready(result)
                return 0
            payload = _dumps(result)
        except BaseException as exc:
            return self._answer_error(str(exc) or type(exc).__name__, ctx)
        try:
            self._write_scratch(payload, ctx=ctx)
        except OutOfMemory:
            return self._answer_error(_too_large(len(payload)), ctx)
        return len(payload)

    def _answer_error(self, message: str, ctx: Any) -> int:
        payload = _dumps(message)
        try:
            self._write_scratch(payload, ctx=ctx)
        except OutOfMemory:  # a long message into a full VM: as much as fits without allocating
            fitted = self._fit_message(message)
            if fitted is None:
                return KP_HOST_NO_ROOM
            payload = fitted
            self._write_scratch(payload, ctx=ctx)
        return -len(payload) - 1

    def _on_notification(self, op: int, data: bytes, token: int, n: int) -> None:
        if op == OP_UNHANDLED_REJECTION:
            self._unhandled[token] = str(self._error_from_out(KP_EXCEPTION, data))
            return
        if op == OP_REJECTION_HANDLED:
            self._unhandled.pop(token, None)
            return
        fut = self._calls.pop(token, None)
        if fut is None or fut.done():
            return
        if op == OP_SETTLED_OK:
            try:
                fut.set_result(None if n < 0 else _loads(data))
            except ValueConversionError as exc:
                fut.set_exception(exc)
        else:
            fut.set_exception(self._error_from_out(KP_EXCEPTION, data))

    def _report_unhandled(self) -> None:
        pending, self._unhandled = self._unhandled, {}
        for text in pending.values():
            self._emit_console("error", f"Uncaught (in promise) {text}")

    def _on_console(self, level: str, text: str) -> None:
        self._emit_console(level, text)

    def _emit_console(self, level: str, text: str) -> None:
        if self._console is not None:
            self._console(level, text)
        else:
            log.log(logging.WARNING if level in ("warn", "error") else logging.INFO, "[js] %s", text)

    def _wasi_clock_time_get(self, ctx: Any, clock_id: int, precision: int, out_ptr: int) -> int:
        now = time.time_ns() if clock_id == 0 else time.monotonic_ns()
        ctypes.c_uint64.from_address(self._span(out_ptr & 0xFFFFFFFF, 8, "clock_time_get's result", ctx)).value = now
        return 0

    def _wasi_fd_write(self, ctx: Any, fd: int, iovs: int, iovs_len: int, nwritten: int) -> int:
        iovs &= 0xFFFFFFFF
        out = self._span(nwritten & 0xFFFFFFFF, 4, "fd_write's nwritten", ctx)
        if iovs_len < 0:
            self._guest_fault(f"fd_write with {iovs_len} iovecs")
        vecs = (ctypes.c_uint32 * (2 * iovs_len)).from_address(self._span(iovs, 8 * iovs_len, "fd_write's iovecs", ctx))
        total = 0
        chunks = []
        for i in range(iovs_len):
            base, length = int(vecs[2 * i]), int(vecs[2 * i + 1])
            self._span(base, length, f"fd_write's buffer {i}", ctx)
            take = min(length, _FD_WRITE_MAX - total)
            chunks.append(self._read(base, take, f"fd_write's buffer {i}", ctx))
            total += take
            if total >= _FD_WRITE_MAX:
                break
        text = b"".join(chunks).decode("utf-8", "replace").rstrip("\n")
        if text:
            self._emit_console("error" if fd == 2 else "info", text)
        ctypes.c_uint32.from_address(out).value = total
        return 0


def _ticks(seconds: float) -> int:
    """Epoch ticks for ``seconds`` (at least 2: the next tick may come at once); a huge value must not wrap."""
    return min(max(2, int(seconds / EPOCH_TICK_S) + 1), 1 << 62)


def _too_large(n: int) -> str:
    return f"host result too large for the plugin's memory ({_mib(n)})"


class _Outcome:
    """The result of a synchronous :meth:`VM.call`: the part of a Future's interface the guest's
    notifications use, without the lock and condition a Future pays for on every call."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._value, self._done = value, True

    def set_exception(self, error: BaseException) -> None:
        self._error, self._done = error, True

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class _Ready:
    """An async host call whose value was available at once; it still settles in a later job."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self.value
        yield  # pragma: no cover - makes this a generator


async def _as_awaitable(obj: Any) -> Any:
    if isinstance(obj, _Ready):
        return obj.value
    if isinstance(obj, concurrent.futures.Future):
        return await asyncio.wrap_future(obj)
    return await obj


def _trap_text(trap: wasmtime.Trap) -> str:
    text = str(trap).strip().splitlines()
    return text[0] if text else "trap"


AwaitableLike = Awaitable[Any] | concurrent.futures.Future[Any]
