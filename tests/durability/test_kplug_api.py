"""The ``kplug`` global inside real plugin VMs: queues, key-value state, schedules, and what survives a
restart of the host (a new PluginManager on the same folders)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from kplug_testing import write_plugin

from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager


class Hosts:
    """Start, stop and restart a host on the same plugin and data folders."""

    def __init__(self, tmp: Path) -> None:
        self.plugins = tmp / "plugins"
        self.data = tmp / "data"
        self.manager: PluginManager | None = None

    def plugin(self, code: str, name: str = "p") -> None:
        write_plugin(self.plugins, name, code)

    async def start(self) -> PluginManager:
        self.manager = PluginManager(HostConfig(data_dir=self.data, hot_reload=False), plugins_dir=self.plugins)
        await self.manager.start()
        return self.manager

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.close()
            self.manager = None

    async def call(self, method: str, *params: Any, name: str = "p") -> Any:
        assert self.manager is not None
        return await self.manager.call(name, method, list(params))

    async def until(self, method: str, predicate: Any, timeout: float = 10.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.call(method)
            if predicate(value):
                return value
            assert asyncio.get_running_loop().time() < deadline, f"timed out; last {method}: {value!r}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def hosts(tmp_path: Path) -> Any:
    h = Hosts(tmp_path)
    yield h
    await h.stop()


async def test_kplug_global_is_there_for_feature_detection(hosts: Hosts) -> None:
    hosts.plugin('siyuan.rpc.bind("detect", () => [typeof kplug, Object.keys(kplug).sort(), kplug.version]);')
    await hosts.start()
    assert await hosts.call("detect") == ["object", ["kv", "queue", "schedule", "version"], 1]


# ---- queues -----------------------------------------------------------------------------------------------

QUEUE_PLUGIN = """
const q = kplug.queue("jobs");
const seen = [];
let failures = {};
siyuan.rpc.bind("push", (item, key) => q.push(item, key === undefined ? undefined : {key}));
siyuan.rpc.bind("failTimes", (item, n) => { failures[item] = n; });
siyuan.rpc.bind("consume", (batch) => {
  q.consume(async (item, info) => {
    seen.push({item, attempts: Array.isArray(info) ? info.map((i) => i.attempts) : info.attempts});
    const items = Array.isArray(item) ? item : [item];
    for (const it of items) if (failures[it] > 0) { failures[it]--; throw new Error("endpoint down for " + it); }
    if (items.includes("hang")) await new Promise(() => {});
  }, batch ? {batch, retry: {initialMs: 20, maxMs: 40}} : {retry: {initialMs: 20, maxMs: 40}});
});
siyuan.rpc.bind("seen", () => seen);
siyuan.rpc.bind("size", () => q.size());
siyuan.rpc.bind("bad", async () => {
  const out = [];
  try { await q.push(undefined); } catch (e) { out.push(e.message); }
  try { kplug.queue(""); } catch (e) { out.push(e.message); }
  try { q.consume("nope"); } catch (e) { out.push(e.message); }
  try { await q.push({f: 1n}); } catch (e) { out.push(e.message); }
  return out;
});
"""


async def test_queue_delivers_in_order_removes_after_success_and_retries_failures(hosts: Hosts) -> None:
    hosts.plugin(QUEUE_PLUGIN)
    await hosts.start()
    await hosts.call("failTimes", "b", 2)
    for item in ("a", "b", "c"):
        assert (await hosts.call("push", item))["duplicate"] is False
    await hosts.call("consume")
    seen = await hosts.until("seen", lambda s: len(s) >= 5)
    # c waits behind b: in order, and b is retried (attempts counted) until its handler resolves
    assert seen == [{"item": "a", "attempts": 0}, {"item": "b", "attempts": 0}, {"item": "b", "attempts": 1},
                    {"item": "b", "attempts": 2}, {"item": "c", "attempts": 0}]
    await hosts.until("size", lambda n: n == 0)
    logs = [r.message for r in hosts.manager.logs("p", 0)]  # type: ignore[union-attr]
    assert any("endpoint down for b" in line and "retrying in" in line for line in logs)


async def test_queue_key_is_delivered_once_even_after_consumption(hosts: Hosts) -> None:
    hosts.plugin(QUEUE_PLUGIN)
    await hosts.start()
    first = await hosts.call("push", "x", "k1")
    assert first["duplicate"] is False and isinstance(first["id"], int)
    assert (await hosts.call("push", "x again", "k1")) == {"id": None, "duplicate": True}
    await hosts.call("consume")
    await hosts.until("size", lambda n: n == 0)
    assert (await hosts.call("push", "x later", "k1"))["duplicate"] is True
    await hosts.call("push", "y", "k2")
    seen = await hosts.until("seen", lambda s: len(s) >= 2)
    assert [s["item"] for s in seen] == ["x", "y"]


async def test_queue_batches(hosts: Hosts) -> None:
    hosts.plugin(QUEUE_PLUGIN)
    await hosts.start()
    for i in range(7):
        await hosts.call("push", f"i{i}")
    await hosts.call("consume", 3)
    seen = await hosts.until("seen", lambda s: sum(len(x["item"]) for x in s) >= 7)
    assert [x["item"] for x in seen] == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6"]]


async def test_pushed_items_survive_a_restart_and_unfinished_ones_are_redelivered(hosts: Hosts) -> None:
    hosts.plugin(QUEUE_PLUGIN)
    await hosts.start()
    for item in ("hang", "after"):
        await hosts.call("push", item)
    await hosts.call("consume")
    await hosts.until("seen", lambda s: len(s) == 1)  # "hang" is being handled and never finishes
    await hosts.stop()
    await hosts.start()
    assert await hosts.call("size") == 2  # not acknowledged: still there, in order
    assert await hosts.call("seen") == []


async def test_queue_bad_input_gets_clear_errors(hosts: Hosts) -> None:
    hosts.plugin(QUEUE_PLUGIN)
    await hosts.start()
    out = await hosts.call("bad")
    assert "push(item, {key}?): item is required" in out[0]
    assert "name must be a non-empty string" in out[1]
    assert "handler must be a function" in out[2]
    assert len(out) == 4


# ---- key-value --------------------------------------------------------------------------------------------

KV_PLUGIN = """
const changes = [];
kplug.kv.onChange((c) => changes.push([c.key, c.value, c.version, c.deleted]));
siyuan.rpc.bind("set", (k, v) => kplug.kv.set(k, v));
siyuan.rpc.bind("get", (k) => kplug.kv.get(k));
siyuan.rpc.bind("entry", (k) => kplug.kv.entry(k));
siyuan.rpc.bind("del", (k) => kplug.kv.delete(k));
siyuan.rpc.bind("list", (p) => kplug.kv.list(p));
siyuan.rpc.bind("cas", (k, v, x) => kplug.kv.cas(k, v, x));
siyuan.rpc.bind("commit", (c) => kplug.kv.commit(c));
siyuan.rpc.bind("changes", () => changes);
siyuan.rpc.bind("racingIncrements", async (n) => {
  // n transactions interleave on one key; each must see the others' results
  const inc = () => kplug.kv.transaction(async (tx) => {
    const v = (await tx.get("n")) || 0;
    tx.set("n", v + 1);
    return v;
  });
  const results = await Promise.all(Array.from({length: n}, inc));
  return [await kplug.kv.get("n"), results.map((r) => r.value).sort((a, b) => a - b)];
});
siyuan.rpc.bind("bad", async () => {
  const out = [];
  for (const f of [() => kplug.kv.set("", 1), () => kplug.kv.set("k", undefined), () => kplug.kv.cas("k", -1, 1),
                   () => kplug.kv.cas("k", 1.5, 1), () => kplug.kv.list(5)]) {
    try { await f(); out.push("no error"); } catch (e) { out.push(e.message); }
  }
  return out;
});
"""


async def test_kv_versions_cas_and_atomic_commit(hosts: Hosts) -> None:
    hosts.plugin(KV_PLUGIN)
    await hosts.start()
    v1 = await hosts.call("set", "a", {"x": 1})
    assert await hosts.call("entry", "a") == {"value": {"x": 1}, "version": v1}
    assert await hosts.call("cas", "a", v1 + 100, 2) == {"ok": False, "version": v1}
    ok = await hosts.call("cas", "a", v1, 2)
    assert ok["ok"] and ok["version"] > v1
    assert await hosts.call("cas", "new", 0, "created") == {"ok": True, "version": ok["version"] + 1}
    assert (await hosts.call("cas", "new", 0, "again"))["ok"] is False
    # a conflict on one key changes nothing at all
    r = await hosts.call("commit", {"check": {"a": ok["version"], "new": 1}, "set": {"a": 3, "b": 4}})
    assert r["ok"] is False and [c["key"] for c in r["conflicts"]] == ["new"]
    assert await hosts.call("get", "a") == 2 and await hosts.call("get", "b") is None
    r = await hosts.call("commit", {"check": {"a": ok["version"]}, "set": {"a": 3, "b": 4}, "delete": ["new"]})
    assert r["ok"] is True
    assert [(e["key"], e["value"]) for e in await hosts.call("list", "")] == [("a", 3), ("b", 4)]
    assert await hosts.call("del", "b") is True and await hosts.call("del", "b") is False
    # versions come from one clock: a key deleted and created again never gets an old version back
    recreated = await hosts.call("set", "b", 5)
    assert recreated > r["version"]


async def test_kv_change_notifications_follow_commit_order(hosts: Hosts) -> None:
    hosts.plugin(KV_PLUGIN)
    await hosts.start()
    await hosts.call("set", "a", 1)
    await hosts.call("commit", {"set": {"b": 2, "c": 3}})
    await hosts.call("del", "a")
    await hosts.call("cas", "b", 999, 0)  # a failed cas notifies nothing
    assert await hosts.call("changes") == [["a", 1, 1, False], ["b", 2, 2, False], ["c", 3, 2, False],
                                           ["a", None, 3, True]]


async def test_kv_transactions_retry_until_serialisable(hosts: Hosts) -> None:
    hosts.plugin(KV_PLUGIN)
    await hosts.start()
    total, seen_before = await hosts.call("racingIncrements", 12)
    assert total == 12
    assert seen_before == list(range(12))  # each increment saw a distinct predecessor: no lost update


async def test_kv_survives_restart_and_rejects_bad_input(hosts: Hosts) -> None:
    hosts.plugin(KV_PLUGIN)
    await hosts.start()
    version = await hosts.call("set", "k", ["persisted"])
    await hosts.stop()
    await hosts.start()
    assert await hosts.call("entry", "k") == {"value": ["persisted"], "version": version}
    out = await hosts.call("bad")
    assert "key must be a non-empty string" in out[0]
    assert "use kplug.kv.delete" in out[1]
    assert "expectedVersion must be an integer >= 0" in out[2] and "expectedVersion" in out[3]
    assert "prefix must be a string" in out[4]


# ---- schedules ---------------------------------------------------------------------------------------------

def schedule_plugin(every_ms: int, catch_up: str, handler_ms: int = 0) -> str:
    return f"""
