"""One host per workspace: an OS-level lock on the directories a host serves.

A host locks the directory it serves plugins from (the workspace, or the plain plugins folder) and its data
directory (where the durable store lives) with ``flock(2)`` on the directories themselves: nothing is written
into the user's tree, and the kernel releases the lock the moment the owning process dies, however it dies
(``SIGKILL`` included). A second host on the same place finds the lock taken and stands by, polling every
``poll_interval`` seconds; it takes over as soon as the lock is free.

Why not the ``filelock`` package: it locks a separate lock file, which would have to be created in the workspace (the
user's synced tree) or beside it; ``flock`` on the directory itself writes nothing there. ``fcntl`` makes this
module POSIX-only, like the host's threads and wake-ups.

The locks are taken all-or-none and never waited on while holding another, so two hosts can never deadlock
and never both hold one place. Who holds the lock is written to ``<data_dir>/host.json`` (a hint for humans
and for the standby's log; the lock itself is the truth).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["STANDBY_POLL_S", "HostLock"]

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
        taken: list[int] = []
        for directory in self.directories:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                for held in taken:
                    fcntl.flock(held, fcntl.LOCK_UN)
                    os.close(held)
                return False
            except BaseException:
                os.close(fd)
                raise
            taken.append(fd)
        self._fds = taken
        self._write_owner(info or {})
        return True

    def release(self) -> None:
        fds, self._fds = self._fds, []
        if fds and self.owner_file is not None:
            with contextlib.suppress(OSError):
                self.owner_file.unlink()
        for fd in fds:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

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
