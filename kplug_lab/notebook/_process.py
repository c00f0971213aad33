"""``kplug serve`` in a child process, for test sessions and notebook runs that need a real server."""

from __future__ import annotations

import collections
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ServerProcess"]


class ServerProcess:
    """Starts ``kplug serve --plugins DIR --port 0`` on 127.0.0.1 and reads the URL it prints.

    ``output`` keeps every line the server printed (its log), for error messages.
    """

    def __init__(self, plugins: Path, *, data: Path | None = None, token: str | None = None, dev: bool = True,
                 extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        self.plugins = Path(plugins)
        self.data = data
        self.token = token or secrets.token_hex(16)
        self.dev = dev
        self.extra_args = list(extra_args)
        self.env = env
        self.url = ""
        self.output: collections.deque[str] = collections.deque(maxlen=2000)  # the server's latest lines
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self, timeout: float = 60.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "kplug_lab.server.cli", "serve", "--plugins", str(self.plugins),
               "--host", "127.0.0.1", "--port", "0", "--no-reload", *self.extra_args]
        if self.data is not None:
            cmd += ["--data", str(self.data)]
        if self.dev:
            cmd.append("--dev")
        # the token goes by environment, not argv, where every user of the machine could read it (ps)
        env = dict(os.environ if self.env is None else self.env, PYTHONUNBUFFERED="1", KPLUG_TOKEN=self.token)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        threading.Thread(target=self._pump, daemon=True, name="kplug-serve-output").start()
        while not self.url:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.stop()
                raise RuntimeError("kplug serve printed no URL within "
                                   f"{timeout} s:\n" + "\n".join(self.output)) from None
            if line is None:
                raise RuntimeError(f"kplug serve exited with {self._proc.wait()}:\n" + "\n".join(self.output))
            m = re.match(r"URL:\s+(\S+)", line)
            if m:
                self.url = m.group(1)
        return self

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the server runs every onunload), then SIGKILL if it does not exit in ``timeout`` s."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
