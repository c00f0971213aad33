"""The shape every capability module's host half has: a set of operations for one plugin, over its context."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime.context import PluginContext

__all__ = ["Capability", "Op"]

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
