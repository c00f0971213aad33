"""The two entry points a plugin's VM calls (``__kplug_native.call`` and ``.callAsync``), routed to the
capability modules beside this one by the table in :mod:`.names`.

A call's path: the JS calls ``call(op, ...args)`` or ``callAsync(op, ...args)``; the sandbox hands the op name and
the JSON arguments to :meth:`HostOps.call_sync` / :meth:`HostOps.call_async` on the plugin's thread; the
capability's function runs. A synchronous result goes straight back; an asynchronous one is settled in a later job
by the plugin (:meth:`kplug_lab.host.runtime.plugin.Plugin.post_vm`).
"""

from __future__ import annotations

from typing import Any

from ...errors import HostOpError
from ..runtime.context import Capability, Op, PluginContext
from .basics import Basics
from .client_events import ClientEvents
from .client_socket import ClientSockets
from .crypto import CryptoOps
from .durable import DurableOps
from .fetch import FetchOps
from .modules import ModuleOps
from .names import ASYNC_OPS, SYNC_OPS
from .portability import PortabilityOps
from .private_ports import PrivatePorts
from .rpc import RpcOps
from .secrets import Secrets
from .storage import StorageOps
from .timers import TimerOps
from .tools import ToolOps

__all__ = ["HostOpError", "HostOps"]


class HostOps:
    """Every capability's operations for one plugin instance."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ports = PrivatePorts(ctx)
        self.capabilities: list[Capability] = [
            Basics(ctx), Secrets(ctx), TimerOps(ctx), RpcOps(ctx), ToolOps(ctx), StorageOps(ctx), FetchOps(ctx),
            ClientSockets(ctx), ClientEvents(ctx), self.ports, DurableOps(ctx), CryptoOps(ctx), ModuleOps(ctx),
            PortabilityOps(ctx),
        ]
        self.sync = _table(self.capabilities, SYNC_OPS, "sync_ops")
        self.async_ = _table(self.capabilities, ASYNC_OPS, "async_ops")

    def close(self) -> None:
        for capability in self.capabilities:
            capability.close_all()

    def call_sync(self, op: str, *args: Any) -> Any:
        fn = self.sync.get(op)
        if fn is None:
            raise HostOpError(f"unknown host operation {op!r}")
        return fn(*args)

    def call_async(self, op: str, *args: Any) -> Any:
        fn = self.async_.get(op)
        if fn is None:
            raise HostOpError(f"unknown host operation {op!r}")
        return fn(*args)


def _table(capabilities: list[Capability], names: dict[str, str], kind: str) -> dict[str, Op]:
    """The dispatch table of one kind: exactly the ops :mod:`.names` lists, each from the module it names."""
    table: dict[str, Op] = {}
    for capability in capabilities:
        module = type(capability).__module__.rpartition(".")[2]
        for op, fn in getattr(capability, kind)().items():
            if names.get(op) != module:
                raise RuntimeError(f"host/ops/{module}.py implements {op!r}, which names.py does not give it")
            table[op] = fn
    missing = sorted(set(names) - set(table))
    if missing:
        raise RuntimeError(f"names.py lists host operations nobody implements: {missing}")
    return table
