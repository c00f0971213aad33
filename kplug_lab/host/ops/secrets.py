"""``siyuan.secrets.resolve`` and ``siyuan.vars.resolve``: templates filled from the host's configuration."""

from __future__ import annotations

import re
from typing import Any

from ..runtime.context import Capability, Op

__all__ = ["Secrets"]


class Secrets(Capability):
    def sync_ops(self) -> dict[str, Op]:
        return {"resolve": self.resolve}

    def resolve(self, kind: str, template: Any) -> str:
        """``{{secrets.NAME}}`` (or ``{{vars.NAME}}``), ``${NAME}`` and ``$NAME`` replaced; unknown names stay."""
        if not isinstance(template, str):
            return ""
        store = self.ctx.config.secrets if kind == "secrets" else self.ctx.config.vars
        prefix = "secrets" if kind == "secrets" else "vars"

        def braces(m: re.Match[str]) -> str:
            return store.get(m.group(1), m.group(0))

        text = re.sub(r"\{\{" + prefix + r"\.([^}]+)\}\}", braces, template)

        def shell(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            return store.get(name, m.group(0))

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", shell, text)
