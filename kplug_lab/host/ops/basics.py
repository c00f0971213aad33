"""``console`` and ``crypto.getRandomValues``: a log line, and random bytes from the OS."""

from __future__ import annotations

import os

from ...errors import HostOpError
from ..runtime.context import Capability, Op
from .encoding import b64

__all__ = ["MAX_RANDOM", "Basics"]

#: most random bytes one call may ask for (``crypto.getRandomValues`` allows 65536)
MAX_RANDOM = 65536


class Basics(Capability):
    def sync_ops(self) -> dict[str, Op]:
        return {"log": self.log, "random_bytes": self.random_bytes}

    def log(self, level: str, text: str) -> int:
        """Log ``text``; returns the longest line the host keeps (bytes), so the JS side cuts longer text before
        it crosses the boundary again (console.js)."""
        self.ctx.log(str(level), str(text))
        return self.ctx.config.log_line_max

    def random_bytes(self, n: int) -> str:
        n = int(n)
        if n < 0 or n > MAX_RANDOM:
            raise HostOpError(f"random_bytes: {n} is out of range (0..{MAX_RANDOM})")
        return b64(os.urandom(n))
