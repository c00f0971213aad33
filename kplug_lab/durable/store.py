"""The durable store behind the ``kplug`` global: queues, key-value state and schedules of every plugin of a
host, in one SQLite database in the data directory.

Durability settings (see docs/guarantees.md): ``journal_mode=WAL`` and ``synchronous=FULL``. Every write
method below is one transaction; when it returns, the transaction is committed and the WAL fsynced, so it
survives a crash of the process (SIGKILL) and of the machine (power loss). NORMAL would survive a process
crash but could lose the last commits on power loss, which would break the promise made to a client.

All methods are thread-safe (one connection behind a lock: SQLite serialises writers anyway) and namespaced by
plugin name, so plugins never see each other's data. Writes from several threads at once (plugins) are committed
together, one fsync per group (group commit, ``DurableStore._write``); each call still returns only once its own
transaction is durable, and one call's failure rolls back only its own changes.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..errors import DurableError

__all__ = [
    "PRAGMAS",
    "DurableError",
    "DurableStore",
    "ScheduleSpec",
    "next_slot",
    "parse_schedule",
]

#: the connection settings; the benchmark's raw-SQLite baseline uses the same ones
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=10000")

MAX_VALUE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin TEXT NOT NULL,
    queue TEXT NOT NULL,
    item TEXT NOT NULL,
    key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_items_order ON queue_items (plugin, queue, id);
CREATE TABLE IF NOT EXISTS queue_keys (
    plugin TEXT NOT NULL,
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (plugin, queue, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv_clock (
    plugin TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
    plugin TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    anchor REAL NOT NULL,
    last_slot REAL,
    PRIMARY KEY (plugin, name)
) WITHOUT ROWID;
"""


