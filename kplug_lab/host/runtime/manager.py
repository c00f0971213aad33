"""The plugin manager: discovery, start/stop, restart with backoff, hot reload, and the HostAPI the RPC
layer talks to. Runs on an asyncio loop; each plugin's JavaScript runs on that plugin's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...durable.lock import STANDBY_POLL_S, HostLock
from ...durable.places import (
    STORE_FILE,
    default_data_dir,
    legacy_data_dir,
    migrate_legacy_store,
    read_enablement_choices,
)
from ...durable.store import DurableStore
from ...errors import JSError, KplugError, ManifestError, PluginNotLoaded, PluginNotRunning, VMCrashed
from .api import NO_PARAMS, EventStreamPort, LogRecord, PluginInfo, PluginState, Unsubscribe, WebSocketPort
from .config import HostConfig
from .context import ToolRegistry
from .manifest import PluginSource, discover_directory, discover_workspace, platform_id, read_plugin
from .one_copy import RUNS_IN_SIYUAN, plugins_siyuan_runs
from .plugin import Plugin, js_detail
from .shared import SharedDict
from .stats import HostStats

__all__ = ["PluginManager"]

log = logging.getLogger("kplug_lab.host")


def _emit_then(subs: _Subscribers, done: Callable[[], None] | None, *args: Any) -> None:
    try:
        subs.emit(*args)
    finally:
        if done is not None:
            done()


class _Subscribers:
    def __init__(self) -> None:
        self._items: dict[int, Callable[..., None]] = {}
        self._next = 0

    def add(self, cb: Callable[..., None]) -> Unsubscribe:
        self._next += 1
        key = self._next
        self._items[key] = cb
        return lambda: self._items.pop(key, None) and None

    def __bool__(self) -> bool:
        return bool(self._items)

    def emit(self, *args: Any) -> None:
        for cb in list(self._items.values()):
            try:
                cb(*args)
            except Exception:
                log.exception("a subscriber failed")


@dataclass
class _StorageWatch:
    """The storage paths one plugin watches, and how to stop the task that watches them."""

    paths: set[Path] = field(default_factory=set)
    stop: asyncio.Event | None = None


class PluginManager:
    """Hosts the plugins of one SiYuan workspace (``workspace``) or one plain folder (``plugins_dir``).

    Create it, ``await start()`` on the loop that will serve it, and ``await close()`` at shutdown (which runs
    every plugin's ``onunload``). All public methods are called on that loop.
    """

    def __init__(self, config: HostConfig | None = None, *, workspace: Path | None = None,
                 plugins_dir: Path | None = None, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config = config or HostConfig()
        self.workspace = Path(workspace) if workspace else None
        self.plugins_dir = Path(plugins_dir) if plugins_dir else None
        if self.config.data_dir is None:
            self.config.data_dir = default_data_dir(workspace=self.workspace, plugins_dir=self.plugins_dir)
        self.data_dir = Path(self.config.data_dir)
        self.platform = platform_id()
        self._loop = loop
        self.plugins: dict[str, Plugin] = {}
        self.sources: dict[str, PluginSource] = {}
        self.load_errors: list[ManifestError] = []
        self.tools_registry: ToolRegistry = SharedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._restarts: dict[str, int] = {}
        self.stats = HostStats()
        self._restart_tasks: dict[str, asyncio.Task[None]] = {}
        self._states = _Subscribers()
        self._logs = _Subscribers()
        self._calls = _Subscribers()
        self._broadcasts: dict[str, _Subscribers] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._watch_stop = asyncio.Event()
        self._closed = False
        self._durable: DurableStore | None = None
        self._storage_watches: dict[Plugin, _StorageWatch] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        #: one host per workspace (kplug_lab/durable/lock.py): while another host holds it, this one only stands by
        self.host_lock = HostLock([d for d in (self.workspace or self.plugins_dir, self.data_dir) if d is not None],
                                  owner_file=self.data_dir / "host.json")
        self.standby = False
        self._standby_task: asyncio.Task[None] | None = None
        #: the kernel plugins SiYuan's own host runs, as it last said (one_copy.py); never run here
        self.siyuan_runs: frozenset[str] = frozenset()
        self._siyuan_task: asyncio.Task[None] | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def durable(self) -> DurableStore:
        """The durable store (queues, key-value, schedules), opened on first use."""
        if self._durable is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            config = self.config
            # a plugin's durable op waits for the lock on its thread: never longer than a call may take
            busy = min(config.durable_busy_timeout, config.call_timeout)
            self._durable = DurableStore(self.data_dir / STORE_FILE, busy_timeout=busy)
        return self._durable

    # ---- startup / shutdown -------------------------------------------------------------------------

    def discover(self) -> list[PluginSource]:
        if self.workspace is not None:
            sources, errors = discover_workspace(self.workspace, lang=self.config.lang, platform=self.platform)
        elif self.plugins_dir is not None:
            sources, errors = discover_directory(self.plugins_dir, self.data_dir, lang=self.config.lang,
                                                 platform=self.platform)
        else:
            sources, errors = [], []
        if self.workspace is not None:
            try:
                choices = read_enablement_choices(self.data_dir)
            except ValueError as exc:
                errors.append(ManifestError(str(exc)))
                choices = {}
            for src in sources:
                src.enabled = choices.get(src.name, src.enabled)
        self.load_errors = errors
        for err in errors:
            log.error("%s", err)
        for src in sources:
            for warning in src.warnings:
                log.warning("%s", warning)
            self.sources[src.name] = src
        return sources

    async def start(self) -> None:
        """Discover and start every enabled, compatible plugin (in parallel); then watch for changes.

        When another host holds this workspace, stand by instead: plugins are listed as ``inactive`` (their
        RPC routes answer -32002) until that host dies, then this one takes over (``_take_over``)."""
        self._loop = asyncio.get_running_loop()
        if not self._own_workspace():
            return
        sources = self.discover()
        eligible = [s for s in sources if s.enabled and s.compatible]
        if self.config.siyuan_poll_interval > 0:
            self.siyuan_runs = await plugins_siyuan_runs(self.config) or frozenset()
            for s in eligible:
                if s.name in self.siyuan_runs:
                    log.warning("not starting %s: %s", s.name, RUNS_IN_SIYUAN)
            if self._siyuan_task is None:
                self._siyuan_task = asyncio.create_task(self._follow_siyuan())
        await asyncio.gather(*(self._start(s) for s in eligible if s.name not in self.siyuan_runs))
        running = sum(1 for p in self.plugins.values() if p.state == PluginState.RUNNING)
        log.info("%d/%d plugin(s) loaded", running, len(eligible))
        if self.config.hot_reload and self._watch_task is None:
            self._watch_stop.clear()
            self._watch_task = asyncio.create_task(self._watch())

    async def close(self) -> None:
        """Stop every plugin (running ``onunload``) and the file watcher."""
        self._closed = True
        if self._siyuan_task is not None:
            self._siyuan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._siyuan_task
            self._siyuan_task = None
        if self._standby_task is not None:
            self._standby_task.cancel()
            self._standby_task = None
        if self._watch_task is not None:
            # Cancelling watchfiles.awatch can hang (its watcher thread never hears of it): stop it through its
            # stop event, which the watcher checks every step, and cancel only as a last resort.
            self._watch_stop.set()
            done, _ = await asyncio.wait([self._watch_task], timeout=2.0)
            if not done:
                self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._watch_task, 2.0)
            self._watch_task = None
        for task in self._restart_tasks.values():
            task.cancel()
        await asyncio.gather(*(self._stop(name) for name in list(self.plugins)), return_exceptions=True)
        if self._durable is not None:
            self._durable.close()
            self._durable = None
        self.host_lock.release()

    def _own_workspace(self) -> bool:
        if self.host_lock.try_acquire({"plugins": str(self.workspace or self.plugins_dir)}):
            self.standby = False
            self._migrate_legacy_store()
            return True
        if not self.standby:
            self.standby = True
            self.discover()
            log.warning("standing by: %s; this host takes over when it stops", self.host_lock.describe_owner())
            self._standby_task = asyncio.create_task(self._take_over())
        return False

    async def _take_over(self) -> None:
        while not self._closed:
            await asyncio.sleep(STANDBY_POLL_S)
            if self._closed:
                return
            if self.host_lock.try_acquire({"plugins": str(self.workspace or self.plugins_dir)}):
                log.warning("the other host is gone: taking over %s", self.workspace or self.plugins_dir)
                self.standby = False
                self._standby_task = None
                self._migrate_legacy_store()
                await self.start()
                return

    def _migrate_legacy_store(self) -> None:
        """Move a store an earlier kplug_lab kept in the synced ``data/`` (kplug_lab/durable/places.py); safe
        here because this host owns the workspace, so no other host has that store open."""
        if self.workspace is None or self._durable is not None:
            return
        try:
            migrate_legacy_store(legacy_data_dir(self.workspace), self.data_dir)
        except OSError as exc:
            log.error("could not move the durable store out of %s: %s", legacy_data_dir(self.workspace), exc)

    async def _follow_siyuan(self) -> None:
        """Every ``siyuan_poll_interval`` seconds: stop our copy of a plugin SiYuan now runs (before anything
        else), start one SiYuan no longer runs. No answer from the kernel changes nothing."""
        while not self._closed:
            await asyncio.sleep(self.config.siyuan_poll_interval)
            theirs = await plugins_siyuan_runs(self.config)
            if theirs is None or self._closed or self.standby:
                continue
            gone, self.siyuan_runs = self.siyuan_runs - theirs, theirs
            for name in sorted(theirs & set(self.plugins)):
                log.warning("SiYuan started %s itself: stopping this host's copy (%s)", name, RUNS_IN_SIYUAN)
                await self._stop(name)
            for name in sorted(gone):
                source = self.sources.get(name)
                if source is not None and source.enabled and source.compatible and name not in self.plugins:
                    log.warning("SiYuan no longer runs %s: starting it here", name)
                    try:
                        await self._start(source)
                    except (ManifestError, PluginNotRunning) as exc:
                        log.error("%s", exc)

    # ---- per-plugin start / stop --------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _start(self, source: PluginSource) -> Plugin:
        if self.standby or not self.host_lock.try_acquire({"plugins": str(self.workspace or self.plugins_dir)}):
            # never two hosts running one plugin: load/reload are refused until this host owns the workspace
            raise PluginNotRunning(f"plugin [{source.name}] cannot start: this host does not own "
                                   f"{self.workspace or self.plugins_dir} ({self.host_lock.describe_owner()})")
        if source.name in self.siyuan_runs:
            raise PluginNotRunning(f"plugin [{source.name}] cannot start: {RUNS_IN_SIYUAN}")
        async with self._lock(source.name):
            old = self.plugins.pop(source.name, None)
            if old is not None:
                self._end_storage_watch(old, forget=True)
                await old.stop()
            plugin = Plugin(source, self.config, self)
            self.plugins[source.name] = plugin
            self.sources[source.name] = source
            try:
                await plugin.start()
            except ManifestError as exc:
                plugin.set_state(PluginState.ERROR, str(exc))
            return plugin

    async def _stop(self, name: str) -> None:
        async with self._lock(name):
            plugin = self.plugins.pop(name, None)
            if plugin is not None:
                self._end_storage_watch(plugin, forget=True)
                await plugin.stop()
        task = self._restart_tasks.pop(name, None)
        if task is not None:
            task.cancel()

    def plugin_crashed(self, plugin: Plugin, reason: str) -> None:
        """The VM of ``plugin`` died: mark it, and restart it with backoff (called by the plugin, on the loop)."""
        if self.plugins.get(plugin.name) is not plugin or self._closed:
            return
        if plugin.state in (PluginState.ERROR, PluginState.STOPPED, PluginState.STOPPING):
            return
        plugin.set_state(PluginState.ERROR, f"the VM crashed: {reason}")
        self.release_tools(plugin)
        self._background(plugin.teardown())
        count = self._restarts.get(plugin.name, 0)
        if self.config.restart_limit and count >= self.config.restart_limit:
            plugin.log("error", f"not restarting: {count} crashes in a row")
            return
        delay = min(self.config.restart_max, self.config.restart_initial * self.config.restart_factor ** count)
        self._restarts[plugin.name] = count + 1
        plugin.log("warn", f"restarting in {delay:g} s (crash #{count + 1})")
        self._restart_tasks[plugin.name] = asyncio.ensure_future(self._restart_later(plugin, delay))

    async def _restart_later(self, plugin: Plugin, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._closed or self.plugins.get(plugin.name) is not plugin:
            return
        self._restart_tasks.pop(plugin.name, None)
        if plugin.name in self.siyuan_runs:
            return
        self.stats.of(plugin.name).restarts += 1
        new = await self._start(plugin.source)
        if new.state == PluginState.RUNNING:
            # a plugin that stays up for a while has its crash count forgiven
            async def forgive() -> None:
                await asyncio.sleep(max(30.0, delay * 2))
                if self.plugins.get(new.name) is new and new.state == PluginState.RUNNING:
                    self._restarts.pop(new.name, None)

            self._background(forgive())

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- what plugins ask of their host (plugin.PluginOwner) -----------------------------------------

    def state_changed(self, plugin: Plugin, state: PluginState) -> None:
        self._in_loop(self._states.emit, plugin.name, state)

    def log_emitted(self, record: LogRecord) -> None:
        if self._logs:  # waking the loop per line is most of a log call's cost: only when someone listens
            self._in_loop(self._logs.emit, record)

    def broadcast(self, name: str, method: str, params: Any, done: Callable[[], None] | None = None) -> None:
        """``siyuan.rpc.broadcast``: ``method(params)`` to every subscriber of plugin ``name``'s broadcasts;
        ``done`` is called once it was handed to them (or not sent: no subscriber, or the loop is gone)."""
        subs = self._broadcasts.get(name)
        if (subs is None or not self._in_loop(_emit_then, subs, done, method, params)) and done is not None:
            done()

    def release_tools(self, plugin: Plugin) -> None:
        self.tools_registry.remove_if(lambda _k, t: t["plugin"] == plugin.name)

    def watch_storage(self, plugin: Plugin, target: Path, add: bool) -> None:
        """Start (``add``) or stop delivering ``fs-notify`` events for ``target`` (a storage path) to the plugin
        (spec §3.4). Called on the plugin's thread; the watching runs on the loop."""
        self._in_loop(self._restart_storage_watch, plugin, target, add)

    def _restart_storage_watch(self, plugin: Plugin, target: Path, add: bool) -> None:
        watch = self._storage_watches.setdefault(plugin, _StorageWatch())
        (watch.paths.add if add else watch.paths.discard)(target)
        self._end_storage_watch(plugin)
        if watch.paths:
            watch.stop = asyncio.Event()
            self._background(self._storage_watch(plugin, set(watch.paths), watch.stop))

    def _end_storage_watch(self, plugin: Plugin, *, forget: bool = False) -> None:
        # through the stop event: a cancelled watchfiles.awatch can leave its watcher thread running
        watch = self._storage_watches.pop(plugin, None) if forget else self._storage_watches.get(plugin)
        if watch is not None and watch.stop is not None:
            watch.stop.set()
            watch.stop = None

    async def _storage_watch(self, plugin: Plugin, paths: set[Path], stop: asyncio.Event) -> None:
        import watchfiles

        names = {watchfiles.Change.added: "CREATE", watchfiles.Change.modified: "WRITE",
                 watchfiles.Change.deleted: "REMOVE"}
        watched = [p for p in paths if p.exists()]
        if not watched:
            return
        try:
            async for changes in watchfiles.awatch(*watched, recursive=False, debounce=50, step=20,
                                                   stop_event=stop):
                if plugin.state != PluginState.RUNNING:
                    return
                for change, path in sorted(changes):
                    if Path(path).name.startswith(".kplug-"):
                        continue  # our own temporary files of atomic writes
                    plugin.dispatch_event("fs-notify", {"operation": names[change],
                                                        "path": plugin.storage.relative(Path(path))})
        except Exception as exc:  # [better] a watcher error is logged; watching goes on at the next add
            plugin.log("error", f"storage watcher stopped: {exc}")

    def _in_loop(self, fn: Callable[..., None], *args: Any) -> bool:
        """Run ``fn(*args)`` on the loop (now, when called there); False if there is no loop to run it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
            return True
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    # ---- HostAPI -----------------------------------------------------------------------------------

    def get_plugin(self, name: str) -> PluginInfo | None:
        plugin = self.plugins.get(name)
        if plugin is None and self.standby and name in self.sources:
            return self._standby_info(name)
        if plugin is None and name in self._held_by_siyuan():
            return self._in_siyuan_info(name)
        return plugin.info() if plugin is not None else None

    def list_plugins(self) -> list[PluginInfo]:
        if self.standby:
            return [self._standby_info(name) for name in self.sources]
        return [p.info() for p in self.plugins.values()] + [self._in_siyuan_info(n) for n in self._held_by_siyuan()]

    def _held_by_siyuan(self) -> list[str]:
        """Enabled plugins this host does not run because SiYuan runs them."""
        return [name for name, s in self.sources.items()
                if name in self.siyuan_runs and name not in self.plugins and s.enabled and s.compatible]

    def _in_siyuan_info(self, name: str) -> PluginInfo:
        return PluginInfo(name=name, state=PluginState.STOPPED, version=self.sources[name].version,
                          error=RUNS_IN_SIYUAN, runs_in_siyuan=True)

    def _standby_info(self, name: str) -> PluginInfo:
        return PluginInfo(name=name, state=PluginState.INACTIVE, version=self.sources[name].version,
                          error=f"this host is standing by: {self.host_lock.describe_owner()}")

    def _running(self, name: str) -> Plugin:
        plugin = self.plugins.get(name)
        if plugin is None and ((self.standby and name in self.sources) or name in self._held_by_siyuan()):
            raise PluginNotRunning("Plugin not running")
        if plugin is None:
            raise PluginNotLoaded("Plugin not loaded")
        if plugin.state != PluginState.RUNNING:
            raise PluginNotRunning("Plugin not running")
        return plugin

    async def call(self, name: str, method: str, params: Any = NO_PARAMS, *, timeout: float | None = None) -> Any:
        return await self.start_call(name, method, params, timeout=timeout)

    def start_call(self, name: str, method: str, params: Any = NO_PARAMS, *,
                   timeout: float | None = None) -> asyncio.Future[Any]:
        started = time.perf_counter()
        try:
            plugin = self._bound(name, method)
        except KplugError as exc:  # not counted in the stats (any name may come here), but shown to call watchers
            if self._calls:
                self._calls.emit(name, method, params, None, exc)
            raise
        try:
            fut = plugin.start_call(method, params, timeout)
        except BaseException as exc:
            self.stats.record_call(name, method, time.perf_counter() - started, False)
            if self._calls:
                self._calls.emit(name, method, params, None, exc)
            raise

        def finished(f: asyncio.Future[Any]) -> None:
            error = asyncio.CancelledError() if f.cancelled() else f.exception()
            self.stats.record_call(name, method, time.perf_counter() - started, error is None)
            if self._calls:
                self._calls.emit(name, method, params, None if error is not None else f.result(), error)

        fut.add_done_callback(finished)
        return fut

    async def plugin_stats(self) -> list[dict[str, Any]]:
        """Health of every known plugin: state, memory in use against the limit, CPU time (total and per second),
        calls, errors and latency percentiles (per method too), restarts and reloads (``kplug.stats``)."""
        infos = {i.name: i for i in self.list_plugins()}
        names = sorted(infos)
        memory = await asyncio.gather(*(self._memory_used(self.plugins.get(n)) for n in names))
        now = time.monotonic()
        out = []
        for name, used in zip(names, memory, strict=True):
            plugin = self.plugins.get(name)
            stats = self.stats.of(name)
            if used is not None:
                stats.memory_used = used
            running = plugin is not None and plugin.state == PluginState.RUNNING
            cpu = None
            if running and plugin is not None and plugin.actor is not None:
                started = now - (time.time() - plugin.started_at)
                cpu = stats.sample_cpu(plugin.actor.thread.ident, now, started)
            info = infos[name]
            out.append({
                "name": name, "state": info.state.label, "stateCode": int(info.state), "error": info.error,
                "uptime": round(time.time() - plugin.started_at, 3) if running and plugin is not None else None,
                "memory": {"used": stats.memory_used if running else None, "limit": self.config.memory_limit},
                "cpu": {"seconds": None if cpu is None else round(cpu, 6),
                        "perSecond": None if cpu is None or stats.cpu_per_second is None
                        else round(stats.cpu_per_second, 6),
                        "limitPerCall": self.config.cpu_limit},
                "calls": self.stats.snapshot(name, now),
                "restarts": stats.restarts, "reloads": stats.reloads,
            })
        return out

    async def _memory_used(self, plugin: Plugin | None) -> int | None:
        """The VM's heap bytes, read on its actor; None if it is not running or too busy to answer soon."""
        if plugin is None or plugin.state != PluginState.RUNNING or plugin.actor is None:
            return None

        def read() -> int | None:
            vm = plugin.vm
            return vm.memory_used() if vm is not None else None

        try:
            return await asyncio.wait_for(plugin.on_actor(read), 0.5)  # type: ignore[no-any-return]
        except (TimeoutError, KplugError, RuntimeError):
            return None

    def _bound(self, name: str, method: str) -> Plugin:
        """The running plugin ``name``, which binds ``method``."""
        plugin = self._running(name)
        if method not in plugin.methods:
            from ...errors import MethodNotFound

            raise MethodNotFound(f"method [{method}] not found in plugin [{name}]")
        return plugin

    def subscribe_broadcasts(self, name: str, callback: Callable[[str, Any], None]) -> Unsubscribe:
        return self._broadcasts.setdefault(name, _Subscribers()).add(callback)

    def subscribe_states(self, callback: Callable[[str, PluginState], None]) -> Unsubscribe:
        return self._states.add(callback)

    def subscribe_calls(self, callback: Callable[[str, str, Any, Any, BaseException | None], None]) -> Unsubscribe:
        return self._calls.add(callback)

    def subscribe_logs(self, callback: Callable[[LogRecord], None]) -> Unsubscribe:
        return self._logs.add(callback)

    def logs(self, name: str, limit: int = 200) -> list[LogRecord]:
        plugin = self.plugins.get(name)
        if plugin is None:
            raise PluginNotLoaded(f"plugin [{name}] is not loaded")
        records = list(plugin.logs)
        return records[-limit:] if limit else records

    async def load(self, path: str) -> PluginInfo:
        directory = Path(path).expanduser().resolve()
        storage = (self.workspace / "data" / "storage" / "petal" / directory.name if self.workspace
                   else self.data_dir / "storage" / directory.name)
        source = read_plugin(directory, storage, lang=self.config.lang, platform=self.platform)
        if not source.compatible:
            raise ManifestError(
                f'{directory / "plugin.json"}: "kernels" does not include "all" or "{self.platform}", '
                "so the kernel part cannot run here"
            )
        plugin = await self._start(source)
        self._restarts.pop(source.name, None)
        return plugin.info()

    async def unload(self, name: str) -> None:
        if name not in self.plugins:
            raise PluginNotLoaded(f"plugin [{name}] is not loaded")
        await self._stop(name)

    async def reload(self, name: str) -> PluginInfo:
        source = self.sources.get(name)
        if source is None:
            raise PluginNotLoaded(f"plugin [{name}] is not known")
        fresh = read_plugin(source.directory, source.storage_dir, lang=self.config.lang, platform=self.platform)
        fresh.enabled = source.enabled
        self._restarts.pop(name, None)
        self.stats.of(name).reloads += 1
        plugin = await self._start(fresh)
        return plugin.info()

    def tools(self) -> list[dict[str, Any]]:
        return [dict(t["record"], plugin=t["plugin"], kind=t["kind"]) for t in self.tools_registry.values()]

    async def invoke_tool(self, tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        entry = self.tools_registry.get(tool_name)
        if entry is None:
            return {"isError": True, "content": [{"type": "text", "text": f"tool [{tool_name}] not found"}]}
        plugin = self.plugins.get(entry["plugin"])
        if plugin is None or plugin.state != PluginState.RUNNING:
            state = plugin.state.label if plugin else "stopped"
            return {"isError": True, "content": [
                {"type": "text", "text": f"plugin [{entry['plugin']}] is not running (state: {state})"}]}
        def failed(text: str) -> dict[str, Any]:
            return {"isError": True, "content": [{"type": "text", "text": text}]}

        what = "Agent capability handler" if entry["kind"] == "agent" else "MCP tool handler"
        try:
            value = await plugin.call_entry("tool", entry["kind"], entry["local"], arguments)
        except JSError as exc:
            if exc.name == "KplugMarshalError":
                kind = "Agent capability" if entry["kind"] == "agent" else "MCP tool"
                return failed(f"error marshaling {kind} result: {exc.message}")
            return failed(f"error invoking {what}: {js_detail(exc)}")
        except (VMCrashed, RuntimeError, PluginNotRunning):
            return failed(f"plugin stopped while invoking {what}")
        except TimeoutError:
            return failed(f"error invoking {what}: no result within {self.config.call_timeout:g} s")
        except Exception as exc:
            if plugin.state != PluginState.RUNNING:
                return failed(f"plugin stopped while invoking {what}")
            return failed(f"error invoking {what}: {exc}")
        text = "null" if value is None else json.dumps(value, ensure_ascii=False)
        return {"isError": False, "content": [{"type": "text", "text": text}]}

    async def eval(self, name: str, code: str) -> Any:
        return await self._running(name).eval(code)

    async def http_request(self, name: str, slot: str, request: dict[str, Any],
                           port: WebSocketPort | EventStreamPort | None = None) -> Any:
        return await self._running(name).serve_private(slot, request, port)

    # ---- hot reload ---------------------------------------------------------------------------------

    async def _watch(self) -> None:
        import watchfiles

        roots = []
        if self.workspace is not None:
            roots.append(self.workspace / "data" / "plugins")
        elif self.plugins_dir is not None:
            roots.append(self.plugins_dir)
        roots = [r for r in roots if r.is_dir()]
        if not roots:
            return
        async for changes in watchfiles.awatch(*roots, debounce=self.config.reload_debounce_ms,
                                               step=50, recursive=True, stop_event=self._watch_stop):
            names: dict[str, set[str]] = {}
            for _change, path in changes:
                p = Path(path)
                if p.name in ("kernel.js", "plugin.json"):
                    names.setdefault(p.parent.name, set()).add(p.name)
            for name, files in names.items():
                try:
                    await self._on_source_changed(name, files)
                except Exception as exc:
                    log.error("hot reload of %s failed: %s", name, exc)

    def _kernel_changed(self, name: str) -> bool:
        """Whether ``kernel.js`` of plugin ``name`` differs (SHA-256) from what the running instance started with.
        A deleted or unreadable kernel.js is no change: SiYuan leaves the plugin running (changes §4)."""
        source = self.sources.get(name)
        plugin = self.plugins.get(name)
        if source is None or plugin is None:
            return True
        try:
            digest = hashlib.sha256((source.directory / "kernel.js").read_bytes()).hexdigest()
        except OSError:
            return False
        return digest != plugin.code_sha256

    async def _on_source_changed(self, name: str, files: set[str]) -> None:
        """Hot reload as SiYuan now does it (changes §4): debounced (``reload_debounce_ms``), and only when the
        content of ``kernel.js`` changed; deleting it leaves the plugin running. [better] A changed ``plugin.json``
        reloads too (SiYuan watches only kernel.js)."""
        if "plugin.json" not in files and not self._kernel_changed(name):
            if name in self.plugins and not (self.sources[name].directory / "kernel.js").exists():
                log.info("kernel.js of %s deleted: the plugin keeps running", name)
            return
        source = self.sources.get(name)
        if source is None:
            if self.plugins_dir is None:
                return
            directory = self.plugins_dir / name
            try:
                source = read_plugin(directory, self.data_dir / "storage" / name, lang=self.config.lang,
                                     platform=self.platform)
            except ManifestError as exc:
                log.error("%s", exc)
                return
        if not source.enabled:
            return
        log.info("%s changed: reloading", name)
        try:
            await self.reload(name) if name in self.sources else await self._start(source)
        except ManifestError as exc:
            log.error("%s", exc)
