"""``siyuan.mcp`` and ``siyuan.agent`` tools: one registry shared by every plugin of a host."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ...errors import HostOpError
from ..runtime.context import Capability, Op

__all__ = ["MAX_AGENT_NAME", "ToolOps", "agent_name"]

#: the longest model-facing name of an agent capability (what model APIs take)
MAX_AGENT_NAME = 64
_UNSAFE = re.compile(r"[^0-9A-Za-z]")


def agent_name(plugin: str, capability: str) -> str:
    """SiYuan's model-facing name of capability ``capability`` of plugin ``plugin`` (changes §2.6):
    ``plugin__<P>__<C>__<12 hex>``, P and C with every character outside ``[0-9A-Za-z]`` made ``_``, the hex the
    first 6 bytes of SHA-256 of ``plugin + "\\0" + capability``; P and C are cut so that the whole name has at most
    64 characters (how SiYuan shares the cut between them is not verified: here each keeps at least half)."""
    digest = hashlib.sha256(f"{plugin}\0{capability}".encode()).hexdigest()[:12]
    p, c = _UNSAFE.sub("_", plugin), _UNSAFE.sub("_", capability)
    budget = MAX_AGENT_NAME - len("plugin______") - len(digest)
    if len(p) + len(c) > budget:
        keep = min(len(p), max(budget // 2, budget - len(c)))
        p, c = p[:keep], c[:budget - keep]
    return f"plugin__{p}__{c}__{digest}"

class ToolOps(Capability):
    def sync_ops(self) -> dict[str, Op]:
        return {"tool_register": self.tool_register, "tool_unregister": self.tool_unregister}

    def tool_register(self, kind: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
        registry = self.ctx.tools
        if kind == "agent":
            record = dict(record, name=agent_name(self.ctx.name, str(name)))
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
