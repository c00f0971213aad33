"""Test helpers: a real PluginManager on temporary plugin folders (no mocked VM anywhere)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tornado import httpserver, netutil, web

from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager

if TYPE_CHECKING:
    from kplug_lab.notebook._process import ServerProcess

REPO = Path(__file__).resolve().parent.parent

#: Debian's chromium (``make test`` installs it), driven by playwright in the browser tests
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"]

def require_chromium() -> None:
    """Call at the top of a browser test module: without the browser the module is skipped, or fails on CI
    (``CI=true``), where a missing browser is a broken setup, not a reason to skip."""
    if os.path.exists(CHROMIUM) and shutil.which(CHROMIUM):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)",
                    pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)", allow_module_level=True)



@contextlib.contextmanager
def captured_logs(*names: str) -> Iterator[list[logging.LogRecord]]:
    """Every record of the named loggers (and the root's), at any level, while the block runs: a handler on each
    logger itself, enabled for the block. A Jupyter test that ran first may have re-parented or disabled tornado's
    loggers (jupyter_server's logging setup), so caplog on the root alone would see nothing."""
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = _Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("", *names)]
    saved = [(logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:  # a dictConfig (traitlets' logging setup) may have disabled loggers that existed then
        logger.addHandler(keep)
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    try:
        yield records
    finally:
        for logger, (level, disabled) in zip(loggers, saved, strict=True):
            logger.removeHandler(keep)
            logger.setLevel(level)
            logger.disabled = disabled


def write_plugin(root: Path, name: str, code: str, manifest: dict[str, Any] | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    m = {"name": name, "version": "1.0.0", "kernels": ["all"]}
    m.update(manifest or {})
    (d / "plugin.json").write_text(json.dumps(m))
    (d / "kernel.js").write_text(textwrap.dedent(code))
    return d


def write_petals(workspace: Path, petals: list[dict[str, Any]]) -> Path:
    """SiYuan's enablement list (``data/storage/petal/petals.json``, tab-indented as SiYuan writes it): a
    fixture only; kplug_lab itself never writes this file."""
    path = workspace / "data" / "storage" / "petal" / "petals.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(petals, indent="\t"), encoding="utf-8")
    return path


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on right now (for a server the test starts, or a dead address)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def loopback_app(handlers: list[Any]) -> AsyncIterator[str]:
    """A tornado app with ``handlers`` on a free 127.0.0.1 port while the block runs; yields its http:// URL."""
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(web.Application(handlers))
    server.add_sockets(sockets)
    try:
        yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    finally:
        server.stop()
        await server.close_all_connections()


def run_benchmark(script: str, out: Path, *, timeout: float) -> tuple[str, dict[str, Any]]:
    """Run ``bench/<script> --quick --json <out>`` as ``make bench`` does; its printed table and its JSON."""
    proc = subprocess.run([sys.executable, f"bench/{script}", "--quick", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


@contextlib.contextmanager
def serve_examples(root: Path) -> Iterator[ServerProcess]:
    """A real ``kplug serve`` (child process) over a copy of the example plugins, its files under ``root``."""
    from kplug_lab.notebook._process import ServerProcess

    shutil.copytree(REPO / "plugins", root / "plugins")
    with ServerProcess(root / "plugins", data=root / "data") as proc:
        yield proc


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Host:
    """Builds plugin folders and a manager over them; closes everything at the end of the test."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "plugins"
        self.root.mkdir()
        self.data = tmp / "data"
        self.manager: PluginManager | None = None

    def plugin(self, name: str, code: str, manifest: dict[str, Any] | None = None) -> Path:
        return write_plugin(self.root, name, code, manifest)

    async def start(self, **config: Any) -> PluginManager:
        config.setdefault("hot_reload", False)
        config.setdefault("restart_initial", 0.1)
        self.manager = PluginManager(HostConfig(data_dir=self.data, **config), plugins_dir=self.root)
        await self.manager.start()
        return self.manager

    def state(self, name: str) -> PluginState | None:
        info = self.manager.get_plugin(name) if self.manager else None
        return info.state if info else None

    def logs(self, name: str) -> list[str]:
        assert self.manager is not None
        return [r.message for r in self.manager.logs(name, 0)]


