"""What the ``%kplug`` magics return: small objects with a stable ``text/plain`` and an HTML view.

``text/plain`` never contains times, ports or tokens that change between runs, so notebooks that show these
objects can be compared by nbval. The data is on attributes (``value``, ``plugins``, ``entries``) for code.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from ..client import LogEntry, PluginStatus

__all__ = ["CallValue", "LogView", "Message", "PluginList", "PluginView", "ToolList"]


class _Result:
    def text(self) -> str:
        raise NotImplementedError

    def html(self) -> str:
        return f"<pre>{html.escape(self.text())}</pre>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.text(), "text/html": self.html()}

    def __repr__(self) -> str:
        return self.text()


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


class Message(_Result):
    def __init__(self, message: str) -> None:
        self.message = message

    def text(self) -> str:
        return self.message


class CallValue(_Result):
    """The result of ``%kplug call`` or ``%%kplug eval``: ``value`` is the decoded JSON."""

    def __init__(self, target: str, value: Any) -> None:
        self.target = target
        self.value = value

    def text(self) -> str:
        return to_json(self.value)

    def html(self) -> str:
        return (f'<div><small style="opacity:.6">{html.escape(self.target)}</small>'
                f"<pre>{html.escape(self.text())}</pre></div>")


def _state_text(p: PluginStatus) -> str:
    return p.state + (f" ({p.error})" if p.error else "")


def plugin_notes(p: PluginStatus) -> list[str]:
    """What a user must see about a plugin beside its state: lifecycle hooks that failed (the plugin went on, as in
    SiYuan), and the portability report: kplug_lab's own globals it touched, which SiYuan does not have."""
    notes = [f"hook failed: {e}" for e in p.hook_errors]
    if p.kplug_only:
        notes.append(f"not in SiYuan (kplug_lab only): {', '.join(p.kplug_only)}")
    return notes


class PluginList(_Result):
    """``%kplug list``: one row per plugin."""

    def __init__(self, plugins: Sequence[PluginStatus]) -> None:
        self.plugins = sorted(plugins, key=lambda p: p.name)

    def __getitem__(self, name: str) -> PluginStatus:
        for p in self.plugins:
            if p.name == name:
                return p
        raise KeyError(name)

    def text(self) -> str:
        if not self.plugins:
            return "no plugins loaded"
        width = max(len(p.name) for p in self.plugins)
        return "\n".join(f"{p.name:<{width}}  {p.state:<8}  {', '.join(m.name for m in p.methods)}"
                         + (f"  ({p.error})" if p.error else "") for p in self.plugins)

    def html(self) -> str:
        if not self.plugins:
            return "<em>no plugins loaded</em>"
        rows = "".join(f"<tr><td><b>{html.escape(p.name)}</b></td><td>{html.escape(_state_text(p))}</td>"
                       f"<td>{html.escape(', '.join(m.name for m in p.methods))}</td></tr>" for p in self.plugins)
        return f"<table><tr><th>plugin</th><th>state</th><th>methods</th></tr>{rows}</table>"


class PluginView(_Result):
    """``%kplug state|load|reload`` and ``%%kplug plugin``: one plugin with its methods."""

    def __init__(self, plugin: PluginStatus) -> None:
        self.plugin = plugin

    @property
    def state(self) -> str:
        return self.plugin.state

    def text(self) -> str:
        p = self.plugin
        head = f"{p.name} {p.version}".rstrip() + f": {_state_text(p)}"
        lines = [head] + [f"  ! {note}" for note in plugin_notes(p)]
        for m in p.methods:
            lines.append(f"  {m.name}" + (f"  {m.descriptions[0]}" if m.descriptions else ""))
            lines.extend(f"  {' ' * len(m.name)}  {d}" for d in m.descriptions[1:])
        return "\n".join(lines)

    def html(self) -> str:
        p = self.plugin
        rows = "".join(f"<tr><td><code>{html.escape(m.name)}</code></td>"
                       f"<td>{'<br>'.join(html.escape(d) for d in m.descriptions)}</td></tr>" for m in p.methods)
        notes = "".join(f'<div style="color:#b60">{html.escape(n)}</div>' for n in plugin_notes(p))
        return (f"<div><b>{html.escape(p.name)}</b> {html.escape(p.version)}: {html.escape(_state_text(p))}"
                + notes + (f"<table>{rows}</table>" if rows else "") + "</div>")


class LogView(_Result):
    """``%kplug logs``: ``entries`` keeps the times; the text leaves them out so it stays comparable."""

    def __init__(self, entries: Sequence[LogEntry]) -> None:
        self.entries = list(entries)

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.entries]

    def text(self) -> str:
        if not self.entries:
            return "no log lines"
        return "\n".join(f"{e.level.upper():<5} [{e.plugin}] {e.message}" for e in self.entries)


class ToolList(_Result):
    """``%kplug tools``: the MCP tools / agent capabilities plugins registered."""

    def __init__(self, tools: Sequence[dict[str, Any]]) -> None:
        self.tools = sorted(tools, key=lambda t: str(t.get("name", "")))

    def text(self) -> str:
        if not self.tools:
            return "no tools registered"
        return "\n".join(f"{t.get('name')}  [{t.get('plugin', '')}]  {t.get('description', '')}" for t in self.tools)
