"""Benchmark durable work: queue push, compare-and-set, and the takeover of a standby host after SIGKILL.

Run ``python bench/durability.py --json OUT [--quick]``. Prints a table and writes ``{"metrics": {...},
"targets": {...}, "passed": {...}}``. ``queue_push_ms`` and ``kv_cas_ms`` are timed inside a plugin with
``performance.now()`` around awaited calls (each one committed and fsynced before it resolves), through the real
host (PluginManager, plugin thread, wasm sandbox). ``queue_push_baseline_ms`` is a raw SQLite insert + commit
of the same item, with the same durability settings (``kplug_lab.durable.store.PRAGMAS``) in the same folder,
measured in the same run, interleaved with the plugin rounds so both see the same machine load. ``takeover_ms``
is the time from SIGKILL of the owning ``kplug serve`` to the first successful RPC answered by the standby.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Target, arg_parser, passed, rounded, target_table, write_json

from kplug_lab.durable.store import PRAGMAS
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager

ITEM = {"id": "hb-000000", "entity": "/notes/today.sy", "time": 1764057600.123, "category": "coding"}

BENCH_PLUGIN = """
const q = kplug.queue("bench");
siyuan.rpc.bind("push", async (n, round, item) => {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await q.push(item, {key: round + ":" + i});
  return (performance.now() - t0) / n;
});
siyuan.rpc.bind("cas", async (n) => {
  let version = (await kplug.kv.set("counter", 0));
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await kplug.kv.cas("counter", version, i + 1);
    if (!r.ok) throw new Error("unexpected conflict");
    version = r.version;
  }
  return (performance.now() - t0) / n;
});
"""

TICKER = 'siyuan.rpc.bind("ping", () => "pong");'


def baseline_push_ms(folder: Path, n: int, round_: int) -> float:
    """Raw SQLite: the same row into a table of the same shape, one transaction per item, same pragmas."""
    db = sqlite3.connect(str(folder / "baseline.sqlite3"), isolation_level=None)
    for pragma in PRAGMAS:
        db.execute(pragma)
    db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, plugin TEXT, queue TEXT, "
               "item TEXT, key TEXT, created REAL)")
    text = json.dumps(ITEM, separators=(",", ":"))
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO items (plugin, queue, item, key, created) VALUES (?, ?, ?, ?, ?)",
                   ("bench", "bench", text, f"{round_}:{i}", time.time()))
        db.execute("COMMIT")
    elapsed = (time.perf_counter() - t0) * 1000.0 / n
    db.close()
    return elapsed


async def in_plugin(folder: Path, rounds: int, n: int) -> dict[str, float]:
    plugins = folder / "plugins"
    (plugins / "bench").mkdir(parents=True)
    (plugins / "bench" / "plugin.json").write_text(json.dumps({"name": "bench", "kernels": ["all"]}))
    (plugins / "bench" / "kernel.js").write_text(BENCH_PLUGIN)
    manager = PluginManager(HostConfig(data_dir=folder / "data", hot_reload=False), plugins_dir=plugins)
    await manager.start()
    try:
        await manager.call("bench", "push", [20, -1, ITEM])  # warm up: store opened, code paths compiled
        baseline_push_ms(folder, 20, -1)
        push, base, cas = [], [], []
        for r in range(rounds):
            base.append(baseline_push_ms(folder, n, r))
            push.append(await manager.call("bench", "push", [n, r, ITEM]))
            cas.append(await manager.call("bench", "cas", [n]))
    finally:
        await manager.close()
    return {"queue_push_ms": statistics.median(push), "queue_push_baseline_ms": statistics.median(base),
            "kv_cas_ms": statistics.median(cas)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def takeover_ms(folder: Path, repeats: int) -> float:
    import httpx

    plugins = folder / "takeover-plugins"
    (plugins / "ticker").mkdir(parents=True)
    (plugins / "ticker" / "plugin.json").write_text(json.dumps({"name": "ticker", "kernels": ["all"]}))
    (plugins / "ticker" / "kernel.js").write_text(TICKER)
    token = secrets.token_urlsafe(12)
    ports = [_free_port(), _free_port()]
    args = [f"--plugins={plugins}", f"--data={folder / 'takeover-data'}", f"--token={token}", "--no-reload",
            "--log-level=WARNING"]
    procs: dict[int, subprocess.Popen[bytes]] = {}
    log = (folder / "takeover.log").open("ab")

    def spawn(port: int) -> None:
        procs[port] = subprocess.Popen([sys.executable, "-m", "kplug_lab", "serve", *args, f"--port={port}"],
                                       stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    headers = {"Authorization": f"Token {token}"}
    request = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": []}

    def state(client: httpx.Client, port: int) -> str | None:
        try:
            return client.get(f"http://127.0.0.1:{port}/api/plugin/rpc/ticker", headers=headers,  # type: ignore[no-any-return]
                              timeout=2).json()["data"]["state"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def wait(client: httpx.Client, wanted: dict[int, str]) -> None:
        deadline = time.monotonic() + 60
        while any(state(client, p) != s for p, s in wanted.items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"hosts did not reach {wanted}; see {folder / 'takeover.log'}")
            time.sleep(0.02)

    samples = []
    try:
        with httpx.Client(trust_env=False) as client:
            spawn(ports[0])
            wait(client, {ports[0]: "running"})
            spawn(ports[1])
            owner, standby = ports
            for _ in range(repeats):
                wait(client, {owner: "running", standby: "inactive"})
                t0 = time.perf_counter()
                procs[owner].send_signal(signal.SIGKILL)
                while True:
                    try:
                        answer = client.post(f"http://127.0.0.1:{standby}/api/plugin/rpc/ticker", json=request,
                                             headers=headers, timeout=2).json()
                        if answer.get("result") == "pong":
                            break
                    except (httpx.HTTPError, ValueError):
                        pass
                    time.sleep(0.002)
                samples.append((time.perf_counter() - t0) * 1000.0)
                procs[owner].wait(10)
                spawn(owner)
                owner, standby = standby, owner
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        log.close()
    return statistics.median(samples)


TARGETS = [Target("queue_push_ratio", 1.5), Target("takeover_ms", 1000.0)]


def run(quick: bool) -> dict[str, float]:
    rounds, n, repeats = (3, 100, 3) if quick else (7, 300, 5)
    with tempfile.TemporaryDirectory(prefix="kplug-bench-durability-", dir=os.environ.get("KPLUG_BENCH_DIR")) as tmp:
        folder = Path(tmp)
        metrics: dict[str, float] = asyncio.run(in_plugin(folder, rounds, n))
        metrics["takeover_ms"] = takeover_ms(folder, repeats)
    metrics["queue_push_ratio"] = metrics["queue_push_ms"] / metrics["queue_push_baseline_ms"]
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = arg_parser(__doc__, quick="fewer rounds (a smoke run)").parse_args(argv)
    metrics = run(args.quick)
    print(target_table(metrics, TARGETS, notes={"queue_push_baseline_ms": "raw SQLite insert + commit"}))
    write_json(args.json, {"metrics": rounded(metrics), "targets": {t.metric: t.limit for t in TARGETS},
                           "passed": passed(metrics, TARGETS)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
