"""The process-wide wasmtime engine, the compiled-module cache, and the deadline watchdog."""

from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import importlib.metadata
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
import wasmtime
from wasmtime import _ffi as ffi

from ..errors import GuestBuildError

__all__ = [
    "EPOCH_TICK_S",
    "Watchdog",
    "big_stack_thread",
    "engine_build",
    "get_engine",
    "get_module",
    "load_module",
    "module_cache_dir",
    "module_cache_path",
    "on_big_stack",
    "on_wasm_thread",
    "wasm_path",
]

# Native stack wasm may use. QuickJS checks its depth against the guest's C stack (in linear memory), but
# some C recursions (JSON.parse, the parser) use 10-15x more native stack than C stack: measured, a 1 MiB
# QuickJS limit needs about 14 MiB of native stack to end in RangeError rather than a trap; 24 MiB leaves a
# margin. wasmtime refuses (and wasmtime-py aborts on) a max_wasm_stack above its async_stack_size, which
# wasmtime-py does not expose: it is set through the C API below. Wasm runs on the calling thread's stack,
# so VMs run only on threads made by big_stack_thread() (other callers are handed over to one).
MAX_WASM_STACK = 24 * 1024 * 1024
THREAD_STACK_SIZE = 64 * 1024 * 1024
EPOCH_TICK_S = 0.01

_lock = threading.RLock()
_engine: wasmtime.Engine | None = None
_module: wasmtime.Module | None = None
_watchdog: Watchdog | None = None


def wasm_path() -> Path:
    """The guest built into the package (by the hatch hook), or ``$KPLUG_WASM`` if set."""
    env = os.environ.get("KPLUG_WASM")
    path = Path(env) if env else Path(__file__).resolve().parent / "guest" / "kplug.wasm"
    if not path.exists():
        raise GuestBuildError(
            f"the wasm guest is missing at {path}: build it with "
            "`python -m kplug_lab.sandbox.guest.build` (or reinstall the package: its build hook builds it)"
        )
    return path


_builds: dict[Path, str] = {}


def engine_build() -> str:
    """The sha256 of the guest in use: compiled bytecode is only valid for the engine build that wrote it."""
    path = wasm_path()
    with _lock:
        if path not in _builds:
            _builds[path] = _sha256(path)
        return _builds[path]


