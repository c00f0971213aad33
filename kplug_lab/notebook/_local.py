"""``%kplug connect --local``: a plugin host inside the notebook kernel, served on loopback.

The host (a :class:`~kplug_lab.host.runtime.manager.PluginManager` and the standalone tornado app) runs on a background
thread with its own asyncio loop, so it never touches ipykernel's loop, and the magics talk to it over the
same JSON-RPC routes as to a remote server: every magic behaves the same in both modes.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["LocalServer"]


class LocalServer:
    """A kplug_lab server on ``127.0.0.1`` (free port, random token, dev mode) in a background thread."""

    def __init__(self, plugins_dir: Path | None = None, data_dir: Path | None = None) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="kplug-local-")
        scratch = Path(self._scratch.name)
        self.plugins_dir = Path(plugins_dir) if plugins_dir else scratch / "plugins"
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir) if data_dir else scratch / "data"
        self.token = secrets.token_hex(16)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._manager: Any = None
        self._server: Any = None

    def start(self, timeout: float = 60.0) -> LocalServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="kplug-local-host", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError(f"the local kplug_lab host did not start within {timeout} s")
        if failure:
            raise failure[0]
        return self

    async def _start(self) -> None:
        from tornado import httpserver, netutil

        from ..host.runtime.config import HostConfig
        from ..host.runtime.manager import PluginManager
        from ..rpc.app import make_standalone_app

        self._manager = PluginManager(HostConfig(data_dir=self.data_dir, hot_reload=False),
                                      plugins_dir=self.plugins_dir)
        await self._manager.start()
        app = make_standalone_app(self._manager, self.token, dev_mode=True)
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        self._server = httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/"

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
        if self._manager is not None:
            await self._manager.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every plugin (running ``onunload``), the HTTP server and the thread; remove scratch folders."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._thread = None
        self._scratch.cleanup()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
