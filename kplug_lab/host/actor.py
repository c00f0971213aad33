"""The plugin actor: one thread per plugin that owns its VM, runs queued jobs in order, and fires timers.

All JavaScript of a plugin runs on this thread. Other threads (the asyncio loop, I/O workers) only post
jobs; a busy or stuck plugin therefore delays nobody else. Async host operations finish elsewhere and post
the settlement back as a job, so Promise resolution always happens in a later job, as in SiYuan.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..sandbox._engine import big_stack_thread

__all__ = ["Actor"]

log = logging.getLogger("kplug_lab.host")

T = TypeVar("T")
_STOP = object()


class Actor:
    def __init__(self, name: str, on_timer: Callable[[int], None]) -> None:
        self.name = name
        self._on_timer = on_timer
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, int]] = []  # (due, seq, timer id)
        self._armed: dict[int, int] = {}  # timer id -> seq of its live entry
        self._seq = itertools.count()
        self._stopped = threading.Event()
        self._thread = big_stack_thread(self._run, name=f"kplug-plugin-{name}")
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def post(self, job: Callable[[], Any]) -> None:
        """Queue ``job`` to run on the actor thread (no result)."""
        if not self._stopped.is_set():
            self._queue.put(job)

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Queue ``fn`` and return a future of its result."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        if self._stopped.is_set():
            fut.set_exception(RuntimeError(f"plugin [{self.name}] has stopped"))
        else:
            self._queue.put(job)
        return fut

    # timers are only touched on the actor thread (the JS timer ops run there)
    def arm_timer(self, timer_id: int, delay_s: float) -> None:
        seq = next(self._seq)
        self._armed[timer_id] = seq
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay_s), seq, timer_id))

    def clear_timer(self, timer_id: int) -> None:
        self._armed.pop(timer_id, None)

    def pending_timers(self) -> int:
        return len(self._armed)

    def clear_all_timers(self) -> None:
        self._armed.clear()
        self._timers.clear()

    def stop(self, wait: float | None = 5.0) -> bool:
        """Stop after the current job; queued jobs are dropped. True if the thread ended in time."""
        self._stopped.set()
        self._queue.put(_STOP)
        if self.on_thread():
            return True
        self._thread.join(wait)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                job = self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                job = None
            if job is _STOP or self._stopped.is_set():
                break
            if job is not None:
                self._safe(job)
            self._fire_due()

    def _fire_due(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now and not self._stopped.is_set():
            _, seq, timer_id = heapq.heappop(self._timers)
            if self._armed.get(timer_id) != seq:
                continue  # cleared or re-armed
            del self._armed[timer_id]
            self._safe(lambda tid=timer_id: self._on_timer(tid))  # type: ignore[misc]

    def _safe(self, job: Callable[[], Any]) -> None:
        try:
            job()
        except BaseException:
            log.exception("plugin [%s]: a job failed", self.name)