def module_cache_dir() -> Path:
    env = os.environ.get("KPLUG_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("kplug_lab")) / "modules"


def get_engine() -> wasmtime.Engine:
    global _engine
    with _lock:
        if _engine is None:
            config = wasmtime.Config()
            config.epoch_interruption = True
            _set_async_stack_size(config, MAX_WASM_STACK + 1024 * 1024)
            config.max_wasm_stack = MAX_WASM_STACK
            # a VM's linear memory never moves: the host keeps its base address for the VM's life (_vm.VM._span)
            config.memory_reservation = 1 << 32
            config.memory_may_move = False
            config.cranelift_opt_level = "speed"
            _engine = wasmtime.Engine(config)
        return _engine


def _set_async_stack_size(config: wasmtime.Config, size: int) -> None:
    setter = ffi.dll.wasmtime_config_async_stack_size_set
    setter.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    setter.restype = None
    setter(ctypes.cast(config.ptr(), ctypes.c_void_p), size)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def module_cache_path() -> Path:
    """Where the compiled guest is cached: keyed by (wasm sha256, wasmtime version)."""
    key = f"{_sha256(wasm_path())}-{importlib.metadata.version('wasmtime')}"
    return module_cache_dir() / f"kplug-{key}.cwasm"


def get_module() -> wasmtime.Module:
    """The compiled guest, loaded once per process (see :func:`load_module`)."""
    global _module
    with _lock:
        if _module is None:
            _module = load_module()
        return _module


def load_module() -> wasmtime.Module:
    """Load the compiled guest from the on-disk cache, or compile it and fill the cache."""
    engine = get_engine()
    path = wasm_path()
    cached = module_cache_path()
    if cached.exists():
        try:
            return wasmtime.Module.deserialize_file(engine, str(cached))
        except Exception:
            pass  # stale or corrupt cache entry: recompile below
    module = wasmtime.Module.from_file(engine, str(path))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(module.serialize())
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache only costs compile time
    return module


def get_watchdog() -> Watchdog:
    global _watchdog
    with _lock:
        if _watchdog is None:
            _watchdog = Watchdog(get_engine())
        return _watchdog


class Watchdog:
    """One thread for all VMs: advances the wasmtime epoch (the hard backstop) and raises the soft CPU flag
    of any VM whose current call used up its CPU limit.

    A VM tells the watchdog when a call starts (:meth:`enter`) and when the last one ends (:meth:`leave`); the
    thread ticks only while some VM has a call under way and sleeps otherwise, so idle plugins cost nothing
    (a thousand idle plugins cost 12-27 % of a core when it ticked for every live VM; docs/adr/0008). A
    running call keeps its budget in one attribute (``_budget``: the clock to read, the VM thread's CPU clock
    where the platform has one, and where the count started; ``None`` inside a host function); each tick
    anchors the budget of a call it sees for the first time on that clock and checks it from then on (a call
    shorter than a tick never reads a CPU clock, which costs a system call).
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine_ptr = engine.ptr()
        self._cond = threading.Condition(threading.Lock())
        self._running: dict[int, Any] = {}  # id(vm) -> vm, for VMs with a call under way
        self._tick_hooks: list[Callable[[], None]] = []
        self._thread = threading.Thread(target=self._run, name="kplug-watchdog", daemon=True)
        self._thread.start()

    def enter(self, vm: Any) -> None:
        """A call of ``vm`` starts. ``vm`` must have ``_budget`` (``None`` while nothing counts) and
        ``_watchdog_tick()``, which raises its soft flag once the running call used its CPU limit."""
        with self._cond:
            if not self._running:
                self._cond.notify()
            self._running[id(vm)] = vm

    def leave(self, vm: Any) -> None:
        """The last call of ``vm`` under way ended."""
        self._running.pop(id(vm), None)

    def on_tick(self, fn: Callable[[], None]) -> None:
        """Also call ``fn`` on the watchdog's thread at every tick while some VM runs (it must be quick)."""
        with self._cond:
            self._tick_hooks.append(fn)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._running:
                    self._cond.wait()
                vms = list(self._running.values())
                hooks = list(self._tick_hooks)
            ffi.wasmtime_engine_increment_epoch(self._engine_ptr)
            for vm in vms:
                if vm._budget is not None:
                    try:
                        vm._watchdog_tick()
                    except Exception:  # a VM torn down meanwhile (or its thread gone): nothing to interrupt
                        pass
            del vms
            for hook in hooks:
                try:
                    hook()
                except Exception:  # a hook must never stop the epoch
                    pass
            time.sleep(EPOCH_TICK_S)


def address_of(pointer: object) -> int:
    return ctypes.cast(pointer, ctypes.c_void_p).value or 0  # type: ignore[call-overload,arg-type]


_T = TypeVar("_T")
_tls = threading.local()
_stack_size_lock = threading.Lock()
_executor_thread: _BigStackExecutor | None = None


def big_stack_thread(target: Callable[..., Any], *, name: str, args: tuple[Any, ...] = (),
                     daemon: bool = True) -> threading.Thread:
    """A thread with enough native stack to run wasm (see MAX_WASM_STACK). Not started."""

    def run() -> None:
        _tls.big_stack = True
        target(*args)

    with _stack_size_lock:
        old = threading.stack_size(THREAD_STACK_SIZE)
        try:
            thread = threading.Thread(target=run, name=name, daemon=daemon)
            thread.start = _started_with_size(thread.start)  # type: ignore[method-assign]
        finally:
            threading.stack_size(old)
    return thread


def on_wasm_thread(fn: Callable[[], _T], *, name: str = "kplug-run") -> _T:
    """Run ``fn()`` on a new thread made by :func:`big_stack_thread`, wait for it, and return its result (or
    raise its exception here).

    Each call gets a thread of its own, as the plugin host gives each plugin one, so VM calls made inside
    ``fn`` run in place, without the hand-over :func:`on_big_stack` does for other threads. For benchmarks,
    tests and scripts that want to measure or exercise the host's setup from an ordinary thread.
    """
    results: list[_T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = big_stack_thread(target, name=name)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def _started_with_size(start: Callable[[], None]) -> Callable[[], None]:
    # The stack size is read when the thread starts, not when the object is made.
    def start_big() -> None:
        with _stack_size_lock:
            old = threading.stack_size(THREAD_STACK_SIZE)
            try:
                start()
            finally:
                threading.stack_size(old)

    return start_big


class _BigStackExecutor:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue()
        )
        big_stack_thread(self._run, name="kplug-wasm").start()

    def _run(self) -> None:
        while True:
            fn, fut = self._queue.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def submit(self, fn: Callable[[], Any]) -> Any:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return fut.result()


def on_big_stack(fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` here if this thread has a big stack, else on the shared kplug-wasm thread."""
    global _executor_thread
    if getattr(_tls, "big_stack", False):
        return fn()
    with _lock:
        if _executor_thread is None:
            _executor_thread = _BigStackExecutor()
    return _executor_thread.submit(fn)
