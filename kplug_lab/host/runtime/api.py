"""The contract between the plugin host and the layers above it (``rpc/``, ``server/``, ``notebook/``).

The RPC layer only ever talks to a :class:`HostAPI`; the real implementation is
:class:`kplug_lab.host.runtime.manager.PluginManager`, and tests of the wire layer may use a small fake.
All methods are safe to call from the asyncio loop thread; coroutine methods never block the loop.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ...protocol.jsonrpc import NO_PARAMS

__all__ = [
    "NO_PARAMS",
    "BodyStream",
    "Deliver",
    "EventStreamPort",
    "HostAPI",
    "LogRecord",
    "MethodInfo",
    "PluginInfo",
    "PluginState",
    "Unsubscribe",
    "WebSocketPort",
]


class PluginState(enum.IntEnum):
    """Lifecycle states, with SiYuan's codes (spec §2.1)."""

    INACTIVE = -1
    READY = 0
    LOADING = 1
    RUNNING = 2
    STOPPING = 3
    STOPPED = 4
    ERROR = 5

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class MethodInfo:
    name: str
    descriptions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PluginInfo:
    name: str
    state: PluginState
    methods: list[MethodInfo] = field(default_factory=list)
    error: str | None = None  # why the plugin does not run: its ``error``, a standby host, SiYuan runs it
    version: str = ""
    display_name: str = ""
    #: whether this start ran kernel.js from the compiled-code cache (no parsing) rather than compiling it
    compiled_from_cache: bool = False
    #: SiYuan's own host runs this plugin, so this host does not (kplug_lab/host/runtime/one_copy.py): its plugin
    #: routes belong to the SiYuan kernel
    runs_in_siyuan: bool = False
    hook_errors: list[str] = field(default_factory=list)  # lifecycle hooks that failed (logged; the plugin went on)
    kplug_only: list[str] = field(default_factory=list)  # kplug_lab's own globals it touched (absent in SiYuan)

    def to_siyuan(self) -> dict[str, Any]:
        """The ``PluginInfo`` shape of SiYuan's info endpoints (spec §5.7)."""
        return {
            "name": self.name,
            "state": self.state.label,
            "stateCode": int(self.state),
            "methods": [{"name": m.name, "descriptions": list(m.descriptions)} for m in self.methods]
            or None,
        }


@dataclass(frozen=True)
class LogRecord:
    plugin: str
    level: str  # trace, debug, info, warn, error
    message: str
    time: float


Unsubscribe = Callable[[], None]


# ``request.port`` of ``siyuan.server.private`` WebSocket and SSE requests: the wire end of the connection, which
# the RPC layer implements and passes to :meth:`HostAPI.http_request` (:mod:`kplug_lab.host.ops.private_ports`).

Deliver = Callable[[dict[str, Any]], Awaitable[None]]


class WebSocketPort(Protocol):
    """An accepted WebSocket. Methods are called on the host loop."""

    def attach(self, deliver: Deliver) -> None:
        """From now on, hand every frame and the final close to ``deliver``."""

    async def send(self, data: str | bytes) -> None: ...

    async def ping(self, data: bytes) -> None: ...

    async def pong(self, data: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@runtime_checkable
class EventStreamPort(Protocol):
    """An SSE response. Methods are called on the host loop, in the order the plugin made the calls."""

    def attach(self, deliver: Deliver) -> None:
        """From now on, hand the end of the stream (``{"type": "close"}``) to ``deliver``."""

    def send_event(self, text: str) -> None:
        """Write one encoded event (see :func:`kplug_lab.protocol.sse.encode_event`) and flush it."""

    def end(self) -> None:
        """Finish the response."""


class BodyStream(Protocol):
    """A ``body.stream`` response of a ``server.private`` ``http`` handler (changes page §2.8), as the result of
    :meth:`HostAPI.http_request` carries it in ``body["stream"]["reader"]``: chunks pulled one at a time from the
    plugin. Call on the host loop."""

    async def read(self) -> bytes | None:
        """The next chunk the plugin's stream produces, None at its end; raises if the stream errors."""

    async def cancel(self, reason: str) -> None:
        """The client left: cancel the plugin's stream with ``reason``."""


class HostAPI(Protocol):
    def get_plugin(self, name: str) -> PluginInfo | None: ...

    def list_plugins(self) -> list[PluginInfo]: ...

    async def call(self, name: str, method: str, params: Any = NO_PARAMS, *, timeout: float | None = None) -> Any:
        """Call a bound method. ``params`` is a list (spread), a dict (one argument) or ``NO_PARAMS``.

        Raises PluginNotLoaded, PluginNotRunning, MethodNotFound, PluginCallError, CallTimeout
        (see :mod:`kplug_lab.errors`). The result is JSON-compatible.
        """
        ...

    def start_call(self, name: str, method: str, params: Any = NO_PARAMS, *,
                   timeout: float | None = None) -> asyncio.Future[Any]:
        """:meth:`call` as a future of the same outcome, for callers that answer from a done-callback instead of a
        task (the WebSocket handler). What ``call`` raises before the plugin runs is raised here at once. A host
        that wraps another and changes ``call`` must change this too: WebSocket calls come here."""
        ...

    def subscribe_broadcasts(self, name: str, callback: Callable[[str, Any], None]) -> Unsubscribe:
        """``callback(method, params)`` for each ``siyuan.rpc.broadcast`` of plugin ``name``.

        ``params`` is ``NO_PARAMS`` when the plugin passed ``undefined``. Called on the asyncio loop thread.
        When the plugin stops or reloads, ``callback("", None)`` is not sent; instead
        ``subscribe_states`` reports the state change and the RPC layer closes the plugin's sockets.
        """
        ...

    def subscribe_states(self, callback: Callable[[str, PluginState], None]) -> Unsubscribe: ...

    def subscribe_logs(self, callback: Callable[[LogRecord], None]) -> Unsubscribe: ...

    def subscribe_calls(self, callback: Callable[[str, str, Any, Any, BaseException | None], None]) -> Unsubscribe:
        """``callback(plugin, method, params, result, error)`` once each call from any client has its outcome
        (``error`` None when it answered). Called on the asyncio loop thread."""
        ...

    def logs(self, name: str, limit: int = 200) -> list[LogRecord]: ...

    async def load(self, path: str) -> PluginInfo: ...

    async def unload(self, name: str) -> None: ...

    async def reload(self, name: str) -> PluginInfo: ...

    def tools(self) -> list[dict[str, Any]]: ...

    async def invoke_tool(self, tool_name: str, arguments: dict[str, Any]) -> dict[str, Any]: ...

    async def plugin_stats(self) -> list[dict[str, Any]]:
        """Health numbers of every plugin (the ``kplug.stats`` shape: docs/workbench.md)."""
        ...

    async def eval(self, name: str, code: str) -> Any:
        """Run JS inside a plugin's VM (dev mode only; the server checks that)."""
        ...

    async def http_request(self, name: str, slot: str, request: dict[str, Any],
                           port: WebSocketPort | EventStreamPort | None = None) -> Any:
        """Dispatch a ``/plugin/private/<name>/...`` request to a ``siyuan.server.private`` slot; ``ws`` and ``es``
        requests pass their connection as ``port`` (:mod:`kplug_lab.host.ops.private_ports`)."""
        ...
