"""The plugin actor: one thread per plugin that owns its VM, runs queued jobs in order, and fires timers.

All JavaScript of a plugin runs on this thread. Other threads (the asyncio loop, I/O workers) only post
jobs; a busy or stuck plugin therefore delays nobody else. Async host operations finish elsewhere and post
the settlement back as a job, so Promise resolution always happens in a later job, as in SiYuan.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ...sandbox._engine import big_stack_thread
from ._wake import CallerCPU, Doorbell, Inbox

__all__ = ["Actor"]

log = logging.getLogger("kplug_lab.host")

T = TypeVar("T")
_STOP = object()


class Actor:
    """``loop`` is the asyncio loop :meth:`run` answers on (the host's); :meth:`submit` works without one.

    ``follow_caller_cpu`` turns on the opt-in fast wake-up path of ``_wake.py`` (eventfd doorbells both ways and
    the CPU pin); the default is the plain path (a ``threading.Event`` and ``call_soon_threadsafe``).
    """

    def __init__(self, name: str, on_timer: Callable[[int], None],
                 loop: asyncio.AbstractEventLoop | None = None, *, follow_caller_cpu: bool = False,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.name = name
        self._on_timer = on_timer
        self._on_error = on_error
        self._at_exit: list[Callable[[], Any]] = []
        self._exit_lock = threading.Lock()
        self._exited = False
        self._loop = loop
        fast = loop is not None and follow_caller_cpu
        self._queue = Inbox(Doorbell() if fast else None)
        # results bound for the loop: settled there in batches, one wake-up for all that are ready (see deliver)
        self._outbox: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = collections.deque()
        self._wake_pending = False
        self._deadlines = _Deadlines(loop) if loop is not None else None
        self._loop_bell: Doorbell | None = None
        if fast:
            self._loop_bell = Doorbell()
            try:
                loop.add_reader(self._loop_bell.fd, self._on_loop_bell)  # type: ignore[union-attr]
            except NotImplementedError:  # a loop without readers (Windows' proactor): call_soon_threadsafe
                self._loop_bell.close()
                self._loop_bell = None
        # pin an idle actor to its caller's CPU (see _wake.py); only with a loop: its thread is the caller
        self._affinity = CallerCPU() if fast and CallerCPU.supported() else None
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

    def run(self, fn: Callable[[], Any], timeout: float | None = None,
            errors: Callable[[BaseException], BaseException] | None = None) -> asyncio.Future[Any]:
        """Queue ``fn`` and return an asyncio future (of the actor's loop; call this on that loop) of its result.
        With ``timeout`` (seconds), the future fails with :class:`TimeoutError` if no result came by then.
        ``errors`` turns each failure (also that timeout, or the actor's stop) into what the future fails with, so
        a caller needs no second future to translate them (it may run on the actor thread).

        If ``fn`` returns a :class:`concurrent.futures.Future` that is not done yet (a call waiting for a JS
        Promise), the returned future takes that future's outcome when it settles, without another job.

        Cheaper than ``wrap_future(submit(fn))``: no thread-safe future, and results reach the loop through
        :meth:`deliver`, which wakes the loop once for every result ready at that moment (calls pipelined
        on a WebSocket are answered in batches).
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"plugin [{self.name}]: this actor has no event loop to answer on")
        fut: asyncio.Future[Any] = loop.create_future()
        if self._stopped.is_set():
            stopped = RuntimeError(f"plugin [{self.name}] has stopped")
            fut.set_exception(errors(stopped) if errors is not None else stopped)
        else:
            if self._affinity is not None and self._queue.waiting:
                self._affinity.follow()
            self._queue.put_later(_Run(self, fn, fut, errors), loop)
            if timeout is not None and self._deadlines is not None:
                self._deadlines.add(fut, timeout, errors)
        return fut

    def deliver(self, fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
        """Hand one outcome to the loop (any thread). The loop is woken only if no wake-up is pending: the
        outbox is appended to before the flag is read here, and the loop clears the flag before it drains, so
        no outcome is left behind."""
        self._outbox.append((fut, value, error))
        if not self._wake_pending:
            self._wake_pending = True
            if self._loop_bell is not None:
                self._loop_bell.ring()  # without the GIL: the loop can take it at once (see _wake.py)
                return
            try:
                self._loop.call_soon_threadsafe(self._settle_outbox)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                self._wake_pending = False

    def _on_loop_bell(self) -> None:
        self._loop_bell.clear()  # type: ignore[union-attr]
        self._settle_outbox()

    def _close_loop_bell(self) -> None:
        """On the loop, once the thread has ended: answer what it delivered last, then drop the doorbell (its
        reader first: a closed descriptor's number may be reused)."""
        bell, self._loop_bell = self._loop_bell, None
        if bell is not None:
            self._loop.remove_reader(bell.fd)  # type: ignore[union-attr]
            bell.close()
        self._settle_outbox()

    def _settle_outbox(self) -> None:
        self._wake_pending = False
        outbox = self._outbox
        while outbox:
            fut, value, error = outbox.popleft()
            if fut.done():  # cancelled by a timeout meanwhile
                continue
            if error is None:
                fut.set_result(value)
            else:
                fut.set_exception(error)

    # timers are only touched on the actor thread (the JS timer ops run there)
    def arm_timer(self, timer_id: int, delay_s: float) -> None:
        seq = next(self._seq)
        self._armed[timer_id] = seq
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay_s), seq, timer_id))
        self._drop_stale_timers()

    def clear_timer(self, timer_id: int) -> None:
        self._armed.pop(timer_id, None)
        self._drop_stale_timers()

    def _drop_stale_timers(self) -> None:
        # A cleared or re-armed timer leaves its old heap entry until that entry is due: a plugin that arms and
        # clears far-future timers in a loop would grow the heap (host memory, outside the sandbox's limit)
        # without bound. Rebuild it once stale entries outnumber live ones.
        if len(self._timers) > 2 * len(self._armed) + 1024:
            self._timers = [e for e in self._timers if self._armed.get(e[2]) == e[1]]
            heapq.heapify(self._timers)

    def pending_timers(self) -> int:
        return len(self._armed)

    def is_armed(self, timer_id: int) -> bool:
        return timer_id in self._armed

    def clear_all_timers(self) -> None:
        self._armed.clear()
        self._timers.clear()

    def at_exit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the actor thread once it leaves its loop (after the job it is in, even a stuck one that
        ends only at its CPU limit); at once, on this thread, if it has already left."""
        with self._exit_lock:
            if not self._exited:
                self._at_exit.append(fn)
                return
        self._safe(fn)

    def stop(self, wait: float | None = 5.0) -> bool:
        """Stop after the current job; queued jobs are dropped. True if the thread ended in time."""
        self._stopped.set()
        self._queue.put(_STOP)
        if self.on_thread():
            return True
        self._thread.join(wait)
        if self._thread.is_alive():
            return False
        if self._loop is not None and _running_loop() is self._loop:
            self._close_loop_bell()  # at once (the thread has also asked the loop to, on its way out)
        return True

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            with self._exit_lock:
                self._exited = True
                at_exit, self._at_exit = self._at_exit, []
            for fn in at_exit:
                self._safe(fn)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                self._serve_inbox()
                return
            except BaseException as exc:  # the thread outlives any failure of its inbox, and says so
                log.exception("plugin [%s]: the plugin's thread caught an error from its inbox", self.name)
                self._report(f"the plugin's thread caught an error from its inbox: {type(exc).__name__}: {exc}")
        self._drain()

    def _report(self, text: str) -> None:
        if self._on_error is not None:
            try:
                self._on_error(text)
            except Exception:
                log.exception("plugin [%s]: reporting an error failed", self.name)

    def _serve_inbox(self) -> None:
        inbox, affinity = self._queue, self._affinity
        if affinity is not None:
            affinity.start()
        while True:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                job = inbox.get_nowait()
            except queue.Empty:
                job = None
                if timeout is None or timeout > 0:
                    if affinity is not None:
                        affinity.idle()
                    try:
                        job = inbox.get(timeout)
                    except queue.Empty:
                        pass
            if affinity is not None:
                affinity.busy()
            if job is _STOP or self._stopped.is_set():
                self._abandon(job)
                break
            if job is not None:
                self._safe(job)
            self._fire_due()
        if affinity is not None:
            affinity.stop()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._abandon(self._queue.get_nowait())
            except queue.Empty:
                break
            except Exception:
                log.exception("plugin [%s]: draining the inbox failed", self.name)
                break
        if self._loop_bell is not None:  # everything is delivered: the loop may drop the doorbell
            try:
                self._loop.call_soon_threadsafe(self._close_loop_bell)  # type: ignore[union-attr]
            except RuntimeError:  # the loop is closed: nobody reads the doorbell any more
                pass

    def _abandon(self, job: Any) -> None:
        """Fail a call still queued when the actor stops, so its caller is answered, not left waiting."""
        if isinstance(job, _Run):
            job.fail(RuntimeError(f"plugin [{self.name}] has stopped"))

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


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Run:
    """A job of :meth:`Actor.run`: runs ``fn`` and delivers its outcome (or its pending future's) to ``fut``."""

    __slots__ = ("actor", "errors", "fn", "fut")

    def __init__(self, actor: Actor, fn: Callable[[], Any], fut: asyncio.Future[Any],
                 errors: Callable[[BaseException], BaseException] | None) -> None:
        self.actor = actor
        self.fn = fn
        self.fut = fut
        self.errors = errors

    def __call__(self) -> None:
        if self.fut.cancelled():  # the caller went away while the call was queued: it never enters JS (changes §3)
            return
        try:
            value = self.fn()
        except BaseException as exc:
            self.fail(exc)
            return
        if not isinstance(value, concurrent.futures.Future):
            self.actor.deliver(self.fut, value, None)
        elif value.done():
            self._forward(value)
        else:
            value.add_done_callback(self._forward)

    def _forward(self, done: concurrent.futures.Future[Any]) -> None:
        try:
            value = done.result()  # one lock round, where exception() then result() took two
        except BaseException as exc:
            self.fail(exc)
            return
        self.actor.deliver(self.fut, value, None)

    def fail(self, error: BaseException) -> None:
        self.actor.deliver(self.fut, None, self.errors(error) if self.errors is not None else error)


_Errors = Callable[[BaseException], BaseException] | None


class _Deadlines:
    """Time limits of the futures :meth:`Actor.run` returns, with one loop timer for all of them.

    A ``call_later`` per call (and its cancellation) was about a tenth of the loop thread's work under pipelined
    WebSocket load (docs/adr/0004-rpc-benchmark.md). Futures with the same timeout expire in the order they were
    added, so each timeout keeps a FIFO; the timer is armed for the earliest deadline. Settled futures are dropped
    from the front as new ones arrive, so the FIFOs hold about as many futures as there are calls in flight.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fifos: dict[float, collections.deque[tuple[float, asyncio.Future[Any], _Errors]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = float("inf")

    def add(self, fut: asyncio.Future[Any], timeout: float, errors: _Errors = None) -> None:
        due = self._loop.time() + timeout
        fifo = self._fifos.get(timeout)
        if fifo is None:
            fifo = self._fifos[timeout] = collections.deque()
        else:
            while fifo and fifo[0][1].done():
                fifo.popleft()
        fifo.append((due, fut, errors))
        if due < self._timer_due:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._expire)

    def _expire(self) -> None:
        self._timer, self._timer_due = None, float("inf")
        now = self._loop.time()
        earliest = float("inf")
        for timeout, fifo in list(self._fifos.items()):
            while fifo and (fifo[0][0] <= now or fifo[0][1].done()):
                _, fut, errors = fifo.popleft()
                if not fut.done():
                    fut.set_exception(errors(TimeoutError()) if errors is not None else TimeoutError())
            if fifo:
                earliest = min(earliest, fifo[0][0])
            else:
                del self._fifos[timeout]
        if earliest != float("inf"):
            self._arm(earliest)
