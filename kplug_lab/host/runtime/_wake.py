"""How the IO loop and a plugin's actor thread wake each other.

The default is the plain path: :class:`Inbox` sleeps on a :class:`threading.Event` (:class:`EventBell`) and the
actor wakes the loop with ``call_soon_threadsafe``. :class:`Inbox` rings only when its consumer sleeps, and
:meth:`Inbox.put_later` rings once per loop iteration, after everything read in that iteration was queued
(pipelined calls reach the actor in batches); both are plain ``threading``/``asyncio`` and cost nothing anywhere.

The opt-in fast path (``HostConfig.follow_caller_cpu``, docs/adr/0004-rpc-benchmark.md, fifth round and addendum)
was measured on the 2-vCPU virtual machines this project runs on, where waking a thread that sleeps on another,
idle CPU costs the waker ~30 us (an inter-processor interrupt under nested virtualization). It is off by default
because it serialises CPU-bound plugins onto the loop's CPU for a while (issue 11, item 7):

* :class:`Doorbell` rings from a system call made *without* the GIL (``os.eventfd_write``), so the woken thread
  can take the GIL at once instead of sleeping again until the ringer releases it.
* :class:`CallerCPU` wakes an idle actor on the caller's CPU, so a sequential call's two wake-ups are local
  context switches, and lets it go once the actor stays busy. The doorbells alone gained nothing; the pin alone
  made calls slower; only the pair is offered.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import os
import queue
import select
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ...sandbox._engine import get_watchdog

__all__ = ["Bell", "CallerCPU", "Doorbell", "EventBell", "Inbox"]


class Bell(Protocol):
    """What :class:`Inbox` sleeps on: ``ring`` from any thread wakes a ``wait``; rings pile up into one."""

    def ring(self) -> None: ...

    def wait(self, timeout: float | None) -> None: ...

    def close(self) -> None: ...


class EventBell:
    """The plain bell: a :class:`threading.Event`. No descriptor, nothing to close."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float | None) -> None:
        """Block until rung (or ``timeout`` seconds), then clear. A ring between the two is not lost for the
        :class:`Inbox`: its job was queued before the ring, and the consumer looks at the queue next."""
        self._event.wait(timeout)
        self._event.clear()

    def close(self) -> None:
        pass


class Doorbell:
    """Wakes a thread blocked in :meth:`wait`, or a loop reader on :attr:`fd`, from any thread (the fast path).

    An eventfd on Linux, a socket pair elsewhere. :meth:`ring` never blocks. :meth:`wait` polls the descriptor
    (``poll``, not ``select``, which fails once a descriptor number passes ``FD_SETSIZE``, 1024). The
    descriptors are closed by :meth:`close` (only once no thread can ring any more: a closed number may be
    reused) or when the doorbell is garbage.
    """

    def __init__(self) -> None:
        self._closed = False
        self._peer: socket.socket | None = None
        self._sock: socket.socket | None = None
        if hasattr(os, "eventfd"):
            self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._finalizer: weakref.finalize[Any, Any] = weakref.finalize(self, os.close, self.fd)
        else:
            self._sock, self._peer = socket.socketpair()
            self._sock.setblocking(False)
            self._peer.setblocking(False)
            self.fd = self._sock.fileno()
            self._finalizer = weakref.finalize(self, _close_all, (self._sock, self._peer))
        self._poll: Callable[[float | None], object]
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            self._poll = lambda timeout: poller.poll(None if timeout is None else timeout * 1000.0)
        else:  # Windows: no poll(), but its select() takes any socket (no FD_SETSIZE bit set)
            selector = selectors.DefaultSelector()
            selector.register(self.fd, selectors.EVENT_READ)
            self._poll = selector.select

    def ring(self) -> None:
        if self._closed:
            return
        try:
            if self._peer is None:
                os.eventfd_write(self.fd, 1)
            else:
                self._peer.send(b"\0")
        except OSError:  # already rung (full) or closed meanwhile: either way nothing is lost
            pass

    def clear(self) -> None:
        try:
            if self._sock is None:
                os.eventfd_read(self.fd)
            else:
                while self._sock.recv(4096):
                    pass
        except OSError:  # nothing to clear
            pass

    def wait(self, timeout: float | None) -> None:
        """Block until rung (or ``timeout`` seconds), then clear. The GIL is released while blocked."""
        self._poll(timeout)
        self.clear()

    def close(self) -> None:
        self._closed = True
        self._finalizer()


def _close_all(socks: tuple[socket.socket, socket.socket]) -> None:
    for sock in socks:
        sock.close()


