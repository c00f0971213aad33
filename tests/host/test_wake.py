"""The loop <-> actor wake-up path (kplug_lab/host/_wake.py), on the plain default path and on the opt-in fast path
(``follow_caller_cpu``: eventfd doorbells and the CPU pin): no job or result is ever lost, answers come in order,
CPU-bound plugins compute in parallel, and a process with more than 1,024 descriptors open still runs plugins."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import resource
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kplug_testing import Host

from kplug_lab.host.runtime import _wake
from kplug_lab.host.runtime.actor import Actor
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.config import HostConfig


@pytest.fixture(params=["event", "eventfd", "socketpair"])
def bell_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``event``: the plain bell (the default); ``eventfd``/``socketpair``: the fast path's doorbell."""
    if request.param == "socketpair":
        monkeypatch.delattr(os, "eventfd", raising=False)  # what a platform without eventfd gets
    elif request.param == "eventfd" and not hasattr(os, "eventfd"):
        pytest.skip("this platform has no eventfd")
    return str(request.param)


def make_bell(kind: str) -> _wake.Bell:
    return _wake.EventBell() if kind == "event" else _wake.Doorbell()


def test_doorbell_wakes_a_waiting_thread_and_times_out_when_not_rung(bell_kind: str) -> None:
    bell = make_bell(bell_kind)
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
        # whether the ring comes before or after the sleeper blocks, it must not be lost: no wait needed here
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
    inbox = _wake.Inbox(make_bell(bell_kind))
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
                time.sleep(0.0005)  # a deliberate pause, not synchronisation: the consumer runs dry and sleeps again

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    for i in range(per_producer):
        inbox.put_later(("loop", i), loop)
        if i % 50 == 0:
            await asyncio.sleep(0)  # yields one loop iteration (no duration): its deferred rings go out
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
    inbox = _wake.Inbox(make_bell(bell_kind))
    received = queue.SimpleQueue()  # type: ignore[var-annotated]

    def consume() -> None:
        while (job := inbox.get()) is not None:
            received.put(job)
            if job % 3:  # a deliberate pause, not synchronisation: still busy when the next job comes, or asleep
                time.sleep(0.00002 * (job % 3 - 1))

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        for i in range(3000):
            if i % 3 == 0:
                time.sleep(0.0001)  # a deliberate pause: sometimes the consumer is asleep already, sometimes not
            inbox.put(i)
            assert received.get(timeout=5) == i, f"job {i} was not taken within 5 s"
    finally:
        inbox.put(None)
        consumer.join(10)


SPIN = """
siyuan.rpc.bind("spin", (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} return ms; });
siyuan.rpc.bind("ping", () => "pong");
let n = 0;
siyuan.rpc.bind("next", (i) => [i, n++]);
"""


