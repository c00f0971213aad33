"""One running plugin: its VM on its actor thread, its lifecycle (spec §2), and the host operations its
``siyuan`` and ``kplug`` globals reach (the JS side is ``host/js/``, one file per capability, joined by
``host/js/__init__.py``; the operations are ``host/ops/``, named in ``host/ops/names.py``).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import (
    CallTimeout,
    CPUTimeout,
    HostOpError,
    JSError,
    KplugError,
    MethodNotFound,
    OutOfMemory,
    PluginCallError,
    PluginNotRunning,
    SandboxError,
    VMCrashed,
)
from ...sandbox import VM, BytecodeCache
from .. import js
from ..ops.dispatch import HostOps
from ..ops.storage import Storage
from .actor import Actor
from .api import NO_PARAMS, EventStreamPort, HostAPI, LogRecord, MethodInfo, PluginInfo, PluginState, WebSocketPort
from .bounds import LogBuffer, clip_text
from .config import HostConfig
from .context import PluginContext, ToolRegistry
from .manifest import PluginSource
from .shared import SharedDict

if TYPE_CHECKING:
    from ...durable.store import DurableStore

__all__ = ["Plugin", "PluginOwner", "js_detail"]

log = logging.getLogger("kplug_lab.host")

_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR}


_NATIVE_BRIDGE = """
globalThis.__kplug_native = Object.freeze({
  call: globalThis.__kplug_native_call,
  callAsync: globalThis.__kplug_native_call_async,
});
delete globalThis.__kplug_native_call;
delete globalThis.__kplug_native_call_async;
"""


class PluginOwner(HostAPI, Protocol):
    """What a plugin needs from the host that runs it (:class:`~kplug_lab.host.runtime.manager.PluginManager`)."""

    platform: str
    workspace: Path | None
    tools_registry: ToolRegistry

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def durable(self) -> DurableStore: ...

    def state_changed(self, plugin: Plugin, state: PluginState) -> None:
        """``plugin`` entered ``state`` (called on any thread)."""

    def log_emitted(self, record: LogRecord) -> None:
        """A plugin logged ``record`` (called on any thread)."""

    def plugin_crashed(self, plugin: Plugin, reason: str) -> None:
        """The VM of ``plugin`` died (called on the loop)."""

    def release_tools(self, plugin: Plugin) -> None:
        """Drop every tool ``plugin`` registered."""

    def broadcast(self, name: str, method: str, params: Any, done: Callable[[], None] | None = None) -> None:
        """``siyuan.rpc.broadcast`` of plugin ``name``; ``done`` once it was handed to the subscribers."""

    def watch_storage(self, plugin: Plugin, target: Path, add: bool) -> None:
        """Start or stop ``fs-notify`` events of ``target`` for ``plugin``."""


class _HostScripts:
    """The host's own scripts (the prelude, durable.js), compiled once per process and kept in memory: every
    plugin start evaluates them from bytecode, 2 ms of CPU instead of 16 for the prelude (docs/adr/0008). They
    are the host's code, compiled here from the host's source, so unlike a plugin's bytecode on disk
    (:class:`BytecodeCache`) there is nothing to check; this does not depend on ``HostConfig.bytecode_cache``."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], bytes] = {}

    def eval(self, vm: VM, code: str, filename: str) -> None:
        bytecode = self._compiled.get((filename, code))
        if bytecode is not None:
            vm.eval_bytecode(bytecode, want_result=False)
            return
        try:
            bytecode = vm.compile(code, filename)
        except OutOfMemory:  # a VM too small to hold the bytecode as well: evaluate as it is
            vm.eval(code, filename, want_result=False)
            return
        self._compiled[(filename, code)] = bytecode  # two first starts at once both compile; either copy serves
        vm.run_compiled(want_result=False)


_HOST_SCRIPTS = _HostScripts()


