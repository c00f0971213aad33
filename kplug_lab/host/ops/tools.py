"""``siyuan.mcp`` and ``siyuan.agent`` tools: one registry shared by every plugin of a host."""

from __future__ import annotations

from typing import Any

from ...errors import HostOpError
from ..runtime.context import Capability, Op

__all__ = ["ToolOps"]


class ToolOps(Capability):
    def sync_ops(self) -> dict[str, Op]:
        return {"tool_register": self.tool_register, "tool_unregister": self.tool_unregister}

    def tool_register(self, kind: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
        registry = self.ctx.tools
        global_name = str(record.get("name") or name)
        owner = registry.get(global_name)
        if owner is not None and owner["plugin"] != self.ctx.name:
            raise HostOpError(f"tool name {global_name} is already registered by plugin [{owner['plugin']}]")
        registry[global_name] = {"plugin": self.ctx.name, "kind": str(kind), "local": str(name),
                                 "record": dict(record, name=global_name)}
        return dict(record, name=global_name)

    def tool_unregister(self, kind: str, name: str) -> None:
        plugin, local, kind = self.ctx.name, str(name), str(kind)
        self.ctx.tools.remove_if(lambda _k, t: t["plugin"] == plugin and t["local"] == local and t["kind"] == kind)
