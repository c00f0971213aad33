"""Fault injection: `kplug serve` subprocesses are SIGKILLed at random points under load, and what the
endpoint received and what the store holds is compared with what clients were told succeeded."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Client, HostPair, copy_plugins
from kplug_testing import write_plugin

from kplug_lab.testing.endpoint import RecordingEndpoint
from kplug_lab.testing.fake_siyuan import FakeSiYuan

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

TICKER = """
// records, durably, the wall-clock span during which this plugin instance was alive
const instance = Math.random().toString(36).slice(2);
const first = Date.now();
let busy = false;
setInterval(async () => {
  if (busy) return;
  busy = true;
  try { await kplug.kv.set("alive/" + instance, {first, last: Date.now()}); } finally { busy = false; }
}, 5);
siyuan.rpc.bind("ping", () => instance);
siyuan.rpc.bind("spans", () => kplug.kv.list("alive/"));
"""


async def test_standby_takes_over_after_sigkill_and_never_runs_alongside(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "ticker", TICKER)
    pair = HostPair(tmp_path, plugins, probe="ticker")
    client = Client(pair, "ticker", websocket=False)
    try:
        await pair.start()
        # the standby answers -32002 (Plugin not running) and runs nothing
        client.port = pair.ports[1]
        with pytest.raises(Exception, match="-32002"):
            await client.call("ping")
        takeovers = []
        for _ in range(3):
            owner = await pair.owner()
            client.port = owner
            await client.call_until_answered("ping")
            await asyncio.sleep(0.2)
            killed_at = time.monotonic()
            _killed, new_owner = await pair.kill_owner_and_replace()
            client.port = new_owner
            while True:
                try:
                    await client.call("ping")
                    break
                except Exception:
                    await asyncio.sleep(0.005)
            takeovers.append(time.monotonic() - killed_at)
        # how fast is bench/durability.py's takeover_ms (a timing threshold here would fail on a loaded machine);
        # this bound only catches a standby that never takes over
        assert max(takeovers) < 30.0, takeovers
        # the newest instance records its span on its first tick, which may come just after it answered ping
        deadline = time.monotonic() + 10
        while True:
            spans = sorted((e["value"]["first"], e["value"]["last"])
                           for e in await client.call_until_answered("spans"))
            if len(spans) >= 4 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert len(spans) == 4
        for (_, last), (first, _) in itertools.pairwise(spans):
            assert first > last, f"two instances were alive at once: {spans}"
    finally:
        await client.close()
        await pair.close()


async def test_wakatime_heartbeats_reach_the_endpoint_exactly_once_across_20_sigkills(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    plugins = copy_plugins(tmp_path / "plugins", ["wakatime-like"])
    async with FakeSiYuan(tmp_path / "ws") as kernel, RecordingEndpoint() as endpoint:
        pair = HostPair(tmp_path, plugins, siyuan_url=kernel.url, siyuan_token=kernel.token, probe="wakatime-like")
        clients = [Client(pair, "wakatime-like", websocket=i % 2 == 1) for i in range(5)]
        acked: set[str] = set()
        try:
            await pair.start()
            await clients[0].call_until_answered("configure", {"endpoint": endpoint.url + "/api/v1/heartbeats"})

            async def send(client: Client, n: int, who: int) -> None:
                for i in range(n):
                    hb = {"id": f"c{who}-{i}", "entity": f"doc-{rng.randrange(30)}", "time": time.time()}
                    await client.call_until_answered("heartbeat", hb)
                    acked.add(hb["id"])

            load = asyncio.gather(*(send(c, 400, i) for i, c in enumerate(clients)))
            for threshold in sorted(rng.sample(range(40, 1960), 20)):
                while len(acked) < threshold and not load.done():
                    await asyncio.sleep(0.005)
                if rng.random() < 0.3:
                    endpoint.fail_next(rng.randrange(1, 4), status=rng.choice([500, 502, 503]))
                await asyncio.sleep(rng.uniform(0, 0.05))
                await pair.kill_owner_and_replace()
            await load
            assert pair.kills == 20
            assert len(acked) == 2000

            def delivered() -> collections.Counter[str]:
                return collections.Counter(hb["id"] for body in endpoint.json_bodies() for hb in body["heartbeats"])

            deadline = time.monotonic() + 60
            while not acked <= set(delivered()):
                assert time.monotonic() < deadline, f"{len(acked - set(delivered()))} acknowledged heartbeats " \
                                                    f"never reached the endpoint; {pair.tail_logs()}"
                await asyncio.sleep(0.1)
            owner = await pair.owner()
            reporter = Client(pair, "wakatime-like", websocket=False)
            reporter.port = owner
            assert await reporter.call_until_answered("pending") == 0
            counts = delivered()
            # exactly once by key: every acknowledged heartbeat arrived, nothing else did; a repeat of a batch
            # only happens when a host died between the service's answer and the removal from the queue
            assert set(counts) == acked
            repeats = sum(n - 1 for n in counts.values())
            assert repeats <= pair.kills * 50, repeats
            assert all(r.headers.get("Idempotency-Key") for r in endpoint.received)
            # endpoint failures were retried: what a failed request carried arrived later anyway
            failed = [r for r in endpoint.received if r.status >= 500]
            assert failed
            assert {hb["id"] for r in failed for hb in r.json()["heartbeats"]} <= set(counts)
        finally:
            for c in clients:
                await c.close()
            await pair.close()


async def test_shared_notes_compare_and_set_loses_nothing_and_applies_nothing_twice_across_sigkills(
        tmp_path: Path) -> None:
    rng = random.Random(7)
    plugins = copy_plugins(tmp_path / "plugins", ["shared-notes"])
    pair = HostPair(tmp_path, plugins, probe="shared-notes")
    clients = [Client(pair, "shared-notes", websocket=i % 3 == 0) for i in range(10)]
    notes = ["alpha", "beta", "gamma"]
    acked: list[dict[str, Any]] = []
    try:
        await pair.start()

        async def edit(client: Client, who: int, n: int) -> None:
            for i in range(n):
                note, token, op = rng.choice(notes), f"<{who}.{i}>", f"op-{who}-{i}"
                while True:
                    current = await client.call_until_answered("get", note)
                    answer = await client.call_until_answered(
                        "update", note, current["version"], (current["value"] or "") + token, op)
                    if answer["ok"]:
                        acked.append({"note": note, "token": token, "version": answer["version"]})
                        break

        load = asyncio.gather(*(edit(c, i, 100) for i, c in enumerate(clients)))
        for threshold in sorted(rng.sample(range(50, 950), 6)):
            while len(acked) < threshold and not load.done():
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0, 0.03))
            await pair.kill_owner_and_replace()
        await load
        assert len(acked) == 1000 and pair.kills == 6
        final = {n["id"]: n for n in await clients[0].call_until_answered("list")}
        for note in notes:
            ops = sorted((a for a in acked if a["note"] == note), key=lambda a: a["version"])
            assert len({a["version"] for a in ops}) == len(ops)
            # the final state is the serial replay of the acknowledged updates, in commit order
            assert final[note]["value"] == "".join(a["token"] for a in ops)
            assert final[note]["version"] == ops[-1]["version"]
    finally:
        for c in clients:
            await c.close()
        await pair.close()
