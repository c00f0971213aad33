"""What a host operation may see of the plugin that called it.

Operations (``host/ops/``) are written against a :class:`PluginContext`, never against the plugin's manager: the
plugin's name and configuration, its storage folder, how to run a job on the plugin's thread (and call into its
JavaScript there), how to log, its timers, and the registries an operation may change (method bindings, the
host's tool registry, broadcasts, storage watches, the durable store). The plugin builds its context and hands
it to its operations (:class:`kplug_lab.host.ops.dispatch.HostOps`); each capability module's operations are a
:class:`Capability` over it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import CPUTimeout, JSError, OutOfMemory
from .bounds import ByteBudget
from .shared import SharedDict

if TYPE_CHECKING:
    from ...durable.store import DurableStore
    from ...sandbox import VM
    from ..ops.storage import Storage
    from .api import HostAPI
    from .config import HostConfig

__all__ = ["Capability", "Op", "PluginContext", "Timers", "ToolRegistry"]

#: every tool of every plugin of a host, by global name: ``{"plugin", "kind", "local", "record"}``; written on
#: plugins' threads, read on the loop, so every listing copies it under a lock (shared.py)
ToolRegistry = SharedDict[str, dict[str, Any]]


class Timers(Protocol):
    """The plugin's timers (its actor keeps them; they fire as jobs on the plugin's thread)."""

    def arm_timer(self, timer_id: int, delay: float) -> None: ...

    def clear_timer(self, timer_id: int) -> None: ...

    def pending_timers(self) -> int: ...

    def is_armed(self, timer_id: int) -> bool: ...


class PluginContext:
    """One plugin instance as its host operations see it. A restarted plugin gets a new context."""

    def __init__(self, *, name: str, config: HostConfig, loop: asyncio.AbstractEventLoop, storage: Storage,
                 methods: SharedDict[str, list[str]], tools: ToolRegistry, host: HostAPI,
                 log: Callable[[str, str], None], post: Callable[[Callable[[], Any]], None],
                 vm: Callable[[], VM | None], timers: Callable[[], Timers | None],
                 broadcast: Callable[[str, Any, Callable[[], None] | None], None],
                 watch_storage: Callable[[Path, bool], None],
                 durable: Callable[[], DurableStore], directory: Path | None = None) -> None:
        #: the plugin's name (``plugin.json``'s ``name``)
        self.name = name
        self.config = config
        #: the host's asyncio loop (network I/O of operations runs there)
        self.loop = loop
        #: the plugin's confined storage folder
        self.storage = storage
        #: the plugin's own folder (``kernel.js`` and the files it may ``require``); None for a plugin without one
        self.directory = directory
        #: kplug_lab's own globals the plugin touched, in the order of first use (the portability report)
        self.kplug_only_used: list[str] = []
        #: the plugin's bound RPC methods: name -> descriptions (``siyuan.rpc.bind``)
        self.methods = methods
        #: the host-wide tool registry (``siyuan.mcp`` / ``siyuan.agent``)
        self.tools = tools
        #: the host's public API (a plugin's fetch of its own plugin routes is answered through it)
        self.host = host
        self._log = log
        self._post = post
        self._vm = vm
        self._timers = timers
        self._broadcast = broadcast
        self._watch_storage = watch_storage
        self._durable = durable
        #: bytes of frames from the kernel's SSE and WebSocket connections posted to the plugin and not yet taken
        #: by its JavaScript; past ``config.max_pending_bytes`` the connection that would add more is closed
        self.inbound = ByteBudget(config.max_pending_bytes)

    def log(self, level: str, text: str) -> None:
        """Record a log line of the plugin (``trace``, ``debug``, ``info``, ``warn``, ``error``)."""
        self._log(level, text)

    def post(self, job: Callable[[], Any]) -> None:
        """Run ``job`` on the plugin's thread, after the jobs already queued; nothing runs once it stopped."""
        self._post(job)

    @property
    def running(self) -> bool:
        """Whether the plugin's thread still takes jobs (false once the plugin stopped)."""
        return self._timers() is not None

    def call_js(self, function: str, *args: Any, api: str, then: Callable[[], object] | None = None) -> None:
        """Call the prelude's ``function(*args)`` in a job on the plugin's thread. A JS failure is logged as
        ``api``'s handler failing; nothing is called once the VM is gone or crashed; ``then`` runs after the call
        in any case (on the plugin's thread)."""

        def run() -> None:
            try:
                vm = self._vm()
                if vm is not None and not vm.crashed:
                    vm.call(function, *args)
            except (JSError, CPUTimeout, OutOfMemory) as exc:
                event = args[-1] if args and isinstance(args[-1], dict) else {}
                self.log("error", f"{api} {event.get('type')} handler failed: {exc}")
            finally:
                if then is not None:
                    then()

        self.post(run)

    @property
    def timers(self) -> Timers | None:
        """The plugin's timers; None once it stopped."""
        return self._timers()

    def broadcast(self, method: str, params: Any, done: Callable[[], None] | None = None) -> None:
        """Send ``method(params)`` to every client subscribed to the plugin's broadcasts; ``done`` runs once it was
        handed to them (on the loop) or could not be."""
        self._broadcast(method, params, done)

    def watch_storage(self, target: Path, add: bool) -> None:
        """Start (``add``) or stop delivering ``fs-notify`` events for ``target``, an absolute storage path."""
        self._watch_storage(target, add)

    @property
    def durable(self) -> DurableStore:
        """The host's durable store (opened on first use); operations pass the plugin's name to every call."""
        return self._durable()


#: a host operation: called with the JSON arguments the JavaScript passed
Op = Callable[..., Any]


class Capability:
    """One capability's operations for one plugin instance.

    Synchronous operations return a JSON value or raise (the message becomes the JS error text). Asynchronous
    ones return a value (settled in a later job), a coroutine (run on the host loop) or a
    ``concurrent.futures.Future`` (work done elsewhere); see :meth:`kplug_lab.host.runtime.plugin.Plugin.post_vm`.
    Argument checks with SiYuan's exact texts are done in JS; operations trust the shapes but never the contents
    (paths, URLs, sizes)."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    def sync_ops(self) -> dict[str, Op]:
        return {}

    def async_ops(self) -> dict[str, Op]:
        return {}

    def close_all(self) -> None:
        """The plugin is stopping: end whatever the capability still holds for it."""