let running = 0, maxRunning = 0;
const runs = [];
const tick = kplug.schedule("tick", {{every: {every_ms}, catchUp: "{catch_up}"}}, async ({{slot}}) => {{
  running++; maxRunning = Math.max(maxRunning, running);
  try {{
    if ({handler_ms}) await new Promise((r) => setTimeout(r, {handler_ms}));
    runs.push(slot);
    await kplug.kv.set("runs", ((await kplug.kv.get("runs")) || []).concat([slot]));
  }} finally {{ running--; }}
}});
tick.catch((e) => console.error("schedule failed: " + e.message));
// a graceful stop waits for a run in progress, so it is recorded and never repeated
siyuan.plugin.lifecycle.onunload = () => tick.then((handle) => handle.cancel());
siyuan.rpc.bind("runs", () => kplug.kv.get("runs").then((r) => r || []));
siyuan.rpc.bind("maxRunning", () => maxRunning);
siyuan.rpc.bind("bad", async () => {{
  const out = [];
  const options = [{{}}, {{every: 5}}, {{cron: "not cron"}}, {{every: 100, catchUp: "all"}},
                   {{every: 100, cron: "* * * * *"}}];
  for (const o of options) {{
    try {{ await kplug.schedule("x" + out.length, o, () => {{}}); out.push("no error"); }}
    catch (e) {{ out.push(e.message); }}
  }}
  return out;
}});
"""


@pytest.mark.parametrize("catch_up", ["once", "skip"])
async def test_schedule_restart_neither_repeats_nor_loses_a_slot(hosts: Hosts, catch_up: str) -> None:
    every = 0.3
    hosts.plugin(schedule_plugin(int(every * 1000), catch_up))
    await hosts.start()
    before = await hosts.until("runs", lambda r: len(r) >= 2)
    await hosts.stop()
    down_at = before[-1] / 1000.0
    await asyncio.sleep(3 * every)  # at least two slots pass while no host runs
    starting_at = time.time()
    await hosts.start()
    restarted_at = time.time()
    after = await hosts.until("runs", lambda r: len(r) >= len(before) + 2)
    assert after[:len(before)] == before
    assert len(set(after)) == len(after), f"a slot ran twice: {after}"
    assert after == sorted(after)
    steps = [(b - a) / 1000.0 for a, b in itertools.pairwise(after)]
    assert all(abs(s / every - round(s / every)) < 1e-6 and round(s / every) >= 1 for s in steps), steps
    first_new = after[len(before)] / 1000.0
    detail = f"runs {after}, down after {down_at}, restart {starting_at}..{restarted_at}"
    if catch_up == "once":
        # the latest missed slot runs once, right away (the ones before it are folded into it)
        assert starting_at - every < first_new <= restarted_at, detail
        assert round((first_new - down_at) / every) >= 2, detail
    else:
        # missed slots are dropped: the next run is the first slot after the restart
        assert first_new > starting_at, detail


@pytest.mark.parametrize("catch_up", ["once", "skip"])
async def test_slow_schedule_handler_never_runs_twice_at_once(hosts: Hosts, catch_up: str) -> None:
    hosts.plugin(schedule_plugin(50, catch_up, handler_ms=200))
    await hosts.start()
    runs = await hosts.until("runs", lambda r: len(r) >= 4)
    assert await hosts.call("maxRunning") == 1
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert all(g >= 200 for g in gaps), gaps  # slots that fell inside a run were folded or skipped


async def test_schedule_options_are_checked(hosts: Hosts) -> None:
    hosts.plugin(schedule_plugin(1000, "once"))
    await hosts.start()
    out = await hosts.call("bad")
    assert "exactly one of every" in out[0]
    assert "at least 10 ms" in out[1]
    assert "not a valid cron expression" in out[2]
    assert 'catchUp must be "skip" or "once"' in out[3]
    assert "exactly one of every" in out[4]


async def test_plugin_without_durable_use_does_not_open_the_store(hosts: Hosts) -> None:
    hosts.plugin('siyuan.rpc.bind("x", () => 1);')
    await hosts.start()
    assert await hosts.call("x") == 1
    assert not (hosts.data / "durable.sqlite3").exists()


async def test_stopping_a_consumer_waits_for_its_handler_and_ends_an_idle_wait(hosts: Hosts) -> None:
    hosts.plugin("""
