"""Health numbers per plugin, measured on the call path: calls, errors and latencies per method, restarts.

Cheap by design: a finished call adds one float to a bounded ring and bumps one per-second bucket; nothing runs
between calls. Memory (the VM's own count) and CPU time (the actor thread's CPU clock) are read when someone asks
(``kplug.stats``), not sampled in the background.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HostStats", "MethodStats", "PluginStats", "percentile", "thread_cpu_seconds"]

#: calls per second are counted over this many of the last whole seconds
RATE_WINDOW = 10
#: latency percentiles are taken over this many of the last calls of a method
LATENCY_SAMPLES = 1024


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ascending values, by the nearest-rank rule; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def thread_cpu_seconds(ident: int | None) -> float | None:
    """CPU seconds the thread ``ident`` has used, or None where threads have no readable CPU clock."""
    if ident is None:
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (AttributeError, OSError):
        return None


class _Rate:
    """Events per second over the last :data:`RATE_WINDOW` whole seconds, as (second, count) buckets."""

    def __init__(self) -> None:
        self._buckets: deque[list[int]] = deque(maxlen=RATE_WINDOW + 1)

    def add(self, now: float) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])

    def per_second(self, now: float, since: float) -> float:
        current = int(now)
        total = sum(n for s, n in self._buckets if current - RATE_WINDOW < s <= current)
        span = min(float(RATE_WINDOW), max(now - since, 1.0))
        return total / span


@dataclass
class MethodStats:
    calls: int = 0
    errors: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    rate: _Rate = field(default_factory=_Rate)

    def snapshot(self, now: float, since: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def ms(q: float) -> float | None:
            value = percentile(ordered, q)
            return None if value is None else round(value * 1000, 3)

        return {"calls": self.calls, "errors": self.errors, "perSecond": round(self.rate.per_second(now, since), 3),
                "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99)}


@dataclass
class PluginStats:
    """What a plugin's name has accumulated since the host started (kept across restarts and reloads)."""

    since: float = field(default_factory=time.monotonic)
    methods: dict[str, MethodStats] = field(default_factory=dict)
    restarts: int = 0  # restarts after a crash
    reloads: int = 0
    memory_used: int | None = None  # the last value read from the VM
    cpu_sample: tuple[int, float, float] | None = None  # (thread ident, monotonic time, CPU seconds)
    cpu_per_second: float | None = None

    def record_call(self, method: str, seconds: float, ok: bool, now: float) -> None:
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        stats.calls += 1
        if not ok:
            stats.errors += 1
        stats.latencies.append(seconds)
        stats.rate.add(now)

    def sample_cpu(self, ident: int | None, now: float, started: float) -> float | None:
        """The thread's CPU seconds; updates CPU per second from the previous sample of the same thread (or,
        for a thread seen for the first time, over its lifetime from ``started``)."""
        cpu = thread_cpu_seconds(ident)
        if cpu is None or ident is None:
            self.cpu_sample, self.cpu_per_second = None, None
            return None
        previous = self.cpu_sample
        if previous is None or previous[0] != ident:
            self.cpu_per_second = cpu / max(now - started, 1e-3)
            self.cpu_sample = (ident, now, cpu)
        elif now - previous[1] >= 0.2:  # closer samples say more about noise than about the plugin
            self.cpu_per_second = max(0.0, cpu - previous[2]) / (now - previous[1])
            self.cpu_sample = (ident, now, cpu)
        return cpu


class HostStats:
    """Per plugin name: see :class:`PluginStats`. Used on the host's loop only."""

    def __init__(self) -> None:
        self.plugins: dict[str, PluginStats] = {}

    def of(self, name: str) -> PluginStats:
        stats = self.plugins.get(name)
        if stats is None:
            stats = self.plugins[name] = PluginStats()
        return stats

    def record_call(self, name: str, method: str, seconds: float, ok: bool) -> None:
        self.of(name).record_call(method, seconds, ok, time.monotonic())

    def snapshot(self, name: str, now: float) -> dict[str, Any]:
        """The call numbers of ``name``: totals, the latency percentiles over all its methods, and per method."""
        stats = self.of(name)
        methods = {m: s.snapshot(now, stats.since) for m, s in sorted(stats.methods.items())}
        everything = sorted(x for s in stats.methods.values() for x in s.latencies)

        def ms(q: float) -> float | None:
            value = percentile(everything, q)
            return None if value is None else round(value * 1000, 3)

        return {
            "calls": sum(s.calls for s in stats.methods.values()),
            "errors": sum(s.errors for s in stats.methods.values()),
            "perSecond": round(sum(m["perSecond"] for m in methods.values()), 3),
            "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99),
            "methods": methods,
        }
