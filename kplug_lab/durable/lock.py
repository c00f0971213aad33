"""One host per workspace: an OS-level lock on the directories a host serves.

A host locks the directory it serves plugins from (the workspace, or the plain plugins folder) and its data
directory (where the durable store lives) with ``flock(2)`` on the directories themselves: nothing is written
into the user's tree, and the kernel releases the lock the moment the owning process dies, however it dies
(``SIGKILL`` included). A second host on the same place finds the lock taken and stands by, polling every
``poll_interval`` seconds; it takes over as soon as the lock is free.

Why not the ``filelock`` package: it locks a separate lock file, which would have to be created in the workspace (the
user's synced tree) or beside it; ``flock`` on the directory itself writes nothing there.

Where there is no ``fcntl`` (Windows), a directory cannot be locked: the lock is then an exclusive byte-range lock
(``msvcrt.locking``) on ``host.lock`` beside the owner file, in kplug_lab's own folder (never the synced tree),
which the system also releases when the process dies. Since that folder is keyed by the workspace
(kplug_lab/durable/places.py), this is still one host per workspace unless two hosts are given different
``--data`` folders for one workspace. Without either module the lock degrades to this process only (a warning
says so) rather than refusing to start.

The locks are taken all-or-none and never waited on while holding another, so two hosts can never deadlock
and never both hold one place. Who holds the lock is written to ``<data_dir>/host.json`` (a hint for humans
and for the standby's log; the lock itself is the truth).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
if sys.platform == "win32":
    import msvcrt

__all__ = ["STANDBY_POLL_S", "HostLock"]

log = logging.getLogger("kplug_lab.durable")

#: how often a standby host tries the lock: the takeover delay after the owner dies is at most this
STANDBY_POLL_S = 0.05


class HostLock:
    """Exclusive, non-blocking ownership of a set of directories for the life of this process."""

    def __init__(self, directories: list[Path], *, owner_file: Path | None = None) -> None:
        seen: dict[str, Path] = {}
        for d in directories:
            seen.setdefault(str(Path(d).resolve()), Path(d).resolve())
        # a fixed order keeps the all-or-none attempt symmetric between hosts
        self.directories = [seen[k] for k in sorted(seen)]
        self.owner_file = owner_file
        self._fds: list[int] = []

    @property
    def held(self) -> bool:
        return bool(self._fds)

    def try_acquire(self, info: dict[str, Any] | None = None) -> bool:
        """Take every lock, or none. True when this process now owns all the directories."""
        if self._fds:
            return True
        taken = self._lock_directories() if fcntl is not None else self._lock_file()
        if not taken:
            return False
        self._fds = taken
        self._write_owner(info or {})
        return True

    def _lock_directories(self) -> list[int]:
        taken: list[int] = []
        for directory in self.directories:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._unlock(taken)
                return []
            except BaseException:
                os.close(fd)
                raise
            taken.append(fd)
        return taken

    def _lock_file(self) -> list[int]:
        """The portable path: one lock file in kplug_lab's own folder (the owner file's)."""
        folder = self.owner_file.parent if self.owner_file is not None else self.directories[-1]
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "host.lock", os.O_RDWR | os.O_CREAT, 0o600)
        if sys.platform == "win32":
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                os.close(fd)
                return []
            return [fd]
        log.warning("no fcntl and no msvcrt: %s is locked against this process only", folder)
        return [fd]

    @staticmethod
    def _unlock(fds: list[int]) -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                elif sys.platform == "win32":
                    os.lseek(fd, 0, os.SEEK_SET)
                    msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            with contextlib.suppress(OSError):
                os.close(fd)

    def release(self) -> None:
        fds, self._fds = self._fds, []
        if fds and self.owner_file is not None:
            with contextlib.suppress(OSError):
                self.owner_file.unlink()
        self._unlock(fds)

    def owner(self) -> dict[str, Any] | None:
        """What the current holder wrote about itself (pid, since, ...), if readable."""
        if self.owner_file is None:
            return None
        try:
            data = json.loads(self.owner_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def describe_owner(self) -> str:
        owner = self.owner()
        where = ", ".join(str(d) for d in self.directories)
        if not owner:
            return f"another host holds {where}"
        return f"host pid {owner.get('pid')} holds {where} since {owner.get('since_text', '?')}"

    def _write_owner(self, info: dict[str, Any]) -> None:
        if self.owner_file is None:
            return
        now = time.time()
        record = {"pid": os.getpid(), "since": now,
                  "since_text": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)), **info}
        tmp = self.owner_file.with_name(f".{self.owner_file.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, self.owner_file)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def __repr__(self) -> str:
        return f"HostLock({[str(d) for d in self.directories]!r}, held={self.held})"