def _check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise DurableError(f"{kind} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_CHARS:
        raise DurableError(f"{kind} is too long: {len(name)} characters, the limit is {MAX_NAME_CHARS}")
    return name


def _dump(what: str, value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DurableError(f"{what} cannot be stored as JSON: {exc}") from None
    if len(text) > MAX_VALUE_BYTES:
        raise DurableError(f"{what} is too large: {len(text)} bytes of JSON, the limit is {MAX_VALUE_BYTES}")
    return text


# ---- schedules ------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 0.001}
CATCH_UP = ("skip", "once")


@dataclass(frozen=True)
class ScheduleSpec:
    """``every`` seconds, or a cron expression (UTC); what to do with slots missed while down or busy."""

    every: float | None = None
    cron: str | None = None
    catch_up: str = "once"

    def text(self) -> str:
        return json.dumps({"every": self.every, "cron": self.cron}, sort_keys=True)


def parse_schedule(spec: Any) -> ScheduleSpec:
    """``{every: ms | "30s" | "5m", catchUp}`` or ``{cron: "*/5 * * * *", catchUp}``; clear errors otherwise."""
    if not isinstance(spec, dict):
        raise DurableError(f"schedule options must be an object like {{every: 60000}} or {{cron: '*/5 * * * *'}}, "
                           f"got {spec!r}")
    every, cron = spec.get("every"), spec.get("cron")
    catch_up = spec.get("catchUp", "once")
    if catch_up not in CATCH_UP:
        raise DurableError(f'schedule catchUp must be "skip" or "once", got {catch_up!r}')
    if (every is None) == (cron is None):
        raise DurableError("schedule options need exactly one of every (milliseconds or '30s', '5m', ...) and cron")
    if cron is not None:
        from croniter import croniter

        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise DurableError(f"schedule cron {cron!r} is not a valid cron expression (e.g. '*/5 * * * *')")
        return ScheduleSpec(cron=cron, catch_up=catch_up)
    if isinstance(every, bool):
        seconds = math.nan
    elif isinstance(every, int | float):
        seconds = float(every) / 1000.0
    elif isinstance(every, str) and (m := _DURATION.match(every)):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    else:
        seconds = math.nan
    if not seconds >= 0.01 or math.isinf(seconds):
        raise DurableError(f"schedule every {every!r} must be at least 10 ms (a number of ms, or '30s', '5m', ...)")
    return ScheduleSpec(every=seconds, catch_up=catch_up)


def _slots_after(spec: ScheduleSpec, anchor: float, after: float) -> float:
    """The first slot strictly later than ``after``."""
    if spec.every is not None:
        k = math.floor((after - anchor) / spec.every) + 1
        return anchor + max(1, k) * spec.every
    from croniter import croniter

    return float(croniter(spec.cron, datetime.fromtimestamp(after, UTC)).get_next(float))


def _latest_slot(spec: ScheduleSpec, anchor: float, now: float) -> float | None:
    """The latest slot at or before ``now`` (slots start after ``anchor``), or None."""
    if spec.every is not None:
        k = math.floor((now - anchor) / spec.every)
        return anchor + k * spec.every if k >= 1 else None
    from croniter import croniter

    nxt = float(croniter(spec.cron, datetime.fromtimestamp(now, UTC)).get_next(float))
    prev = float(croniter(spec.cron, datetime.fromtimestamp(nxt, UTC)).get_prev(float))
    return prev if anchor < prev <= now else None


_SLOT_TOLERANCE_S = 1e-6


def next_slot(spec: ScheduleSpec, anchor: float, last_slot: float | None, now: float) -> float:
    """The slot to run next. Slots after ``last_slot`` (the last completed one) that are already due were
    missed (the host was down, or the previous run overran): ``once`` runs the latest of them now, ``skip``
    drops them. Otherwise the next slot in the future."""
    # a slot crosses to JavaScript as milliseconds and back, which may round it down by a few ulps: within a
    # microsecond of the last completed slot is that slot (else a catch-up would run it again and again)
    done = (anchor if last_slot is None else max(anchor, last_slot)) + _SLOT_TOLERANCE_S
    latest = _latest_slot(spec, anchor, now)
    if latest is not None and latest > done and spec.catch_up == "once":
        return latest
    return _slots_after(spec, anchor, max(now, done))


# ---- the store ------------------------------------------------------------------------------------------


_T = TypeVar("_T")


class _Work:
    """One write call waiting for the group commit that makes it durable."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class DurableStore:
    """Queues, key-value state and schedule progress, per plugin, in one SQLite file."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time,
                 busy_timeout: float = 10.0) -> None:
        """``busy_timeout``: seconds an operation waits for the database's write lock (held by another connection
        or another thread of this host) before it fails with "the durable store is busy"."""
        self.path = Path(path)
        self.clock = clock
        self.busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Work] = []
        #: transactions committed (each one fsync); with concurrent writers, fewer than the write calls
        self.commits = 0
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                   timeout=busy_timeout)
        for pragma in PRAGMAS:
            self._db.execute(pragma)
        self._db.execute(f"PRAGMA busy_timeout={max(0, int(busy_timeout * 1000))}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _busy(self) -> DurableError:
        return DurableError(f"the durable store is busy (locked by another connection) for {self.busy_timeout:g} s: "
                            f"{self.path}; try again later")

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` as one transaction and return its result once that transaction is durable.

        Group commit: a writer queues its work, then takes the connection. Whoever holds it commits every work
        queued by then (each inside its own savepoint, so one that raises is rolled back alone) in one SQLite
        transaction, hence one fsync of the WAL; a writer whose work another has committed meanwhile just
        returns. No writer returns before the COMMIT that holds its work has returned (``synchronous=FULL``:
        fsynced), so the guarantee is that of one transaction per call; concurrent writers (many plugins) share
        the fsyncs instead of queueing for one each.
        """
        entry = _Work(work)
        with self._pending_lock:
            self._pending.append(entry)
        # another thread of this host committing (or waiting for SQLite's lock) holds the connection: wait at
        # most busy_timeout for it too
        if not self._lock.acquire(timeout=self.busy_timeout):
            with self._pending_lock:
                if not entry.done and entry in self._pending:
                    self._pending.remove(entry)
                    raise self._busy()
            self._lock.acquire()  # taken into a batch meanwhile: its COMMIT is under way, wait for it
        try:
            if not entry.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._commit(batch)
        finally:
            self._lock.release()
        if entry.error is not None:
            raise entry.error
        return entry.result  # type: ignore[no-any-return]

    def _commit(self, batch: list[_Work]) -> None:
        db = self._db
        self.commits += 1
        try:
            db.execute("BEGIN IMMEDIATE")
            for item in batch:
                db.execute("SAVEPOINT work")
                try:
                    item.result = item.work(db)
                except BaseException as exc:  # the work's own failure: undo it alone
                    db.execute("ROLLBACK TO work")
                    item.error = exc
                db.execute("RELEASE work")
            db.execute("COMMIT")
        except BaseException as exc:  # BEGIN or COMMIT failed: nothing of the batch is durable
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
                exc = self._busy()
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            for item in batch:
                item.error, item.result = exc, None
        finally:
            for item in batch:
                item.done = True

    # ---- queues -----------------------------------------------------------------------------------------

    def queue_push(self, plugin: str, queue: str, item: Any, key: str | None = None) -> dict[str, Any]:
        """Append ``item``; durable on return. With ``key``: a key seen before in this queue (even if its item
        was consumed long ago) is not enqueued again, and ``duplicate`` is true."""
        _check_name("queue name", queue)
        text = _dump("queue item", item)
        if key is not None:
            _check_name("queue key", key)

        def work(db: sqlite3.Connection) -> Any:
            if key is not None:
                cur = db.execute("INSERT OR IGNORE INTO queue_keys (plugin, queue, key) VALUES (?, ?, ?)",
                                 (plugin, queue, key))
                if cur.rowcount == 0:
                    return {"id": None, "duplicate": True}
            cur = db.execute("INSERT INTO queue_items (plugin, queue, item, key, created) VALUES (?, ?, ?, ?, ?)",
                             (plugin, queue, text, key, self.clock()))
            return {"id": cur.lastrowid, "duplicate": False}
        return self._write(work)  # type: ignore[no-any-return]

    def queue_take(self, plugin: str, queue: str, limit: int = 1) -> dict[str, Any]:
        """The oldest items, in order, without removing them: ``{"items": [...]}``; ``{"waitMs": n}`` when the
        head is backing off after a failure; ``{"empty": true}`` when there is nothing."""
        limit = max(1, min(int(limit), 1000))
        with self._lock:
            rows = self._db.execute(
                "SELECT id, item, key, attempts, not_before FROM queue_items WHERE plugin = ? AND queue = ? "
                "ORDER BY id LIMIT ?", (plugin, queue, limit)).fetchall()
        if not rows:
            return {"empty": True}
        now = self.clock()
        if rows[0][4] > now:
            return {"waitMs": math.ceil((rows[0][4] - now) * 1000)}
        items = []
        for id_, item, key, attempts, not_before in rows:
            if not_before > now:
                break
            items.append({"id": id_, "item": json.loads(item), "key": key, "attempts": attempts})
        return {"items": items}

    def queue_ack(self, plugin: str, queue: str, ids: list[int]) -> int:
        """Remove handled items; returns how many were removed."""

        def work(db: sqlite3.Connection) -> Any:
            n = 0
            for id_ in ids:
                n += db.execute("DELETE FROM queue_items WHERE plugin = ? AND queue = ? AND id = ?",
                                (plugin, queue, int(id_))).rowcount
            return n
        return self._write(work)  # type: ignore[no-any-return]

    def queue_fail(self, plugin: str, queue: str, ids: list[int], error: str, *, initial: float = 0.5,
                   factor: float = 2.0, maximum: float = 60.0) -> float:
        """Record a failed attempt; the items are retried after an exponential backoff (returned, seconds)."""

        def work(db: sqlite3.Connection) -> Any:
            delay = 0.0
            for id_ in ids:
                row = db.execute("SELECT attempts FROM queue_items WHERE plugin = ? AND queue = ? AND id = ?",
                                 (plugin, queue, int(id_))).fetchone()
                if row is None:
                    continue
                attempts = row[0] + 1
                delay = min(maximum, initial * factor ** (attempts - 1))
                db.execute("UPDATE queue_items SET attempts = ?, not_before = ?, last_error = ? WHERE id = ?",
                           (attempts, self.clock() + delay, str(error)[:2000], int(id_)))
            return delay

        return self._write(work)  # type: ignore[no-any-return]

    def queue_size(self, plugin: str, queue: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM queue_items WHERE plugin = ? AND queue = ?",
                                   (plugin, queue)).fetchone()
        return int(row[0])

    # ---- key-value --------------------------------------------------------------------------------------

    def kv_get(self, plugin: str, key: str) -> dict[str, Any] | None:
        """``{"value", "version"}`` or None. Versions come from one per-plugin clock, so a version is never
        reused, even after a delete."""
        _check_name("key", key)
        with self._lock:
            row = self._db.execute("SELECT value, version FROM kv WHERE plugin = ? AND key = ?",
                                   (plugin, key)).fetchone()
        return None if row is None else {"value": json.loads(row[0]), "version": row[1]}

    def kv_list(self, plugin: str, prefix: str = "") -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value, version FROM kv WHERE plugin = ? AND substr(key, 1, ?) = ? ORDER BY key",
                (plugin, len(prefix), prefix)).fetchall()
        return [{"key": k, "value": json.loads(v), "version": ver} for k, v, ver in rows]

    def kv_commit(self, plugin: str, *, check: dict[str, int] | None = None, set: dict[str, Any] | None = None,
                  delete: list[str] | None = None) -> dict[str, Any]:
        """One atomic change: when every key in ``check`` is at the expected version (0 means absent), apply
        ``set`` and ``delete``, all with one new version. Otherwise change nothing and report the conflicts.

        Returns ``{"ok": True, "version": v, "changes": [...]}`` or ``{"ok": False, "conflicts": [...]}``;
        each change is ``{"key", "value", "version", "deleted"}`` (only keys that really changed)."""
        check = check or {}
        sets = {_check_name("key", k): _dump(f"value of {k!r}", v) for k, v in (set or {}).items()}
        deletes = [_check_name("key", k) for k in (delete or [])]
        for k, v in check.items():
            _check_name("key", k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise DurableError(f"expected version of {k!r} must be an integer >= 0 (0: absent), got {v!r}")

        def work(db: sqlite3.Connection) -> Any:
            conflicts = []
            for k, expected in check.items():
                row = db.execute("SELECT version FROM kv WHERE plugin = ? AND key = ?", (plugin, k)).fetchone()
                current = row[0] if row else 0
                if current != expected:
                    conflicts.append({"key": k, "expected": expected, "version": current})
            if conflicts:
                return {"ok": False, "conflicts": conflicts}
            row = db.execute("SELECT version FROM kv_clock WHERE plugin = ?", (plugin,)).fetchone()
            version = (row[0] if row else 0) + 1
            db.execute("INSERT INTO kv_clock (plugin, version) VALUES (?, ?) "
                       "ON CONFLICT (plugin) DO UPDATE SET version = excluded.version", (plugin, version))
            changes = []
            for k, text in sets.items():
                db.execute("INSERT INTO kv (plugin, key, value, version) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, "
                           "version = excluded.version", (plugin, k, text, version))
                changes.append({"key": k, "value": json.loads(text), "version": version, "deleted": False})
            for k in deletes:
                if k in sets:
                    continue
                if db.execute("DELETE FROM kv WHERE plugin = ? AND key = ?", (plugin, k)).rowcount:
                    changes.append({"key": k, "value": None, "version": version, "deleted": True})
            return {"ok": True, "version": version, "changes": changes}
        return self._write(work)  # type: ignore[no-any-return]

    # ---- schedules --------------------------------------------------------------------------------------

    def schedule_next(self, plugin: str, name: str, spec: ScheduleSpec) -> float:
        """Register (or re-register) schedule ``name`` and return the epoch second of the slot to run next.
        A schedule whose timing changed starts afresh from now."""
        _check_name("schedule name", name)
        now = self.clock()

        def work(db: sqlite3.Connection) -> Any:
            row = db.execute("SELECT spec, anchor, last_slot FROM schedules WHERE plugin = ? AND name = ?",
                             (plugin, name)).fetchone()
            if row is None or row[0] != spec.text():
                anchor, last = now, None
                db.execute("INSERT OR REPLACE INTO schedules (plugin, name, spec, anchor, last_slot) "
                           "VALUES (?, ?, ?, ?, NULL)", (plugin, name, spec.text(), anchor))
            else:
                anchor, last = row[1], row[2]
            return anchor, last

        anchor, last = self._write(work)
        return next_slot(spec, anchor, last, now)

    def schedule_done(self, plugin: str, name: str, slot: float) -> None:
        """Persist that ``slot`` ran to completion: it is never run again, nor any slot before it."""

        def work(db: sqlite3.Connection) -> Any:
            db.execute("UPDATE schedules SET last_slot = MAX(COALESCE(last_slot, 0), ?) WHERE plugin = ? AND name = ?",
                       (float(slot), plugin, name))
        self._write(work)

    def schedule_state(self, plugin: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT spec, anchor, last_slot FROM schedules WHERE plugin = ? AND name = ?",
                                   (plugin, name)).fetchone()
        return None if row is None else {"spec": json.loads(row[0]), "anchor": row[1], "lastSlot": row[2]}