const q = kplug.queue("q");
const events = [];
let release = null;
let stop = q.consume(async (item) => {
  events.push("start " + item);
  await new Promise((r) => { release = r; });
  events.push("end " + item);
});
siyuan.rpc.bind("push", (x) => q.push(x));
siyuan.rpc.bind("events", () => events);
siyuan.rpc.bind("stopWhileBusy", async () => {
  const stopped = stop().then(() => events.push("stopped"));
  setTimeout(() => release(), 50);
  await stopped;
  return [events.slice(), await q.size()];
});
siyuan.rpc.bind("stopIdle", async () => {
  const again = q.consume(async () => {});
  await again();
  return "stopped while waiting for work";
});
""")
    await hosts.start()
    await hosts.call("push", "a")
    await hosts.until("events", lambda e: e == ["start a"])
    assert await hosts.call("stopWhileBusy") == [["start a", "end a", "stopped"], 0]
    assert await hosts.call("stopIdle") == "stopped while waiting for work"


def test_a_slot_that_came_back_from_javascript_a_few_ulps_lower_is_not_run_again() -> None:
    from kplug_lab.durable.store import next_slot, parse_schedule

    spec = parse_schedule({"every": 300, "catchUp": "once"})
    anchor = 1796405192.9422678
    # a slot whose round trip through milliseconds (JS numbers) comes back lower, as one did in a failing run
    slot = next(anchor + k * 0.3 for k in range(3, 10_000) if (anchor + k * 0.3) * 1000.0 / 1000.0 < anchor + k * 0.3)
    returned = slot * 1000.0 / 1000.0
    assert returned < slot
    assert next_slot(spec, anchor, returned, slot + 0.1) > slot  # the next slot, not the one that just ran
