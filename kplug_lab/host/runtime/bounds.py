"""Host memory a plugin can make the host hold, bounded in bytes (issue 11): its log lines, its retained log, and
bytes in flight between the plugin and a connection (pushes to a client, frames from the kernel).

A plugin's own memory is bounded by its VM; what it hands the host (a string it logs, an event it pushes to a slow
client) lives outside that limit. Each such path keeps a byte count and refuses, cuts or disconnects past it, so
one plugin cannot grow the process, whatever it does.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator

from .api import LogRecord

__all__ = ["MAX_FETCH_BODY", "MAX_PENDING_BYTES", "ByteBudget", "LogBuffer", "clip_text", "human_bytes",
           "utf8_size"]

#: the defaults of ``HostConfig.max_pending_bytes`` and ``HostConfig.max_fetch_body``
MAX_PENDING_BYTES = 16 * 1024 * 1024
MAX_FETCH_BODY = 32 * 1024 * 1024


def human_bytes(n: int) -> str:
    """``512 B``, ``3.5 KiB``, ``4.0 MiB``, ``1.2 GiB``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8, without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def clip_text(text: str, max_bytes: int) -> str:
    """``text`` if it fits in ``max_bytes`` bytes of UTF-8, else its start (cut on a character boundary) and a marker
    saying how much was cut: ``"… [truncated 4.0 MiB]"``."""
    if len(text) <= max_bytes // 4:  # cheap: no character takes more than four bytes
        return text
    size = utf8_size(text)
    if size <= max_bytes:
        return text
    if text.isascii():
        head = text[:max_bytes]
    else:
        head = text.encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore")
    return f"{head}… [truncated {human_bytes(size - utf8_size(head))}]"


class LogBuffer:
    """The log lines kept for a plugin: at most ``max_lines`` lines and ``max_bytes`` bytes of text, the oldest
    dropped first. Appended to on any thread, read on the loop: every access holds a lock."""

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lines: collections.deque[LogRecord] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def append(self, record: LogRecord) -> None:
        size = utf8_size(record.message)
        with self._lock:
            self._lines.append(record)
            self._bytes += size
            while self._lines and (len(self._lines) > self.max_lines or self._bytes > self.max_bytes):
                self._bytes -= utf8_size(self._lines.popleft().message)

    @property
    def size(self) -> int:
        """Bytes of text kept."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[LogRecord]:
        with self._lock:
            return iter(list(self._lines))

    def __getitem__(self, index: int) -> LogRecord:
        with self._lock:
            return self._lines[index]

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
            self._bytes = 0


class ByteBudget:
    """Bytes in flight on one path (taken when a message is queued, given back once it is delivered), at most
    ``limit``. :meth:`take` refuses what would go past the limit: the caller then cuts the path off."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit and self.used > 0:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used = max(0, self.used - n)
