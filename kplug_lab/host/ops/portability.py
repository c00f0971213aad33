"""The portability report: which of kplug_lab's own globals (absent in SiYuan, changes §1 and §5) a plugin touched.

A plugin that uses ``structuredClone`` or ``siyuan.mcp`` works in the workbench and fails in SiYuan; the prelude
(``host/js/portability.js``) reports each such name once, the first time the plugin touches it, and the plugin's
state shows the list (``PluginInfo.kplug_only``). With ``HostConfig.siyuan_strict`` the names are absent instead.
"""

from __future__ import annotations

from ..runtime.context import Capability, Op

__all__ = ["KPLUG_ONLY", "PortabilityOps"]

#: everything a kernel.js sees here and not in SiYuan (the JS side lists the same names: ``portability.js``)
KPLUG_ONLY: tuple[str, ...] = (
    "structuredClone", "atob", "btoa", "queueMicrotask", "performance", "DOMException", "Event", "EventTarget",
    "global", "kplug", "siyuan.mcp", "siyuan.plugin.lifecycle.onloaded",
)


class PortabilityOps(Capability):
    def sync_ops(self) -> dict[str, Op]:
        return {"portability_touch": self.touch}

    def touch(self, name: str) -> None:
        name = str(name)
        used = self.ctx.kplug_only_used
        if name in KPLUG_ONLY and name not in used:
            used.append(name)
