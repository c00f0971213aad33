"""The host operations behind the ``kplug`` global (``host/js/durable.js``): one plugin's view of the durable store.

Every op runs on the plugin's actor thread and returns once its transaction is committed; the JS Promise
settles in a later job, so "the Promise resolved" always means "it is on disk". The only op that waits is a
consumer asking an empty queue for work: it gets a future that the next ``push`` of that queue completes.
"""

from __future__ import annotations

import concurrent.futures
import math
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from ...durable.store import DurableStore, parse_schedule
from ...errors import DurableError, DurableOpError
from ..runtime.context import Capability, Op, PluginContext

__all__ = ["DurableOpError", "DurableOps"]

_T = TypeVar("_T")


class DurableOps(Capability):
    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self._waiters: dict[str, concurrent.futures.Future[Any]] = {}
        self._closed = False

    def async_ops(self) -> dict[str, Op]:
        return {
            "dq_push": self.queue_push,
            "dq_take": self.queue_take,
            "dq_ack": self.queue_ack,
            "dq_fail": self.queue_fail,
            "dq_size": self.queue_size,
            "dq_wake": self.queue_wake,
            "kv_get": self.kv_get,
            "kv_list": self.kv_list,
            "kv_commit": self.kv_commit,
            "sched_next": self.schedule_next,
            "sched_done": self.schedule_done,
        }

    @property
    def store(self) -> DurableStore:
        return self.ctx.durable

    def close_all(self) -> None:
        self._closed = True
        waiters, self._waiters = self._waiters, {}
        for fut in waiters.values():
            _wake(fut)

    def _run(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise DurableOpError(f"plugin [{self.ctx.name}] is stopping: the durable store is closed to it")
        try:
            return fn()
        except DurableError as exc:
            raise DurableOpError(str(exc)) from None
        except sqlite3.Error as exc:
            raise DurableOpError(f"the durable store failed: {exc}") from None

    # ---- queues -------------------------------------------------------------------------------------

    def queue_push(self, queue: str, item: Any, key: str | None = None) -> dict[str, Any]:
        result = self._run(lambda: self.store.queue_push(self.ctx.name, queue, item, key))
        waiter = self._waiters.pop(queue, None)
        if waiter is not None:
            _wake(waiter)
        return result

    def queue_take(self, queue: str, limit: int = 1) -> Any:
        result = self._run(lambda: self.store.queue_take(self.ctx.name, queue, limit))
        if not result.get("empty"):
            return result
        old = self._waiters.pop(queue, None)
        if old is not None:
            _wake(old)  # never cancel: a cancelled future would leave its Promise pending forever
        waiter: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._waiters[queue] = waiter
        return waiter

    def queue_wake(self, queue: str) -> None:
        """End a consumer's wait for work (it is stopping)."""
        waiter = self._waiters.pop(queue, None)
        if waiter is not None:
            _wake(waiter)

    def queue_ack(self, queue: str, ids: list[int]) -> int:
        return self._run(lambda: self.store.queue_ack(self.ctx.name, queue, list(ids)))

    def queue_fail(self, queue: str, ids: list[int], error: str, retry: dict[str, Any] | None = None) -> int:
        retry = retry or {}
        initial = _positive(retry.get("initialMs", 500), "retry.initialMs") / 1000.0
        maximum = _positive(retry.get("maxMs", 60000), "retry.maxMs") / 1000.0
        factor = _positive(retry.get("factor", 2), "retry.factor")
        delay = self._run(lambda: self.store.queue_fail(self.ctx.name, queue, list(ids), str(error),
                                                        initial=initial, factor=factor, maximum=maximum))
        return math.ceil(delay * 1000)

    def queue_size(self, queue: str) -> int:
        return self._run(lambda: self.store.queue_size(self.ctx.name, queue))

    # ---- key-value ----------------------------------------------------------------------------------

    def kv_get(self, key: str) -> dict[str, Any] | None:
        return self._run(lambda: self.store.kv_get(self.ctx.name, key))

    def kv_list(self, prefix: str = "") -> list[dict[str, Any]]:
        return self._run(lambda: self.store.kv_list(self.ctx.name, str(prefix or "")))

    def kv_commit(self, change: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(change, dict):
            raise DurableOpError("kplug.kv.commit expects {check?, set?, delete?}")
        check, sets, deletes = change.get("check") or {}, change.get("set") or {}, change.get("delete") or []
        if not isinstance(check, dict) or not isinstance(sets, dict) or not isinstance(deletes, list):
            raise DurableOpError("kplug.kv.commit: check and set must be objects, delete an array of keys")
        return self._run(lambda: self.store.kv_commit(self.ctx.name, check=check, set=sets,
                                                      delete=deletes))

    # ---- schedules ----------------------------------------------------------------------------------

    def schedule_next(self, name: str, spec: Any) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            parsed = parse_schedule(spec)
            slot = self.store.schedule_next(self.ctx.name, name, parsed)
            wait = max(0.0, slot - self.store.clock())
            return {"slot": slot * 1000.0, "waitMs": math.ceil(wait * 1000)}

        return self._run(run)

    def schedule_done(self, name: str, slot_ms: float) -> None:
        self._run(lambda: self.store.schedule_done(self.ctx.name, name, float(slot_ms) / 1000.0))


def _wake(waiter: concurrent.futures.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result({"wake": True})


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or math.isinf(value):
        raise DurableOpError(f"{what} must be a positive number, got {value!r}")
    return float(value)
