"""Group commit: writes from several threads at once share one transaction (one fsync), and each call still
returns its own result, or its own error with only its own changes undone, once the group is committed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kplug_lab.durable.store import DurableError, DurableStore


def _wait_pending(store: DurableStore, n: int) -> None:
    """Until ``n`` writes are queued behind the connection (a test hook: the queue is private)."""
    done = threading.Event()
    for _ in range(10_000):
        with store._pending_lock:
            if len(store._pending) >= n:
                done.set()
                break
        threading.Event().wait(0.001)  # polling interval of a wait for a condition
    assert done.is_set(), "the writers never queued"


def test_concurrent_writes_share_one_commit_and_each_gets_its_result(tmp_path: Path) -> None:
    store = DurableStore(tmp_path / "d.sqlite3")
    results: dict[int, Any] = {}
    errors: dict[int, BaseException] = {}

    def push(i: int) -> None:
        try:
            if i == 3:
                store.kv_commit(f"p{i}", check={"k": 7}, set={"k": i})  # a conflict: not an error
                results[i] = store.queue_push(f"p{i}", "q", {"i": i}, key="same")
            elif i == 5:
                store.queue_push(f"p{i}", "q", object())  # not JSON: refused before the transaction
            else:
                results[i] = store.queue_push(f"p{i}", "q", {"i": i})
        except BaseException as exc:
            errors[i] = exc

    before = store.commits
    with store._lock:  # hold the connection while 8 plugins' threads queue their writes
        threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        _wait_pending(store, 6)  # 0-2, 4, 6, 7 (3's conflict check also queues, 5 never does)
    for t in threads:
        t.join()
    assert set(results) == {0, 1, 2, 3, 4, 6, 7} and isinstance(errors.pop(5), DurableError) and not errors
    assert store.commits - before < 7  # some writes shared a commit
    for i in results:
        assert store.queue_take(f"p{i}", "q")["items"][0]["item"] == {"i": i}
    store.close()
    again = DurableStore(tmp_path / "d.sqlite3")  # all committed, all there after reopening
    assert sum(again.queue_size(f"p{i}", "q") for i in range(8)) == 7
    again.close()


def test_a_failing_write_in_a_group_is_undone_alone(tmp_path: Path) -> None:
    store = DurableStore(tmp_path / "d.sqlite3")
    outcome: dict[str, Any] = {}

    def good() -> None:
        outcome["good"] = store.kv_commit("a", set={"x": 1})

    def bad() -> None:
        def work(db: Any) -> None:
            db.execute("INSERT INTO kv (plugin, key, value, version) VALUES ('b', 'y', '2', 1)")
            raise RuntimeError("failed halfway")
        try:
            store._write(work)
        except RuntimeError as exc:
            outcome["bad"] = exc

    with store._lock:
        threads = [threading.Thread(target=f) for f in (good, bad)]
        for t in threads:
            t.start()
        _wait_pending(store, 2)
    for t in threads:
        t.join()
    assert outcome["good"]["ok"] and str(outcome["bad"]) == "failed halfway"
    assert store.kv_get("a", "x") == {"value": 1, "version": 1}
    assert store.kv_get("b", "y") is None
    assert store.commits == 1
    store.close()


def test_a_failed_commit_fails_every_write_of_the_group(tmp_path: Path) -> None:
    store = DurableStore(tmp_path / "d.sqlite3")
    store._db.execute("BEGIN")  # an open transaction: the group's BEGIN IMMEDIATE fails
    with pytest.raises(Exception, match="transaction"):
        store.queue_push("p", "q", 1)
    assert not store._db.in_transaction  # rolled back
    assert store.queue_size("p", "q") == 0
    assert store.queue_push("p", "q", 2)["id"] is not None
    store.close()
