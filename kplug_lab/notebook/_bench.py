"""``%kplug bench``: call one method N times, C at a time, over HTTP or WebSocket, and show latency percentiles and a
histogram. Latencies are measured in the kernel around each call (the wire included), each worker on its own
connection so they do not queue behind each other."""

from __future__ import annotations

import base64
import html
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..client import CallHistory, Client
from ..errors import KplugError
from ..host.runtime.stats import percentile

__all__ = ["BenchResult", "run_bench"]


@dataclass
class BenchResult:
    target: str
    transport: str  # "http" or "ws"
    concurrency: int
    latencies: list[float] = field(default_factory=list)  # seconds, of the calls that answered
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def calls(self) -> int:
        return len(self.latencies) + len(self.errors)

    def quantile_ms(self, q: float) -> float | None:
        value = percentile(sorted(self.latencies), q)
        return None if value is None else value * 1000

    @property
    def per_second(self) -> float:
        return self.calls / self.wall if self.wall > 0 else 0.0

    def histogram(self, bins: int = 12) -> list[tuple[float, float, int]]:
        """(low ms, high ms, count) over the answered calls, on a log scale (latencies have long tails)."""
        if not self.latencies:
            return []
        low, high = min(self.latencies) * 1000, max(self.latencies) * 1000
        if high <= low * 1.0001:
            return [(low, high, len(self.latencies))]
        edges = [low * (high / low) ** (i / bins) for i in range(bins + 1)] if low > 0 else \
            [low + (high - low) * i / bins for i in range(bins + 1)]
        counts = [0] * bins
        for x in self.latencies:
            ms = x * 1000
            i = min(bins - 1, next((j for j in range(bins) if ms < edges[j + 1]), bins - 1))
            counts[i] += 1
        return [(edges[i], edges[i + 1], counts[i]) for i in range(bins)]

    def text(self) -> str:
        def ms(q: float) -> str:
            value = self.quantile_ms(q)
            return "-" if value is None else f"{value:.3f}"

        lines = [f"{self.target} over {self.transport}: {self.calls} calls, concurrency {self.concurrency}, "
                 f"{len(self.errors)} errors, {self.per_second:.1f} calls/s",
                 f"p50 {ms(0.5)} ms  p90 {ms(0.9)} ms  p99 {ms(0.99)} ms  max {ms(1.0)} ms"]
        hist = self.histogram()
        most = max((c for _, _, c in hist), default=0)
        for lo, hi, count in hist:
            bar = "#" * (round(40 * count / most) if most else 0)
            lines.append(f"{lo:9.3f} - {hi:9.3f} ms {count:6d} {bar}")
        if self.errors:
            lines.append(f"first error: {self.errors[0]}")
        return "\n".join(lines)

    def png(self) -> bytes:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 2.6), dpi=80, layout="constrained")
        ax = fig.subplots()
        hist = self.histogram(24)
        if hist:
            ax.bar([lo for lo, _, _ in hist], [c for _, _, c in hist], [hi - lo for lo, hi, _ in hist], align="edge",
                   color="#48a")
            if hist[0][0] > 0 and hist[-1][1] / hist[0][0] > 20:
                ax.set_xscale("log")
            for q, colour in ((0.5, "#080"), (0.9, "#a60"), (0.99, "#b00")):
                value = self.quantile_ms(q)
                if value is not None:
                    ax.axvline(value, color=colour, linestyle="--", linewidth=1, label=f"p{round(q * 100)}")
            ax.legend(fontsize=7)
        ax.set_xlabel("latency (ms)", fontsize=8)
        ax.set_ylabel("calls", fontsize=8)
        ax.set_title(f"{self.target} ({self.transport}, concurrency {self.concurrency})", fontsize=9)
        ax.tick_params(labelsize=7)
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        png = self.png()
        image = base64.b64encode(png).decode()
        return {"text/plain": self.text(), "image/png": image,
                "text/html": f'<pre>{html.escape(chr(10).join(self.text().splitlines()[:2]))}</pre>'
                             f'<img src="data:image/png;base64,{image}">'}

    def __repr__(self) -> str:
        return self.text()


def run_bench(client: Client, plugin: str, method: str, params: list[Any], *, n: int = 200, concurrency: int = 1,
              websocket: bool = False, warmup: int = 5) -> BenchResult:
    """Call ``plugin.method(*params)`` ``n`` times from ``concurrency`` workers (each on its own connection), after
    ``warmup`` uncounted calls per worker."""
    result = BenchResult(f"{plugin}.{method}", "ws" if websocket else "http", concurrency)
    with Client(client.url, client.endpoint.token, timeout=client.timeout, history=CallHistory(1)) as probe:
        probe.call(plugin, method, *params)  # a wrong name or arguments fails here, once, with the server's error
    lock = threading.Lock()
    remaining = [n]
    ready = threading.Barrier(concurrency + 1)

    def take() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def work() -> None:
        with Client(client.url, client.endpoint.token, timeout=client.timeout, history=CallHistory(1)) as own:
            if websocket:
                with own.connect(plugin) as ws:
                    loop(lambda: ws.call(method, *params))
            else:
                loop(lambda: own.call(plugin, method, *params))

    def loop(call: Any) -> None:
        for _ in range(warmup):
            try:
                call()
            except KplugError:
                break
        ready.wait()
        while take():
            started = time.perf_counter()
            try:
                call()
            except KplugError as exc:
                with lock:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - started
            with lock:
                result.latencies.append(elapsed)

    threads = [threading.Thread(target=_guard(work, ready), daemon=True, name=f"kplug-bench-{i}")
               for i in range(concurrency)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    started = time.perf_counter()
    for t in threads:
        t.join()
    result.wall = time.perf_counter() - started
    return result


def _guard(work: Any, ready: threading.Barrier) -> Any:
    """A worker that fails before the start line breaks the barrier instead of leaving the others waiting."""
    def run() -> None:
        try:
            work()
        except BaseException:
            ready.abort()
            raise
    return run
