"""The loop <-> actor wake-up path (kplug_lab/host/_wake.py): no job or result is ever lost, and the CPU pin that
makes sequential calls cheap never holds on to a plugin that is doing real work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kplug_testing import Host, wait_for

from kplug_lab.host import _wake
from kplug_lab.host.actor import Actor
from kplug_lab.host.config import HostConfig


@pytest.fixture(params=["eventfd", "socketpair"])
def bell_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "socketpair":
        monkeypatch.delattr(os, "eventfd", raising=False)  # what a platform without eventfd gets
    elif not hasattr(os, "eventfd"):
        pytest.skip("this platform has no eventfd")
    return str(request.param)


def test_doorbell_wakes_a_waiting_thread_and_times_out_when_not_rung(bell_kind: str) -> None:
    bell = _wake.Doorbell()
    try:
        t0 = time.monotonic()
        bell.wait(0.05)  # nobody rings: returns after the timeout
        assert time.monotonic() - t0 >= 0.04
        woke = threading.Event()

        def sleeper() -> None:
            bell.wait(30)
            woke.set()

        thread = threading.Thread(target=sleeper)
        thread.start()
        time.sleep(0.05)
        bell.ring()
        assert woke.wait(10), "a rung doorbell did not wake its waiter"
        thread.join(10)
        for _ in range(5):  # rings pile up into one wake-up, and clearing drains them all
            bell.ring()
        bell.wait(0)
        t0 = time.monotonic()
        bell.wait(0.05)
        assert time.monotonic() - t0 >= 0.04, "a cleared doorbell still looked rung"
    finally:
        bell.close()
    bell.ring()  # harmless after close


def test_inbox_get_times_out_with_empty() -> None:
    inbox = _wake.Inbox()
    with pytest.raises(queue.Empty):
        inbox.get(0.01)
    with pytest.raises(queue.Empty):
        inbox.get_nowait()


async def test_inbox_loses_no_job_between_threads_and_the_loop(bell_kind: str) -> None:
    """Producers on other threads (put) and on the loop (put_later) race a consumer that keeps going to sleep."""
    loop = asyncio.get_running_loop()
    inbox = _wake.Inbox()
    per_producer, producers = 5000, 3
    total = per_producer * (producers + 1)
    got: list[Any] = []
    done = threading.Event()

    def consume() -> None:
        while len(got) < total:
            try:
                got.append(inbox.get(10))
            except queue.Empty:
                return  # a job stuck behind a sleeping consumer: the assertion below reports it
        done.set()

    def produce(p: int) -> None:
        for i in range(per_producer):
            inbox.put((p, i))
            if i % 97 == 0:
                time.sleep(0.0005)  # let the consumer run dry and sleep again

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    for i in range(per_producer):
        inbox.put_later(("loop", i), loop)
        if i % 50 == 0:
            await asyncio.sleep(0)  # the loop iterates: its deferred rings go out
    for thread in threads:
        thread.join(30)
    await loop.run_in_executor(None, done.wait, 30)
    consumer.join(10)
    assert len(got) == total, f"{total - len(got)} jobs were never received"
    for p in [*range(producers), "loop"]:
        assert [i for q, i in got if q == p] == list(range(per_producer)), f"producer {p}: lost or reordered"


def test_inbox_wakes_its_consumer_for_every_last_job(bell_kind: str) -> None:
    """Each job is the last one for a while: a wake-up lost in the race between the consumer going to sleep and a
    producer putting would leave that job waiting (here: a round that never completes)."""
    inbox = _wake.Inbox()
    received = queue.SimpleQueue()  # type: ignore[var-annotated]

    def consume() -> None:
        while (job := inbox.get()) is not None:
            received.put(job)
            if job % 3:  # still busy (without the GIL) when the next job comes, or already asleep: both, by turns
                time.sleep(0.00002 * (job % 3 - 1))

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        for i in range(3000):
            if i % 3 == 0:
                time.sleep(0.0001)  # sometimes the consumer is asleep already, sometimes on its way there
            inbox.put(i)
            assert received.get(timeout=5) == i, f"job {i} was not taken within 5 s"
    finally:
        inbox.put(None)
        consumer.join(10)


async def test_results_reach_the_loop_through_its_doorbell_and_stop_closes_it() -> None:
    loop = asyncio.get_running_loop()
    actor = Actor("t", on_timer=lambda _id: None, loop=loop)
    bell = actor._loop_bell
    assert bell is not None
    try:
        assert await asyncio.gather(*(actor.run(lambda i=i: i + 1) for i in range(100))) == list(range(1, 101))
    finally:
        assert actor.stop()
    assert actor._loop_bell is None and bell._closed
    with pytest.raises(RuntimeError, match="has stopped"):
        await actor.run(lambda: 1)


async def test_an_actor_stuck_at_stop_drops_its_doorbell_when_its_thread_ends() -> None:
    actor = Actor("t", on_timer=lambda _id: None, loop=asyncio.get_running_loop())
    gate = threading.Event()
    stuck = actor.run(lambda: gate.wait(10))
    await asyncio.sleep(0.01)
    assert not await asyncio.get_running_loop().run_in_executor(None, actor.stop, 0.05)  # still in its job
    bell = actor._loop_bell
    assert bell is not None and not bell._closed
    gate.set()
    await wait_for(lambda: actor._loop_bell is None, what="the doorbell to be dropped")
    assert bell._closed
    assert await stuck is True  # the job that was running still got its answer


needs_pin = pytest.mark.skipif(not _wake.CallerCPU.supported(),
                               reason="pinning needs Linux's sched_setaffinity and more than one CPU")


@contextlib.asynccontextmanager
async def sleeping_actor() -> AsyncIterator[Actor]:
    """An actor on this loop that has run a job and gone back to sleep (so the next call pins it)."""
    actor = Actor("t", on_timer=lambda _id: None, loop=asyncio.get_running_loop())
    try:
        await actor.run(lambda: None)
        await wait_for(lambda: actor._queue.waiting, what="the actor to sleep")
        yield actor
    finally:
        actor.stop()


def _thread_cpus(actor: Actor) -> set[int]:
    aff = actor._affinity
    assert aff is not None
    return os.sched_getaffinity(aff._tid)


@needs_pin
async def test_a_call_to_an_idle_actor_runs_on_the_callers_cpu() -> None:
    async with sleeping_actor() as actor:
        cpus = await actor.run(lambda: os.sched_getaffinity(0))
        assert actor._affinity is not None
        assert cpus == {actor._affinity.pinned}, "the woken actor was not pinned to its caller's CPU"
        assert len(os.sched_getaffinity(0)) > 1
        assert actor.stop()
        assert actor._affinity.pinned == -1


@needs_pin
async def test_a_stream_of_calls_unpins_the_actor() -> None:
    allowed = os.sched_getaffinity(0)
    gate = threading.Event()
    async with sleeping_actor() as actor:
        first = actor.run(lambda: gate.wait(10))  # pins, then holds the actor busy
        later = [actor.run(lambda: os.sched_getaffinity(0)) for _ in range(3)]
        await asyncio.sleep(3 * _wake.CallerCPU.BUSY_S)
        gate.set()
        await first
        # the actor never slept between the jobs: busy for longer than BUSY_S, so the next job runs unpinned
        assert (await asyncio.gather(*later))[-1] == allowed


@needs_pin
async def test_the_watchdog_unpins_a_long_job() -> None:
    loop = asyncio.get_running_loop()
    allowed = os.sched_getaffinity(0)
    gate = threading.Event()
    async with sleeping_actor() as actor:
        started = threading.Event()

        def long_job() -> set[int]:
            cpus = os.sched_getaffinity(0)
            started.set()
            gate.wait(10)
            return cpus

        job = actor.run(long_job)
        await loop.run_in_executor(None, started.wait, 10)
        await asyncio.sleep(2 * _wake.CallerCPU.BUSY_S)
        _wake.CallerCPU._release_busy()  # what each watchdog tick does (it may have done it already)
        assert _thread_cpus(actor) == allowed, "still pinned in the middle of a long job"
        gate.set()
        assert len(await job) == 1, "the job did not start pinned"


@needs_pin
async def test_a_plugin_computing_for_long_is_unpinned_by_the_watchdog(host: Host) -> None:
    """Through the real host: a JS method that spins for a second stops sharing the loop's CPU within
    milliseconds (the sandbox watchdog ticks every 10 ms while VMs live)."""
    host.plugin("busy", """
        siyuan.rpc.bind("spin", (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} return ms; });
        siyuan.rpc.bind("ping", () => "pong");
    """)
    m = await host.start()
    plugin = m.plugins["busy"]
    assert plugin.actor is not None
    actor = plugin.actor
    allowed = os.sched_getaffinity(0)
    assert await m.call("busy", "ping") == "pong"
    await wait_for(lambda: actor._queue.waiting, what="the plugin's thread to sleep")
    aff = actor._affinity
    assert aff is not None
    pins: list[int] = []
    follow = aff.follow

    def recording_follow() -> None:  # the pin lasts only milliseconds: record it rather than poll for it
        follow()
        pins.append(aff.pinned)

    aff.follow = recording_follow  # type: ignore[method-assign]
    call = asyncio.ensure_future(m.call("busy", "spin", [1000]))
    await wait_for(lambda: bool(pins), what="the call to reach the sleeping plugin")
    assert pins[0] >= 0, "the call did not pin the plugin's thread to the caller's CPU"
    await wait_for(lambda: _thread_cpus(actor) == allowed, timeout=0.5, what="the watchdog to unpin the busy plugin")
    assert not call.done(), "unpinned only after the call ended, not during it"
    assert await call == 1000


async def test_follow_caller_cpu_off_never_pins(host: Host) -> None:
    host.plugin("p", "siyuan.rpc.bind('ping', () => 'pong');")
    m = await host.start(follow_caller_cpu=False)
    for _ in range(3):
        assert await m.call("p", "ping") == "pong"
    actor = m.plugins["p"].actor
    assert actor is not None and actor._affinity is None
    assert HostConfig().follow_caller_cpu  # on by default


@needs_pin
async def test_pinning_that_is_refused_is_not_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    tries = 0

    def refuse(pid: int, cpus: Any) -> None:
        nonlocal tries
        tries += 1
        raise PermissionError("sched_setaffinity refused")

    async with sleeping_actor() as actor:
        monkeypatch.setattr(os, "sched_setaffinity", refuse)
        for _ in range(5):
            await wait_for(lambda: actor._queue.waiting, what="the actor to sleep")
            assert await actor.run(lambda: "answered") == "answered"
        monkeypatch.undo()
    assert tries <= 1
