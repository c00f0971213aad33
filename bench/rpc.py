"""RPC latency and throughput: kplug_lab's plugin call path against bare tornado echo handlers, same run.

Two servers run as subprocesses on 127.0.0.1: ``kplug serve`` with the example plugin ``hello`` (its ``echo``),
and a baseline tornado app (this script with ``--baseline-server``) whose HTTP and WebSocket handlers parse the
same JSON-RPC request and answer ``params[0]`` without any plugin behind them. One client measures both:

* HTTP: sequential calls on one keep-alive connection (``http.client``): p50 and p99 per call.
* WebSocket: calls pipelined on one connection (up to ``WS_WINDOW`` in flight): calls per second; and the
  same over 8 connections at once.
* WebSocket, one call at a time on one connection: ``ws_roundtrip_p50_ms`` (``hello.echo``, and the bare echo as
  ``ws_baseline_roundtrip_p50_ms``); ``ws_broadcast_then_answer_p50_ms``, ``counter.increment``, where the server
  writes a broadcast frame and then the answer frame. With Nagle's algorithm on, that answer waits for the
  client's delayed ACK (about 40 ms on Linux; ADR 0004); with TCP_NODELAY it takes about a millisecond.

Targets: ``http_call_p50_ms <= 1.5 x http_baseline_p50_ms`` and ``ws_calls_per_s >= 0.5 x ws_baseline_per_s``
(ratios against the baseline of the same run); ``ws_broadcast_then_answer_p50_ms <= 10`` (absolute: far above
the ~1 ms it takes, far below the ~40 ms a Nagle stall adds, so a stall shows as FAIL on any machine).

Usage: ``python bench/rpc.py --json OUT [--quick] [--strict]`` (``--strict``: exit 1 when a target is missed).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import ROOT, Target, arg_parser, format_table, percentile, write_json

TOKEN = "bench-token"
TARGETS = [Target("http_call_p50_ms", 1.5, baseline="http_baseline_p50_ms"),
           Target("ws_calls_per_s", 0.5, baseline="ws_baseline_per_s", at_least=True),
           Target("ws_broadcast_then_answer_p50_ms", 10)]
WS_WINDOW = 100  # calls in flight per connection: pipelined, but a client that reads what it asks for


# ---- the baseline server ------------------------------------------------------------------------------------

def run_baseline_server() -> None:
    import tornado.ioloop
    import tornado.web
    import tornado.websocket

    def answer(body: bytes | str) -> str:
        req = json.loads(body)
        return json.dumps({"jsonrpc": "2.0", "result": req["params"][0], "id": req["id"]}, ensure_ascii=False,
                          separators=(",", ":"))

    class Echo(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(answer(self.request.body))

    class EchoSocket(tornado.websocket.WebSocketHandler):
        def on_message(self, message: str | bytes) -> None:
            self.write_message(answer(message))

    async def main() -> None:
        app = tornado.web.Application([(r"/echo", Echo), (r"/ws", EchoSocket)])
        server = app.listen(0, address="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        print(f"URL:   http://127.0.0.1:{port}/", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# ---- running servers ----------------------------------------------------------------------------------------

@contextmanager
def server(cmd: list[str]) -> Any:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server {cmd} exited before printing its URL")
            if line.startswith("URL:"):
                url = line.split()[1].rstrip("/")
                break
        if url is None:
            raise RuntimeError(f"server {cmd} did not print its URL in 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ---- the client ---------------------------------------------------------------------------------------------

def http_latencies(url: str, path: str, n: int) -> list[float]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"Content-Type": "application/json", "Authorization": f"Token {TOKEN}"}
    out = []
    for i in range(n + n // 10):
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "echo", "params": [f"hello {i}"]})
        t0 = time.perf_counter()
        conn.request("POST", path, body, headers)
        res = conn.getresponse()
        data = res.read()
        elapsed = time.perf_counter() - t0
        if res.status != 200 or json.loads(data).get("result") != f"hello {i}":
            raise RuntimeError(f"bad answer from {url}{path}: {res.status} {data[:200]!r}")
        if i >= n // 10:  # the first tenth warms up
            out.append(elapsed * 1000)
    conn.close()
    return out


async def ws_pipelined(url: str, path: str, n: int, connections: int) -> float:
    import websockets

    ws_url = url.replace("http://", "ws://") + path

    async def one(conn_no: int, count: int) -> None:
        window = asyncio.Semaphore(WS_WINDOW)
        async with websockets.connect(ws_url, additional_headers={"Authorization": f"Token {TOKEN}"},
                                      max_size=None, ping_interval=None) as ws:
            async def send_all() -> None:
                for i in range(count):
                    await window.acquire()
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "echo",
                                              "params": [f"m{conn_no}-{i}"]}))

            sender = asyncio.ensure_future(send_all())
            seen = set()
            for _ in range(count):
                msg = json.loads(await ws.recv())
                window.release()
                if "result" not in msg:
                    raise RuntimeError(f"bad answer on {ws_url}: {msg}")
                seen.add(msg["id"])
            await sender
            if len(seen) != count:
                raise RuntimeError(f"{ws_url}: {count - len(seen)} answers missing")

    per = n // connections
    await asyncio.gather(*(one(c, min(50, per)) for c in range(connections)))  # warm up
    t0 = time.perf_counter()
    await asyncio.gather(*(one(c, per) for c in range(connections)))
    return per * connections / (time.perf_counter() - t0)


async def ws_sequential(url: str, path: str, method: str, n: int, *,
                        broadcast: str | None = None) -> list[float]:
    """Milliseconds per call, one call at a time on one connection, after a warm-up tenth. ``params`` are
    ``["s<i>"]`` for ``echo`` (checked to come back) and ``[1]`` otherwise. With ``broadcast``, each answer must
    come after a notification of that method: the frame the server writes just before the answer."""
    import websockets

    ws_url = url.replace("http://", "ws://") + path
    out = []
    async with websockets.connect(ws_url, additional_headers={"Authorization": f"Token {TOKEN}"},
                                  max_size=None, ping_interval=None) as ws:
        for i in range(n + n // 10):
            params: list[Any] = [f"s{i}"] if method == "echo" else [1]
            request = json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
            broadcasts = 0
            t0 = time.perf_counter()
            await ws.send(request)
            while True:
                msg = json.loads(await ws.recv())
                if "id" not in msg:
                    broadcasts += msg.get("method") == broadcast
                    continue
                break
            elapsed = time.perf_counter() - t0
            if msg.get("id") != i or "result" not in msg or (method == "echo" and msg["result"] != params[0]):
                raise RuntimeError(f"bad answer on {ws_url} to call {i}: {msg}")
            if broadcast is not None and broadcasts == 0:
                raise RuntimeError(f"{ws_url}: the answer to call {i} of {method} came without a {broadcast!r} "
                                   "notification before it")
            if i >= n // 10:  # the first tenth warms up
                out.append(elapsed * 1000)
    return out


def main() -> int:
    ap = arg_parser(__doc__, quick="fewer calls (a smoke run)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve-option", action="append", default=[], metavar="OPTION",
                    help="an option for the measured kplug serve, e.g. --serve-option=--follow-caller-cpu "
                         "(repeatable): to measure the opt-in tuning switches against the defaults")
    args = ap.parse_args()
    if args.baseline_server:
        run_baseline_server()
        return 0
    n_http = 300 if args.quick else 3000
    n_ws = 1000 if args.quick else 10000
    n_ws_seq = 300 if args.quick else 2000
    n_broadcast = 100 if args.quick else 500  # a Nagle stall costs ~40 ms a call: keep that run short

    with tempfile.TemporaryDirectory(prefix="kplug-bench-") as tmp:
        plugins = Path(tmp) / "plugins"
        for plugin in ("hello", "counter"):
            shutil.copytree(ROOT / "plugins" / plugin, plugins / plugin)
        kplug_cmd = [sys.executable, "-m", "kplug_lab", "serve", "--plugins", str(plugins), "--data",
                     str(Path(tmp) / "data"), "--port", "0", "--token", TOKEN, "--no-reload", "--log-level", "WARNING",
                     *args.serve_option]
        base_cmd = [sys.executable, os.path.abspath(__file__), "--baseline-server"]
        with server(kplug_cmd) as kplug_url, server(base_cmd) as base_url:
            # interleave the two sides so both see the same machine load
            http_kplug: list[float] = []
            http_base: list[float] = []
            for _ in range(3):
                http_base += http_latencies(base_url, "/echo", n_http // 3)
                http_kplug += http_latencies(kplug_url, "/api/plugin/rpc/hello", n_http // 3)
            ws_base = asyncio.run(ws_pipelined(base_url, "/ws", n_ws, 1))
            ws_kplug = asyncio.run(ws_pipelined(kplug_url, "/ws/plugin/rpc/hello", n_ws, 1))
            ws_base_8 = asyncio.run(ws_pipelined(base_url, "/ws", n_ws, 8))
            ws_kplug_8 = asyncio.run(ws_pipelined(kplug_url, "/ws/plugin/rpc/hello", n_ws, 8))
            ws_seq_base: list[float] = []
            ws_seq_kplug: list[float] = []
            for _ in range(3):
                ws_seq_base += asyncio.run(ws_sequential(base_url, "/ws", "echo", n_ws_seq // 3))
                ws_seq_kplug += asyncio.run(ws_sequential(kplug_url, "/ws/plugin/rpc/hello", "echo", n_ws_seq // 3))
            ws_broadcast = asyncio.run(ws_sequential(kplug_url, "/ws/plugin/rpc/counter", "increment", n_broadcast,
                                                     broadcast="changed"))

    metrics: dict[str, Any] = {
        "http_call_p50_ms": round(statistics.median(http_kplug), 4),
        "http_call_p99_ms": round(percentile(http_kplug, 99), 4),
        "http_baseline_p50_ms": round(statistics.median(http_base), 4),
        "http_baseline_p99_ms": round(percentile(http_base, 99), 4),
        "ws_calls_per_s": round(ws_kplug, 1),
        "ws_baseline_per_s": round(ws_base, 1),
        "ws_calls_per_s_8conn": round(ws_kplug_8, 1),
        "ws_baseline_per_s_8conn": round(ws_base_8, 1),
        "ws_roundtrip_p50_ms": round(statistics.median(ws_seq_kplug), 4),
        "ws_baseline_roundtrip_p50_ms": round(statistics.median(ws_seq_base), 4),
        "ws_broadcast_then_answer_p50_ms": round(statistics.median(ws_broadcast), 4),
    }
    metrics["http_p50_ratio"] = round(metrics["http_call_p50_ms"] / metrics["http_baseline_p50_ms"], 3)
    metrics["ws_ratio"] = round(metrics["ws_calls_per_s"] / metrics["ws_baseline_per_s"], 3)
    targets = {t.metric: {"min" if t.at_least else "max": round(t.bound(metrics), 4), "rule": t.describe(),
                          "pass": t.met(metrics)} for t in TARGETS}

    def verdict(metric: str) -> str:
        return f"{targets[metric]['rule']}  {'PASS' if targets[metric]['pass'] else 'FAIL'}"

    print(format_table([
        ("metric", "kplug", "baseline", "ratio", "target"),
        ("HTTP call p50 (ms)", f"{metrics['http_call_p50_ms']:.3f}", f"{metrics['http_baseline_p50_ms']:.3f}",
         f"{metrics['http_p50_ratio']:.2f}", verdict("http_call_p50_ms")),
        ("HTTP call p99 (ms)", f"{metrics['http_call_p99_ms']:.3f}", f"{metrics['http_baseline_p99_ms']:.3f}",
         f"{metrics['http_call_p99_ms'] / metrics['http_baseline_p99_ms']:.2f}", ""),
        ("WS calls/s, 1 connection", f"{metrics['ws_calls_per_s']:.0f}", f"{metrics['ws_baseline_per_s']:.0f}",
         f"{metrics['ws_ratio']:.2f}", verdict("ws_calls_per_s")),
        ("WS calls/s, 8 connections", f"{metrics['ws_calls_per_s_8conn']:.0f}",
         f"{metrics['ws_baseline_per_s_8conn']:.0f}",
         f"{metrics['ws_calls_per_s_8conn'] / metrics['ws_baseline_per_s_8conn']:.2f}", ""),
        ("WS round trip p50 (ms), one at a time", f"{metrics['ws_roundtrip_p50_ms']:.3f}",
         f"{metrics['ws_baseline_roundtrip_p50_ms']:.3f}",
         f"{metrics['ws_roundtrip_p50_ms'] / metrics['ws_baseline_roundtrip_p50_ms']:.2f}", ""),
        ("WS broadcast then answer p50 (ms)", f"{metrics['ws_broadcast_then_answer_p50_ms']:.3f}", "", "",
         verdict("ws_broadcast_then_answer_p50_ms")),
    ], right=(1, 2, 3)))
    write_json(args.json, {"metrics": metrics, "targets": targets,
                           "calls": {"http": len(http_kplug), "ws": n_ws, "ws_sequential": len(ws_seq_kplug),
                                     "ws_broadcast": len(ws_broadcast)}})
    return 1 if args.strict and not all(t["pass"] for t in targets.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