class Inbox:
    """A job queue for one consumer thread (the actor): ``put`` from any thread, ``get`` on the consumer.

    ``bell`` is what the consumer sleeps on (default :class:`EventBell`; the fast path passes a :class:`Doorbell`).
    The bell is rung only while the consumer sleeps in :meth:`get`. The flags are read and written under the
    GIL without a lock: the producer appends before it reads ``_waiting``, the consumer sets ``_waiting`` before
    it looks at the jobs, so a job is never left behind a sleeping consumer (at worst it wakes once for nothing).
    """

    def __init__(self, bell: Bell | None = None) -> None:
        self._jobs: collections.deque[Any] = collections.deque()
        self._bell: Bell = bell if bell is not None else EventBell()
        self._waiting = False
        self._ring_due = False

    @property
    def waiting(self) -> bool:
        """The consumer sleeps (a stale answer costs speed only, never a job)."""
        return self._waiting

    def put(self, job: Any) -> None:
        self._jobs.append(job)
        if self._waiting:
            self._bell.ring()

    def put_later(self, job: Any, loop: asyncio.AbstractEventLoop) -> None:
        """:meth:`put` from ``loop``'s thread, ringing once at the end of the loop's current iteration: the
        consumer then finds every job queued in that iteration, instead of waking (and taking the GIL) per job."""
        self._jobs.append(job)
        if self._waiting and not self._ring_due:
            self._ring_due = True
            loop.call_soon(self._ring_now)

    def _ring_now(self) -> None:
        self._ring_due = False
        self._bell.ring()

    def get_nowait(self) -> Any:
        try:
            return self._jobs.popleft()
        except IndexError:
            raise queue.Empty from None

    def get(self, timeout: float | None = None) -> Any:
        """The next job, waiting up to ``timeout`` seconds (None: no limit); :class:`queue.Empty` if none came.
        A ring left over from jobs already taken wakes the wait early: it goes back to sleep."""
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = timeout
        while True:
            self._waiting = True
            try:
                if not self._jobs:
                    self._bell.wait(wait)
            finally:
                self._waiting = False
            try:
                return self._jobs.popleft()
            except IndexError:
                if deadline is not None:
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        raise queue.Empty from None


def _load_sched_getcpu() -> Callable[[], int] | None:
    try:
        fn = ctypes.PyDLL(None).sched_getcpu  # keeps the GIL: glibc reads it from the vDSO/rseq, no system call
    except (AttributeError, OSError, TypeError):  # not glibc (macOS has no sched_getcpu, Windows no dlopen(NULL))
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = []
    return fn  # type: ignore[no-any-return]


_sched_getcpu = _load_sched_getcpu()


class CallerCPU:
    """Pins an idle actor thread to the CPU of the thread that hands it a call, and unpins it once it stays busy.

    The scheduler wakes a sleeping thread on an idle CPU when there is one; for a short call that costs two
    cross-CPU wake-ups (above). Pinned to the caller's CPU, the actor runs there as soon as the caller sleeps.
    The pin is dropped when the actor has not slept for :attr:`BUSY_S`: checked before each of its jobs (a
    stream of calls) and at every tick of the sandbox watchdog (one long job), so a plugin that computes runs
    on its own CPU again within milliseconds. Linux only (``sched_setaffinity`` on a thread id).
    """

    BUSY_S = 0.002
    _live: weakref.WeakSet[CallerCPU] = weakref.WeakSet()
    _hooked = False
    _hook_lock = threading.Lock()

    @staticmethod
    def supported() -> bool:
        return (_sched_getcpu is not None and hasattr(os, "sched_setaffinity")
                and len(os.sched_getaffinity(0)) > 1)

    def __init__(self) -> None:
        self._tid = 0
        self._cpus: Iterable[int] = ()
        self._pinned = -1  # the CPU the thread is pinned to, or -1
        self._busy_since = 0.0
        self._off = False  # pinning failed once: not tried again

    @property
    def pinned(self) -> int:
        return self._pinned

    def start(self) -> None:
        """On the actor thread, before its first job."""
        self._cpus = os.sched_getaffinity(0)
        self._tid = threading.get_native_id()
        CallerCPU._live.add(self)
        with CallerCPU._hook_lock:
            if not CallerCPU._hooked:
                get_watchdog().on_tick(CallerCPU._release_busy)
                CallerCPU._hooked = True

    def follow(self) -> None:
        """On the caller's thread, just before it wakes the idle actor."""
        cpu = _sched_getcpu()  # type: ignore[misc]
        if cpu != self._pinned and cpu >= 0 and self._tid and not self._off:
            try:
                os.sched_setaffinity(self._tid, (cpu,))
            except OSError:  # not allowed here (a cpuset, a seccomp filter) or the thread ended: stop trying
                self._off = True
                return
            self._pinned = cpu

    def idle(self) -> None:
        """On the actor thread, before it sleeps."""
        self._busy_since = 0.0

    def busy(self) -> None:
        """On the actor thread, before each job."""
        if self._pinned < 0:
            return
        now = time.monotonic()
        if not self._busy_since:
            self._busy_since = now
        elif now - self._busy_since > self.BUSY_S:
            self.release()

    def release(self) -> None:
        if self._pinned >= 0:
            self._pinned = -1
            try:
                os.sched_setaffinity(self._tid, self._cpus)
            except OSError:  # the thread ended
                pass

    def stop(self) -> None:
        self.release()
        CallerCPU._live.discard(self)

    @staticmethod
    def _release_busy() -> None:
        """Watchdog tick: unpin every actor busy for longer than BUSY_S (one long job keeps the pin otherwise)."""
        now = time.monotonic()
        for aff in list(CallerCPU._live):
            since = aff._busy_since
            if aff._pinned >= 0 and since and now - since > CallerCPU.BUSY_S:
                aff.release()