class Plugin:
    """A started plugin instance. A restart always makes a new instance (and a new VM)."""

    def __init__(self, source: PluginSource, config: HostConfig, owner: PluginOwner) -> None:
        self.source = source
        self.name = source.name
        self.config = config
        self.owner = owner
        self.loop = owner.loop
        self.state = PluginState.READY
        self.error: str | None = None
        self.hook_errors: list[str] = []  # hooks that failed: logged, shown in the state, never blocking
        self.code_sha256 = ""  # of the kernel.js this instance runs (hot reload compares it)
        # bound on the plugin's thread, listed on the loop: listings copy it under a lock (shared.py)
        self.methods: SharedDict[str, list[str]] = SharedDict()
        self.started_at = time.time()
        self.logs = LogBuffer(config.log_buffer, config.log_buffer_bytes)
        self.storage = Storage(source.storage_dir, quota_bytes=config.storage_quota)
        self.vm: VM | None = None
        self.actor: Actor | None = None
        self.context = PluginContext(
            name=self.name, config=config, loop=self.loop, storage=self.storage, methods=self.methods,
            tools=owner.tools_registry, host=owner, log=self.log, post=self.post_vm, vm=lambda: self.vm,
            timers=lambda: self.actor, broadcast=functools.partial(owner.broadcast, self.name),
            watch_storage=functools.partial(owner.watch_storage, self), durable=lambda: owner.durable,
            directory=source.directory,
        )
        self.ops = HostOps(self.context)
        self._io_in_flight = 0  # host I/O operations started and not yet settled (fetch, sockets, ...)
        self.compiled_from_cache = False  # kernel.js of this start came from the compiled-code cache

    # ---- state --------------------------------------------------------------------------------------

    def info(self) -> PluginInfo:
        return PluginInfo(
            name=self.name,
            state=self.state,
            methods=[MethodInfo(n, list(d)) for n, d in self.methods.items()],
            error=self.error,
            version=self.source.version,
            display_name=self.source.display_name,
            compiled_from_cache=self.compiled_from_cache,
            hook_errors=list(self.hook_errors),
            kplug_only=list(self.context.kplug_only_used),
        )

    def set_state(self, state: PluginState, error: str | None = None) -> None:
        self.state = state
        if error is not None:
            error = clip_text(error, self.config.log_line_max)
            self.error = error
            self.log("error", f"plugin entered state error: {error}")
        self.owner.state_changed(self, state)

    def log(self, level: str, text: str) -> None:
        """Record a log line of the plugin (ordered: always called on one thread per call site). Text longer than
        ``config.log_line_max`` bytes is cut first, with a marker; the kept log is bounded in lines and bytes."""
        level = level if level in _LEVELS else "info"
        now = time.time()
        for line in clip_text(str(text), self.config.log_line_max).split("\n"):
            record = LogRecord(self.name, level, line, now)
            self.logs.append(record)
            log.log(_LEVELS[level], "[plugin:%s] %s", self.name, line)
            self.owner.log_emitted(record)

    # ---- running JS on the actor --------------------------------------------------------------------

    def on_actor(self, fn: Callable[[], Any], timeout: float | None = None,
                 errors: Callable[[BaseException], BaseException] | None = None) -> asyncio.Future[Any]:
        """Run ``fn`` (which uses the VM) on the actor thread; the future takes its result. When ``fn`` starts a
        VM call (returns the call's future), it takes that call's outcome, once its Promise settles. With
        ``timeout``, the future fails with :class:`TimeoutError` if the outcome is not there in time; ``errors``
        translates failures (:meth:`Actor.run`)."""
        if self.actor is None:
            raise PluginNotRunning(f"plugin [{self.name}] is not running")
        return self.actor.run(lambda: self._vm_job(fn), timeout, errors)

    def _vm_job(self, fn: Callable[[], Any]) -> Any:
        """Every VM use goes through here: afterwards, pending async host calls are dispatched."""
        try:
            return fn()
        finally:
            vm = self.vm
            if vm is not None and vm.crashed:
                self._on_crash(vm.crashed)
            else:
                self._pump_async()

    def post_vm(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` as a job on the actor thread (after the queued ones); dropped once the plugin stopped.

        What an asynchronous host operation returned is settled after the job that called it: a plain value in
        the next job; a ``concurrent.futures.Future`` or a coroutine (run on the host loop) in a job once it is
        done."""
        if self.actor is not None:
            self.actor.post(lambda: self._vm_job(fn))

    def _live_vm(self) -> VM:
        """The VM, for a job about to use it; a plugin whose VM is gone is not running."""
        vm = self.vm
        if vm is None:
            raise PluginNotRunning(f"plugin [{self.name}] is not running")
        return vm

    def _pump_async(self) -> None:
        vm = self.vm
        if vm is None or vm.crashed:
            return
        for pid, obj in vm.take_pending().items():
            pending = isinstance(obj, concurrent.futures.Future | asyncio.Future) or asyncio.iscoroutine(obj)
            limit = self.config.max_io_in_flight
            if pending and self._io_in_flight >= limit:  # each holds host memory, maybe a socket
                if asyncio.iscoroutine(obj):
                    obj.close()
                else:
                    obj.cancel()
                error = HostOpError(f"too many operations in flight: {limit} are waiting for I/O; "
                                    "await some before starting more")
                self.post_vm(functools.partial(self._settle, pid, None, error))
            elif isinstance(obj, concurrent.futures.Future):
                self._io_in_flight += 1
                obj.add_done_callback(functools.partial(self._post_io_done, pid))
            elif pending:
                self._io_in_flight += 1
                cf = asyncio.run_coroutine_threadsafe(_await(obj), self.loop)
                cf.add_done_callback(functools.partial(self._post_io_done, pid))
            else:  # a value ready now: settle in the next job, never synchronously
                value = getattr(obj, "value", obj)
                self.post_vm(functools.partial(self._settle, pid, value))

    def _post_io_done(self, pid: int, fut: concurrent.futures.Future[Any]) -> None:
        self.post_vm(functools.partial(self._io_done, pid, fut))

    def _io_done(self, pid: int, fut: concurrent.futures.Future[Any]) -> None:
        self._io_in_flight -= 1
        self._settle_from(pid, fut)

    def _settle_from(self, pid: int, fut: concurrent.futures.Future[Any]) -> None:
        exc = fut.exception()
        if exc is None:
            self._settle(pid, fut.result())
        else:
            self._settle(pid, None, exc)

    def _settle(self, pid: int, value: Any, error: BaseException | None = None) -> None:
        vm = self.vm
        if vm is None or vm.crashed:
            return
        try:
            vm.settle(pid, value, error=error)
        except (CPUTimeout, OutOfMemory) as exc:
            self.log("error", f"a Promise callback was stopped: {exc}")
        except JSError as exc:
            self.log("error", f"uncaught error in a Promise callback: {exc}")

    def _fire_timer(self, timer_id: int) -> None:
        def run() -> None:
            vm = self.vm
            if vm is None or vm.crashed:
                return
            try:
                vm.call("__kplug.timer", timer_id)
            except (CPUTimeout, OutOfMemory) as exc:
                self.log("error", f"a timer callback was stopped: {exc}")
            except JSError as exc:
                self.log("error", f"uncaught error in a timer callback: {exc}")

        self._vm_job(run)

    def _on_crash(self, reason: str) -> None:
        if self.state in (PluginState.STOPPED, PluginState.ERROR):
            return
        self.loop.call_soon_threadsafe(self.owner.plugin_crashed, self, reason)

    # ---- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Boot the VM, evaluate kernel.js, run the hooks; ends in ``running`` or ``error``."""
        self.set_state(PluginState.READY)
        self.set_state(PluginState.LOADING)
        code = self.source.read_code()
        self.code_sha256 = self.source.code_sha256
        for warning in self.source.warnings:
            if "kernel.js: not UTF-8" in warning:
                self.log("warn", warning)
        self.actor = Actor(self.name, self._fire_timer, self.loop, follow_caller_cpu=self.config.follow_caller_cpu,
                           on_error=lambda text: self.log("error", text))
        try:
            await asyncio.wrap_future(self.actor.submit(lambda: self._vm_job(lambda: self._boot(code))))
        except JSError as exc:
            await self._fail(f"kernel.js failed: {js_detail(exc)}")
            return
        except (SandboxError, KplugError, OSError) as exc:
            await self._fail(f"kernel.js failed: {exc}")
            return
        for hook in ("onload", "onloaded"):
            if self.state != PluginState.LOADING:
                return
            if not await self._run_hook(hook):
                return
        if self.state != PluginState.LOADING:
            return
        self.set_state(PluginState.RUNNING)
        if not await self._run_hook("onrunning"):
            return
        self.dispatch_event("start", None)

    def _boot(self, code: str) -> None:
        vm = VM(memory_limit=self.config.memory_limit, cpu_limit=self.config.cpu_limit,
                console=lambda level, text: self.log(level, text))
        self.vm = vm
        vm.register("__kplug_native_call", self.ops.call_sync)
        vm.register("__kplug_native_call_async", self.ops.call_async, is_async=True)
        vm.eval(_NATIVE_BRIDGE, "<kplug native>", want_result=False)
        cache = (BytecodeCache.for_directory(Path(self.config.data_dir) / "bytecode")
                 if self.config.bytecode_cache and self.config.data_dir is not None else None)

        def run(code: str, filename: str) -> bool:  # through the compiled-code cache when there is one
            if cache is None:
                vm.eval(code, filename, want_result=False)
                return False
            return cache.eval(vm, code, filename)[1]

        # before the prelude, which takes the native bridge away: the `kplug` global (durable queues, kv, schedules)
        _HOST_SCRIPTS.eval(vm, js.durable(), "<kplug durable.js>")
        _HOST_SCRIPTS.eval(vm, js.prelude(), js.PRELUDE_FILENAME)
        vm.call("__kplug.init", {
            "name": self.name,
            "version": self.source.version,
            "displayName": self.source.display_name,
            "platform": self.owner.platform,
            "i18n": self.source.i18n,
            "kplug": True,
            "strict": self.config.siyuan_strict,
        })
        self.compiled_from_cache = run(code, f"{self.name}/kernel.js")

    async def _run_hook(self, hook: str) -> bool:
        """Run a lifecycle hook, as SiYuan now does (changes §2.1): a hook that throws, rejects or is not a function
        is logged and the transition goes on; ``null``/``undefined`` is skipped. [better] kplug_lab's hook timeout
        stays: a hook that does not settle in time is logged the same way and the plugin goes on (its Promise is
        left behind). Each failure is kept in :attr:`hook_errors`, which the plugin's state shows. False only when
        the plugin cannot go on: its VM died (a crash) or it was stopped meanwhile."""
        try:
            await asyncio.wait_for(self.on_actor(lambda: self._live_vm().call_start("__kplug.hook", hook)),
                                   self.config.hook_timeout)
            return True
        except TimeoutError:
            reason = (f"{hook} did not settle within {self.config.hook_timeout:g} s (the hook timeout, "
                      "setting hook_timeout); the plugin goes on without waiting for it")
        except JSError as exc:
            reason = f"{hook} failed: {js_detail(exc)}"
        except (CPUTimeout, OutOfMemory) as exc:
            reason = f"{hook} failed: {exc}"
        except (SandboxError, KplugError, RuntimeError) as exc:
            reason = f"{hook} failed: {exc}"
            if hook != "onunload" and (self.vm is None or self.vm.crashed or self.actor is None):
                await self._fail(reason)
                return False
        self.hook_errors.append(reason)
        self.log("error", reason)
        return True

    async def _fail(self, reason: str) -> None:
        self.set_state(PluginState.ERROR, reason)
        self.owner.release_tools(self)
        await self.teardown()

    async def stop(self) -> None:
        """Stop (spec §2.3): ``stop`` event, ``onunload`` (with timeout), unbind, close the VM."""
        if self.state == PluginState.RUNNING:
            self.dispatch_event("stop", None)
            self.set_state(PluginState.STOPPING)
            await self._run_hook("onunload")
            await self.ops.ports.end_event_streams(self.config.hook_timeout)
        self.owner.release_tools(self)
        self.methods.clear()
        await self.teardown()
        if self.state != PluginState.ERROR:
            self.set_state(PluginState.STOPPED)

    async def teardown(self) -> None:
        """Close the plugin's operations, timers and VM, and end its thread (the state is left as it is)."""
        actor, self.actor = self.actor, None
        self.ops.close()
        if actor is not None:
            vm = self.vm

            def close() -> None:
                actor.clear_all_timers()
                if vm is not None:
                    vm.close()

            # a thread stuck in a job (a busy onunload) closes the VM when that job ends (at its CPU limit at the
            # latest), not never: the VM's memory is only the host's again once it is closed
            actor.at_exit(close)
            try:
                await asyncio.wait_for(asyncio.wrap_future(actor.submit(close)), 2.0)
            except (TimeoutError, RuntimeError):
                pass  # stuck in a job: the thread closes the VM once it leaves it (at_exit); it is a daemon
            await asyncio.get_running_loop().run_in_executor(None, actor.stop, 2.0)
        self.vm = None

    # ---- calls --------------------------------------------------------------------------------------

    def dispatch_event(self, type_: str, detail: Any) -> None:
        def run() -> None:
            try:
                self._live_vm().call("__kplug.event", type_, detail)
            except (JSError, CPUTimeout, OutOfMemory, PluginNotRunning) as exc:
                self.log("error", f"siyuan.event.handler failed on {type_!r}: {exc}")

        self.post_vm(run)

    async def call(self, method: str, params: Any = NO_PARAMS, timeout: float | None = None) -> Any:
        """Call a bound RPC method (spec §3.5 params mapping) and await its result."""
        return await self.start_call(method, params, timeout)

    def start_call(self, method: str, params: Any = NO_PARAMS, timeout: float | None = None) -> asyncio.Future[Any]:
        """:meth:`call` as a future, for a caller that answers from a done-callback instead of a task
        (the WebSocket handler). Raises at once what :meth:`call` raises before the plugin runs."""
        def errors(exc: BaseException) -> BaseException:
            return self._call_error(method, timeout, exc)

        if self.state != PluginState.RUNNING:
            raise PluginCallError(f"plugin [{self.name}] not running (state: [{self.state.label}])")
        has = params is not NO_PARAMS
        # the timeout covers the synchronous part too: a method stuck in a loop is answered in time
        return self.on_actor(
            lambda: self._live_vm().call_start("__kplug.rpc", method, params if has else None, has),
            timeout or self.config.call_timeout, errors,
        )

    def _call_error(self, method: str, timeout: float | None, exc: BaseException) -> BaseException:
        """What a caller of ``method`` gets for ``exc``: the sandbox's and the actor's errors as plugin errors."""
        if isinstance(exc, TimeoutError):
            return CallTimeout(f'method "{method}" did not answer within {timeout or self.config.call_timeout:g} s')
        if isinstance(exc, JSError):
            if exc.name == "KplugMethodNotFound":
                return MethodNotFound(f"method [{method}] not found in plugin [{self.name}]")
            err = PluginCallError(f'error invoking method "{method}": {js_detail(exc)}')
            code = _server_error_code(exc.value)
            if code is not None:
                err.code = code
            return err
        if isinstance(exc, (CPUTimeout, OutOfMemory, VMCrashed)):
            return PluginCallError(f'error invoking method "{method}": {exc}')
        if isinstance(exc, RuntimeError):
            return PluginCallError(f"plugin [{self.name}] not running (state: [{self.state.label}])")
        return exc

    async def call_entry(self, entry: str, *args: Any, timeout: float | None = None) -> Any:
        """Call a ``__kplug.<entry>`` function and await its (possibly Promise) result."""
        return await asyncio.wait_for(self.on_actor(lambda: self._live_vm().call_start(f"__kplug.{entry}", *args)),
                                      timeout or self.config.call_timeout)

    async def serve_private(self, slot: str, request: dict[str, Any],
                            port: WebSocketPort | EventStreamPort | None = None) -> Any:
        """Run a ``siyuan.server.private`` slot handler (spec §3.8). For ``ws``/``es`` the wire end is registered
        as ``request.port`` first; it stays registered until its connection ends or the plugin stops."""
        if port is not None:
            request = dict(request, port=self.ops.ports.register(port))
        result = await self.call_entry("http", slot, request)
        body = result.get("body") if isinstance(result, dict) else None
        if isinstance(body, dict) and isinstance(body.get("file"), dict):
            body["file"]["resolved"] = self._servable_file(body["file"].get("path"))
        if isinstance(body, dict) and isinstance(body.get("stream"), dict):
            body["stream"]["reader"] = _BodyStream(self, int(body["stream"].get("id") or 0))
        return result

    def _servable_file(self, path: Any) -> str | None:
        """``body.file.path`` as an absolute path if it names a regular file inside the workspace (as SiYuan v3.8
        confines it: an absolute path inside the workspace, or a workspace-relative one, a leading ``/`` allowed)
        or inside the plugin's storage; symlinks are resolved before the check. Relative paths are taken from the
        workspace, or from the storage root when kplug_lab runs over a plain plugins folder. None (the route
        answers 404) for anything else."""
        if not isinstance(path, str) or not path or "\0" in path:
            return None
        workspace = self.owner.workspace
        roots = [self.storage.root] + ([workspace] if workspace is not None else [])
        candidates = [path] if os.path.isabs(path) else []
        if workspace is not None:
            candidates.append(os.path.join(workspace, path.lstrip("/\\")))
        else:
            candidates.append(os.path.join(self.storage.root, path))
        for candidate in candidates:
            real = os.path.realpath(candidate)
            for root in roots:
                real_root = os.path.realpath(root)
                if (real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)) and os.path.isfile(real):
                    return real
        return None

    async def eval(self, code: str) -> Any:
        return await asyncio.wait_for(self.on_actor(lambda: self._live_vm().call_start("__kplug.devEval", code)),
                                      self.config.call_timeout)


class _BodyStream:
    """:class:`~.api.BodyStream` over the plugin's ``__kplug.streamRead`` / ``streamCancel`` (private_ports.js).
    A chunk may take as long as the plugin takes to produce it (SiYuan has no timeout there either), within a day."""

    _PATIENCE = 86400.0

    def __init__(self, plugin: Plugin, sid: int) -> None:
        self._plugin = plugin
        self._sid = sid

    async def read(self) -> bytes | None:
        chunk = await self._plugin.call_entry("streamRead", self._sid, timeout=self._PATIENCE)
        return None if chunk is None else base64.b64decode(str(chunk))

    async def cancel(self, reason: str) -> None:
        await self._plugin.call_entry("streamCancel", self._sid, reason)


async def _await(obj: Any) -> Any:
    return await obj


def _server_error_code(thrown: Any) -> int | None:
    """[better] The ``code`` of a thrown Error or plain object (or a thrown number) when it lies in JSON-RPC's
    implementation-defined server range -32000..-32099, so a plugin can answer with its own error codes."""
    code = thrown.get("code") if isinstance(thrown, dict) else thrown
    if isinstance(code, (int, float)) and not isinstance(code, bool) and code == int(code) \
            and -32099 <= code <= -32000:
        return int(code)
    return None


def js_detail(exc: JSError) -> str:
    """``Error: boom`` plus the first stack frame, the way SiYuan reports a thrown error."""
    text = f"{exc.name}: {exc.message}" if exc.name else exc.message
    if not exc.name and isinstance(exc.value, dict) and isinstance(exc.value.get("message"), str):
        text = exc.value["message"]  # [better] a thrown plain object says its message, not [object Object]
    if not exc.name and exc.value is None and text in ("", "null", "undefined"):
        # [better] never a bare "null": QuickJS throws null itself when it runs out of memory building an error
        text = (f"{text or 'nothing'} was thrown, without a reason (the plugin threw {text or 'it'}, or its VM ran "
                "out of memory while building an error)")
    frames = [ln.strip() for ln in exc.stack.splitlines() if ln.strip().startswith("at ")]
    frames = [f for f in frames if "<kplug" not in f]
    return f"{text} {frames[0]}" if frames else text