@pytest.fixture(params=[False, True], ids=["plain", "follow_caller_cpu"])
def follow_caller_cpu(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_the_fast_wakeups_are_opt_in() -> None:
    assert HostConfig().follow_caller_cpu is False
    assert Actor.__init__.__kwdefaults__["follow_caller_cpu"] is False


async def test_many_calls_from_the_loop_are_answered_in_order(follow_caller_cpu: bool) -> None:
    loop = asyncio.get_running_loop()
    actor = Actor("t", on_timer=lambda _id: None, loop=loop, follow_caller_cpu=follow_caller_cpu)
    ran: list[int] = []
    try:
        futures = [actor.run(lambda i=i: ran.append(i) or i + 1) for i in range(500)]  # type: ignore[misc]
        assert await asyncio.gather(*futures) == list(range(1, 501))
        assert ran == list(range(500)), "jobs ran out of order"
        for i in range(50):  # one at a time: the actor sleeps between calls, every wake-up must arrive
            assert await actor.run(lambda i=i: i * 2) == i * 2  # type: ignore[misc]
    finally:
        assert actor.stop()
    with pytest.raises(RuntimeError, match="has stopped"):
        await actor.run(lambda: 1)


async def test_an_actor_stuck_at_stop_still_answers_its_running_job(follow_caller_cpu: bool) -> None:
    loop = asyncio.get_running_loop()
    actor = Actor("t", on_timer=lambda _id: None, loop=loop, follow_caller_cpu=follow_caller_cpu)
    gate, started = threading.Event(), threading.Event()
    stuck = actor.run(lambda: started.set() or gate.wait(10))
    await loop.run_in_executor(None, started.wait, 10)
    assert not await loop.run_in_executor(None, actor.stop, 0.05)  # still in its job
    gate.set()
    assert await asyncio.wait_for(stuck, 10) is True  # the job that was running still got its answer
    await loop.run_in_executor(None, actor.thread.join, 10)
    assert not actor.thread.is_alive()


async def test_two_cpu_bound_plugins_compute_at_the_same_time(host: Host, follow_caller_cpu: bool) -> None:
    """Each call spins for 0.4 s of wall time inside JS; the two must overlap (each one's time window is taken
    inside the plugin, so this checks overlap, not speed: no timing threshold)."""
    overlap = """
    siyuan.rpc.bind("window", (ms) => { const start = Date.now(); const end = start + ms;
      while (Date.now() < end) {} return [start, Date.now()]; });
    """
    host.plugin("a", overlap)
    host.plugin("b", overlap)
    m = await host.start(follow_caller_cpu=follow_caller_cpu)
    for _ in range(3):  # the scheduler may start one a little late; any overlap at all in one of three rounds
        (a0, a1), (b0, b1) = await asyncio.gather(m.call("a", "window", [400]), m.call("b", "window", [400]))
        if max(a0, b0) < min(a1, b1):
            return
    raise AssertionError(f"the two plugins never ran at the same time: a {a0}-{a1}, b {b0}-{b1}")


async def test_calls_to_plugins_answer_correctly_and_in_order(host: Host, follow_caller_cpu: bool) -> None:
    host.plugin("busy", SPIN)
    host.plugin("quick", SPIN)
    m = await host.start(follow_caller_cpu=follow_caller_cpu)
    spin = asyncio.ensure_future(m.call("busy", "spin", [200]))
    answers = await asyncio.gather(*(m.call("quick", "next", [i]) for i in range(200)))
    assert answers == [[i, i] for i in range(200)], "calls to one plugin were answered out of order"
    for i in range(20):  # sequential calls: the plugin's thread goes idle between them
        assert await m.call("quick", "ping") == "pong", i
    assert await spin == 200


@contextlib.contextmanager
def descriptors_above_1024() -> Iterator[None]:
    """Open /dev/null until descriptor numbers pass 1,100 (raising the soft limit if needed; restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"the hard descriptor limit is {hard}: cannot open 1,100 descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    opened: list[int] = []
    try:
        while not opened or opened[-1] < 1100:
            opened.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in opened:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_plugins_start_answer_and_restart_with_1100_descriptors_open(host: Host,
                                                                         follow_caller_cpu: bool) -> None:
    """select() cannot watch a descriptor numbered 1,024 or more (issue 11, item 5): the plugin's thread used to
    die on its first wait. Every descriptor the host makes here is numbered above 1,100."""
    host.plugin("p", SPIN)
    with descriptors_above_1024():
        m = await host.start(follow_caller_cpu=follow_caller_cpu)
        assert host.state("p") == PluginState.RUNNING, m.get_plugin("p")
        for i in range(5):
            assert await m.call("p", "next", [i]) == [i, i]
        await m.reload("p")
        assert host.state("p") == PluginState.RUNNING, m.get_plugin("p")
        assert await m.call("p", "ping") == "pong"
        assert await m.call("p", "next", [0]) == [0, 0]  # a new VM: its counter starts again


def test_a_doorbell_with_a_high_descriptor_number_wakes_its_waiter() -> None:
    with descriptors_above_1024():
        bell = _wake.Doorbell()
        try:
            assert bell.fd > 1024
            bell.ring()
            t0 = time.monotonic()
            bell.wait(10)
            assert time.monotonic() - t0 < 5, "a rung doorbell did not wake its waiter"
        finally:
            bell.close()


needs_pin = pytest.mark.skipif(not _wake.CallerCPU.supported(),
                               reason="pinning needs Linux's sched_setaffinity and more than one CPU")


@needs_pin
async def test_pinning_that_is_refused_still_answers_every_call(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, cpus: Any) -> None:
        raise PermissionError("sched_setaffinity refused")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    host.plugin("p", SPIN)
    m = await host.start(follow_caller_cpu=True)
    for i in range(5):
        assert await m.call("p", "next", [i]) == [i, i]
