"""Health at a glance: ``%kplug top`` (every plugin, refreshing in place) and the inspector's charts.

The numbers come from the host (``kplug.stats``); this module only keeps a short history and draws it. Charts are
drawn with matplotlib's Agg backend to PNG (no pyplot, no GUI state), shown in an ``ipywidgets.Image``: the picture
updates live in JupyterLab and is still there in a static render of the saved notebook.
"""

from __future__ import annotations

import html
import io
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["HealthCharts", "Top", "render_charts_png", "top_html", "top_text"]

_MIB = 1024 * 1024
_COLUMNS = ("plugin", "state", "memory", "cpu/s", "calls", "calls/s", "errors", "restarts", "p50 ms", "p99 ms")


def _mib(n: Any) -> str:
    return "-" if n is None else f"{n / _MIB:.1f}"


def _num(x: Any, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _row(p: dict[str, Any]) -> list[str]:
    memory, cpu, calls = p.get("memory") or {}, p.get("cpu") or {}, p.get("calls") or {}
    used, limit = memory.get("used"), memory.get("limit")
    mem = "-" if used is None else f"{_mib(used)}/{_mib(limit)} MiB"
    cpu_ps = cpu.get("perSecond")
    return [p["name"], p["state"], mem, "-" if cpu_ps is None else f"{cpu_ps * 100:.1f}%",
            str(calls.get("calls", 0)), _num(calls.get("perSecond")), str(calls.get("errors", 0)),
            str(p.get("restarts", 0)), _num(calls.get("p50"), "{:.2f}"), _num(calls.get("p99"), "{:.2f}")]


def top_text(stats: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table of every plugin (``%kplug top``'s text view)."""
    rows = [list(_COLUMNS)] + [_row(p) for p in stats]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    return "\n".join(line.rstrip() for line in lines) if stats else "no plugins"


def top_html(stats: Sequence[dict[str, Any]]) -> str:
    head = "".join(f'<th style="text-align:{"left" if i < 2 else "right"}">{html.escape(c)}</th>'
                   for i, c in enumerate(_COLUMNS))
    body = []
    for p in stats:
        cells = _row(p)
        colour = {"running": "#080", "error": "#b00"}.get(p["state"], "#a60")
        used, limit = (p.get("memory") or {}).get("used"), (p.get("memory") or {}).get("limit")
        bar = ""
        if used is not None and limit:
            share = min(100.0, 100.0 * used / limit)
            bar = (f'<div style="background:#ddd;height:4px;width:8em;margin-left:auto">'
                   f'<div style="background:{"#b00" if share > 80 else "#48a"};height:4px;width:{share:.0f}%">'
                   "</div></div>")
        tds = [f"<td><code>{html.escape(cells[0])}</code></td>",
               f'<td style="color:{colour}">{html.escape(cells[1])}</td>',
               f'<td style="text-align:right">{html.escape(cells[2])}{bar}</td>']
        tds += [f'<td style="text-align:right">{html.escape(c)}</td>' for c in cells[3:]]
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>" if stats else "<em>no plugins</em>"


class Top:
    """``%kplug top``: every plugin's state, memory, CPU, calls, errors and restarts, refreshed in place every
    ``interval`` seconds (for ``duration`` seconds, or until :meth:`stop`). Its ``text/plain`` is the table at
    display time, for front ends without widgets and for saved notebooks."""

    def __init__(self, fetch: Callable[[], list[dict[str, Any]]], *, interval: float = 1.0,
                 duration: float | None = None, live: bool = True, on_stop: Callable[[], None] | None = None) -> None:
        import ipywidgets as widgets

        self._fetch = fetch
        self._on_stop = on_stop
        self.interval = interval
        self.stats: list[dict[str, Any]] = fetch()
        self.html = widgets.HTML(top_html(self.stats))
        self.widget = widgets.VBox([self.html])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if live:
            self._thread = threading.Thread(target=self._run, args=(duration,), daemon=True, name="kplug-top")
            self._thread.start()

    def refresh(self) -> None:
        self.stats = self._fetch()
        self.html.value = top_html(self.stats)

    def _run(self, duration: float | None) -> None:
        end = None if duration is None else time.monotonic() + duration
        while not self._stop.wait(self.interval):
            if end is not None and time.monotonic() >= end:
                return
            try:
                self.refresh()
            except Exception as exc:  # the server went away: say so in place and stop
                self.html.value = f'<pre style="color:#b00">{html.escape(f"{type(exc).__name__}: {exc}")}</pre>'
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._on_stop is not None:
            self._on_stop()
            self._on_stop = None

    def text(self) -> str:
        return top_text(self.stats)

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = self.text()
        bundle["text/html"] = top_html(self.stats)
        return bundle


#: one point of a plugin's history: (seconds since the first point, its ``kplug.stats`` entry)
Point = tuple[float, dict[str, Any]]


def render_charts_png(name: str, points: Sequence[Point], *, width: float = 9.0, height: float = 5.0) -> bytes:
    """Four small charts of one plugin as PNG: memory against its limit, CPU time per second, calls per second
    (and errors), and latency percentiles per method at the last point."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=80, layout="constrained")
    (mem, cpu), (rate, lat) = fig.subplots(2, 2)
    ts = [t for t, _ in points]
    last = points[-1][1] if points else {}
    limit = (last.get("memory") or {}).get("limit")
    mem.plot(ts, [_or_nan((p.get("memory") or {}).get("used"), _MIB) for _, p in points], color="#48a")
    if limit:
        mem.axhline(limit / _MIB, color="#b00", linestyle="--", linewidth=1, label="limit")
        mem.legend(loc="upper left", fontsize=7)
    mem.set_title("memory (MiB)", fontsize=9)
    cpu.plot(ts, [_or_nan((p.get("cpu") or {}).get("perSecond"), 0.01) for _, p in points], color="#a60")
    cpu.set_title("CPU (% of one core)", fontsize=9)
    cpu.set_ylim(bottom=0)
    rate.plot(ts, [(p.get("calls") or {}).get("perSecond", 0) for _, p in points], color="#080", label="calls/s")
    errors = [(p.get("calls") or {}).get("errors", 0) for _, p in points]
    if any(errors):
        rate.plot(ts, errors, color="#b00", label="errors (total)")
    rate.legend(loc="upper left", fontsize=7)
    rate.set_title("calls per second", fontsize=9)
    rate.set_ylim(bottom=0)
    methods = (last.get("calls") or {}).get("methods") or {}
    names = [m for m, s in methods.items() if s.get("p50") is not None]
    for offset, (q, colour) in enumerate((("p50", "#48a"), ("p90", "#a60"), ("p99", "#b00"))):
        lat.bar([i + (offset - 1) * 0.27 for i in range(len(names))], [methods[m][q] for m in names], 0.27,
                color=colour, label=q)
    lat.set_xticks(range(len(names)), names, fontsize=7, rotation=20)
    if names:
        lat.legend(loc="upper left", fontsize=7)
    lat.set_title("latency per method (ms)", fontsize=9)
    for ax in (mem, cpu, rate):
        ax.tick_params(labelsize=7)
        ax.set_xlabel("s", fontsize=7)
    fig.suptitle(name, fontsize=10)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _or_nan(value: Any, unit: float) -> float:
    return float("nan") if value is None else value / unit


class HealthCharts:
    """The live charts of one plugin: feed it ``kplug.stats`` snapshots with :meth:`add`; ``widget`` shows the
    last ``keep`` points."""

    def __init__(self, keep: int = 120) -> None:
        import ipywidgets as widgets

        self.points: deque[Point] = deque(maxlen=keep)
        self.name: str | None = None
        self._t0 = time.monotonic()
        self.widget = widgets.Image(format="png")
        self._lock = threading.Lock()

    def select(self, name: str | None) -> None:
        with self._lock:
            if name != self.name:
                self.name = name
                self.points.clear()
                self._t0 = time.monotonic()

    def add(self, stats: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            entry = next((p for p in stats if p.get("name") == self.name), None)
            if entry is None:
                return
            self.points.append((time.monotonic() - self._t0, entry))
            png = render_charts_png(entry["name"], list(self.points))
        self.widget.value = png

    def png(self) -> bytes:
        return bytes(self.widget.value)
