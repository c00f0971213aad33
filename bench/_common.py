"""What every benchmark script shares: command line, targets with pass/fail, timing helpers, tables, JSON out.

Each script stays runnable as ``python bench/X.py --json OUT [--quick]``; it imports this module by its bare name
(the script's own folder is first on ``sys.path``). Importing it also puts the repository root on ``sys.path``,
so a script imported after it finds ``kplug_lab`` even when the package is not installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "Target",
    "arg_parser",
    "format_table",
    "median_time",
    "passed",
    "percentile",
    "report",
    "rounded",
    "rss_kib",
    "target_table",
    "targets_json",
    "write_json",
]

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Target:
    """``metric <= limit`` (absolute) or ``metric <= limit * baseline`` (a ratio to a metric of this run).

    ``at_least`` turns the ceiling into a floor, for rates where more is better (calls per second).
    """

    metric: str
    limit: float
    baseline: str | None = None
    at_least: bool = False

    def bound(self, metrics: Mapping[str, float]) -> float:
        return self.limit * metrics[self.baseline] if self.baseline else self.limit

    def met(self, metrics: Mapping[str, float]) -> bool:
        value, bound = metrics[self.metric], self.bound(metrics)
        return value >= bound if self.at_least else value <= bound

    def describe(self) -> str:
        relation = ">=" if self.at_least else "<="
        return f"{relation} {self.limit:g} x {self.baseline}" if self.baseline else f"{relation} {self.limit:g}"


def passed(metrics: Mapping[str, float], targets: Iterable[Target]) -> dict[str, bool]:
    return {t.metric: t.met(metrics) for t in targets}


def targets_json(metrics: Mapping[str, float], targets: Iterable[Target]) -> dict[str, dict[str, Any]]:
    """Each target as ``{"limit", "baseline", "bound"}``: the rule and the number it came to in this run."""
    return {t.metric: {"limit": t.limit, "baseline": t.baseline, "bound": round(t.bound(metrics), 4)}
            for t in targets}


def rounded(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in metrics.items()}


def report(metrics: Mapping[str, float], targets: Sequence[Target], **extra: Any) -> dict[str, Any]:
    """``{"metrics", "targets", "passed", **extra}``: verdicts from the unrounded metrics, figures rounded."""
    return {"metrics": rounded(metrics), "targets": targets_json(metrics, targets),
            "passed": passed(metrics, targets), **extra}


def median_time(fn: Callable[[], Any], *, samples: int, inner: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``samples`` timed batches of ``inner`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile by nearest rank (no interpolation: a value that was really measured)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_kib() -> int:
    """Resident memory of this process in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def format_table(rows: Sequence[Sequence[str]], *, right: Iterable[int] = (), indent: str = "") -> str:
    """``rows[0]`` is the header, underlined; cells are padded to their column, ``right`` columns right-aligned."""
    right_columns = set(right)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(cells: Sequence[str]) -> str:
        padded = (cell.rjust(w) if i in right_columns else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))
        return (indent + "  ".join(padded)).rstrip()

    lines = [line(row) for row in rows]
    lines.insert(1, indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def target_table(metrics: Mapping[str, float], targets: Iterable[Target],
                 notes: Mapping[str, str] | None = None) -> str:
    """Every metric with its target, the bound it came to and pass/FAIL; ``notes`` fill the target column of
    metrics without a target (what a baseline is)."""
    by_metric = {t.metric: t for t in targets}
    rows = [("metric", "median", "target", "result")]
    for name, value in metrics.items():
        target = by_metric.get(name)
        if target is None:
            rows.append((name, f"{value:g}", (notes or {}).get(name, ""), ""))
        else:
            verdict = "pass" if target.met(metrics) else "FAIL"
            rows.append((name, f"{value:g}", f"{target.describe()} ({target.bound(metrics):g})", verdict))
    return format_table(rows)


def arg_parser(doc: str | None, *, quick: str) -> argparse.ArgumentParser:
    """``--json OUT`` and ``--quick`` (``quick`` says what it shortens); a script adds its own options."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results here as JSON")
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def write_json(path: Path | None, result: Mapping[str, Any]) -> None:
    """Write ``result`` to ``path`` (its folder made if missing); nothing when no ``--json`` was given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
