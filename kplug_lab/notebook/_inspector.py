"""The inspector widget (``%kplug inspect``): plugins with live state, their methods with a call form, a live
log view, reload and unload buttons, the last calls with timings, and live health charts (memory, CPU, calls,
latencies: :mod:`._health`).

User actions (Call, Reload, Unload) go through the session's client, so they appear in its call history next to
the magics' calls; the inspector's own bookkeeping (listing, fetching logs) uses a second client whose history is
not shown. Live updates come from the admin WebSocket (``kplug.subscribe``) on its reader thread; the charts poll
``kplug.stats`` every ``stats_interval`` seconds on a thread of their own.
"""

from __future__ import annotations

import dataclasses
import html
import json
import threading
from collections import deque
from typing import Any

import ipywidgets as widgets

from ..client import AdminSocket, CallRecord, Client, LogEntry, Notification, PluginStatus, TransportError
from ..errors import KplugError
from ._display import plugin_notes
from ._health import HealthCharts

__all__ = ["Inspector"]


def _error_html(exc: BaseException) -> str:
    return f'<pre style="color:#b00">{html.escape(f"{type(exc).__name__}: {exc}")}</pre>'


class Inspector:
    """Build with a :class:`~kplug_lab.client.Client`; display it (it has ``_repr_mimebundle_``) or use ``widget``.

    ``live=False`` skips the WebSocket subscription (then :meth:`refresh` updates everything).
    """

    def __init__(self, client: Client, *, select: str | None = None, live: bool = True, log_lines: int = 200,
                 history_rows: int = 10, stats_interval: float = 1.0) -> None:
        self.client = client
        self._quiet = Client(client.url, client.endpoint.token, timeout=client.timeout)
        self._lock = threading.RLock()
        self._plugins: dict[str, PluginStatus] = {}
        self._logs: deque[LogEntry] = deque(maxlen=log_lines)
        self._log_lines = log_lines
        self._history_rows = history_rows
        self._admin: AdminSocket | None = None
        self.charts = HealthCharts()
        self._stats_interval = stats_interval
        self._stop_stats = threading.Event()
        self._stats_thread: threading.Thread | None = None

        self.plugin_select = widgets.Dropdown(description="plugin", options=[])
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.reload_button = widgets.Button(description="Reload", icon="repeat")
        self.unload_button = widgets.Button(description="Unload", icon="stop", button_style="warning")
        self.state_html = widgets.HTML()
        self.methods_html = widgets.HTML()
        self.method_select = widgets.Dropdown(description="method", options=[])
        self.args_text = widgets.Text(description="args", placeholder='JSON values: "Ada" 1 {"k": 2}')
        self.call_button = widgets.Button(description="Call", icon="play", button_style="primary")
        self.result_html = widgets.HTML()
        self.log_view = widgets.HTML()
        self.history_html = widgets.HTML()
        self.status_html = widgets.HTML()

        self.plugin_select.observe(self._on_select, names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.reload_button.on_click(lambda _: self._lifecycle("reload"))
        self.unload_button.on_click(lambda _: self._lifecycle("unload"))
        self.call_button.on_click(lambda _: self._call())
        self.widget = widgets.VBox([
            widgets.HBox([self.plugin_select, self.refresh_button, self.reload_button, self.unload_button]),
            self.state_html,
            self.methods_html,
            widgets.HBox([self.method_select, self.args_text, self.call_button]),
            self.result_html,
            widgets.HTML("<b>Log</b>"),
            self.log_view,
            widgets.HTML("<b>Last calls</b>"),
            self.history_html,
            widgets.HTML("<b>Health</b>"),
            self.charts.widget,
            self.status_html,
        ])
        client.history.listeners.append(self._on_call)
        self.refresh(select)
        self._render_history()
        self.refresh_stats()
        if live:
            self._start_live()
            self._stats_thread = threading.Thread(target=self._poll_stats, daemon=True, name="kplug-inspector-stats")
            self._stats_thread.start()

    # ---- data ---------------------------------------------------------------------------------------

    @property
    def selected(self) -> str | None:
        value = self.plugin_select.value
        return str(value) if value else None

    def refresh(self, select: str | None = None) -> None:
        """Re-read plugins (and the selected plugin's logs) from the server."""
        try:
            plugins = self._quiet.list_plugins()
        except KplugError as exc:
            self.status_html.value = _error_html(exc)
            return
        with self._lock:
            self._plugins = {p.name: p for p in plugins}
            keep = select or self.selected
            names = sorted(self._plugins)
            if keep and keep not in names:
                names.append(keep)  # an unloaded plugin stays selected, shown as not loaded
            self.plugin_select.options = names
            self.plugin_select.value = keep if keep in names else (names[0] if names else None)
        self._show_plugin()
        self._load_logs()

    def refresh_stats(self) -> None:
        """Add one ``kplug.stats`` point to the selected plugin's charts."""
        self.charts.select(self.selected)
        try:
            self.charts.add(self._quiet.stats())
        except KplugError as exc:
            self.status_html.value = _error_html(exc)

    def _poll_stats(self) -> None:
        while not self._stop_stats.wait(self._stats_interval):
            self.refresh_stats()

    def _on_select(self, change: dict[str, Any]) -> None:
        self.charts.select(self.selected)
        self._show_plugin()
        self._load_logs()
        self.result_html.value = ""

    def _show_plugin(self) -> None:
        name = self.selected
        p = self._plugins.get(name) if name else None
        if p is None:
            self.state_html.value = f"<b>{html.escape(name)}</b>: not loaded" if name else "<em>no plugins</em>"
            self.methods_html.value = ""
            self.method_select.options = []
            return
        colour = {"running": "#080", "error": "#b00"}.get(p.state, "#a60")
        self.state_html.value = (f'<b>{html.escape(p.name)}</b> {html.escape(p.version)}: '
                                 f'<span style="color:{colour}">{html.escape(p.state)}</span>'
                                 + (f" ({html.escape(p.error)})" if p.error else "")
                                 + "".join(f'<div style="color:#b60">{html.escape(n)}</div>' for n in plugin_notes(p)))
        rows = "".join(f"<tr><td><code>{html.escape(m.name)}</code></td>"
                       f"<td>{'<br>'.join(html.escape(d) for d in m.descriptions)}</td></tr>" for m in p.methods)
        self.methods_html.value = f"<table>{rows}</table>" if rows else "<em>no bound methods</em>"
        current = self.method_select.value
        self.method_select.options = [m.name for m in p.methods]
        if current in self.method_select.options:
            self.method_select.value = current
        elif self.method_select.options:
            self.method_select.value = self.method_select.options[0]  # an empty choice only invites a click error

    def _load_logs(self) -> None:
        name = self.selected
        if not name or name not in self._plugins:
            self._logs.clear()
            self._render_logs()
            return
        try:
            entries = self._quiet.logs(name, self._log_lines)
        except KplugError as exc:
            self.status_html.value = _error_html(exc)
            return
        with self._lock:
            self._logs.clear()
            self._logs.extend(entries)
        self._render_logs()

    def _render_logs(self) -> None:
        with self._lock:
            lines = [f"{e.level.upper():<5} {e.message}" for e in self._logs]
        self.log_view.value = (f'<pre style="max-height:12em;overflow:auto">{html.escape(chr(10).join(lines))}</pre>'
                               if lines else "<em>no log lines</em>")

    @property
    def log_messages(self) -> list[str]:
        with self._lock:
            return [e.message for e in self._logs]

    def _render_history(self) -> None:
        records = self.client.history.records()[-self._history_rows:]
        rows = "".join(
            f'<tr><td style="white-space:nowrap"><code>{html.escape(r.target)}</code></td>'
            f"<td>{html.escape(json.dumps(r.params, ensure_ascii=False)[:80])}</td>"
            f'<td style="text-align:right;white-space:nowrap">{r.seconds * 1000:.1f} ms</td>'
            f"<td>{'ok' if r.ok else html.escape('error: ' + (r.error or ''))}</td></tr>"
            for r in reversed(records))
        header = "".join(f'<th style="text-align:left">{h}</th>' for h in ("call", "arguments", "time", "outcome"))
        header = f"<tr>{header}</tr>"
        self.history_html.value = f"<table>{header}{rows}</table>" if rows else "<em>no calls yet</em>"

    def _on_call(self, record: CallRecord) -> None:
        self._render_history()

    # ---- actions ------------------------------------------------------------------------------------

    def _call(self) -> None:
        from ._magics import parse_json_args

        name, method = self.selected, self.method_select.value
        if not name or not method:
            self.result_html.value = "<em>choose a plugin and a method</em>"
            return
        try:
            args = parse_json_args(self.args_text.value)
            value = self.client.call(name, str(method), *args)
        except Exception as exc:  # shown in the widget: a click handler has nowhere to raise to
            self.result_html.value = _error_html(exc)
            return
        self.result_html.value = f"<pre>{html.escape(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"

    def _lifecycle(self, action: str) -> None:
        name = self.selected
        if not name:
            return
        try:
            if action == "reload":
                self.client.reload(name)
            else:
                self.client.unload(name)
        except KplugError as exc:
            self.status_html.value = _error_html(exc)
            return
        self.status_html.value = ""
        self.refresh(name)

    # ---- live updates -------------------------------------------------------------------------------

    def _start_live(self) -> None:
        try:
            self._admin = self._quiet.admin_socket()
            self._admin.subscribe(["state", "log"])
        except (KplugError, TransportError) as exc:
            self.status_html.value = _error_html(exc)
            return
        self._admin.on_notification(self._on_note)

    def _on_note(self, note: Notification) -> None:
        params = note.params or {}
        if note.method == "kplug.log" and params.get("plugin") == self.selected:
            with self._lock:
                self._logs.append(LogEntry.from_json(params))
            self._render_logs()
        elif note.method == "kplug.state":
            name = str(params.get("name"))
            with self._lock:
                old = self._plugins.get(name)
                if old is not None:
                    self._plugins[name] = dataclasses.replace(old, state=params["state"],
                                                              state_code=int(params["stateCode"]))
            if params.get("state") in ("running", "error", "stopped") or old is None:
                threading.Thread(target=self.refresh, daemon=True).start()  # new methods, new plugins
            elif name == self.selected:
                self._show_plugin()

    def close(self) -> None:
        """Stop live updates and close the inspector's connections."""
        if self._on_call in self.client.history.listeners:
            self.client.history.listeners.remove(self._on_call)
        self._stop_stats.set()
        if self._stats_thread is not None:
            self._stats_thread.join(5)
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self._quiet.close()
        self.widget.close()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)
