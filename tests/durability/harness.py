"""Fault-injection harness: ``kplug serve`` subprocesses on one plugins folder (an owner and a hot standby),
SIGKILL at chosen points, and RPC clients (HTTP and WebSocket) that follow whichever host owns the folder.

Only loopback addresses are used; every process started here is killed by ``HostPair.close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import websockets
from kplug_testing import free_port

REPO = Path(__file__).resolve().parents[2]


def copy_plugins(dest: Path, names: Iterable[str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copytree(REPO / "plugins" / name, dest / name)
    return dest


class HostProcess:
    """One ``kplug serve`` process."""

    def __init__(self, args: list[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "kplug_lab", "serve", *args, "--port", str(port)],
                                     stdout=self._log_file, stderr=subprocess.STDOUT, cwd=REPO,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log_file.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class HostPair:
    """Two hosts on the same plugins and data folders; one owns them, the other stands by."""

    def __init__(self, tmp: Path, plugins: Path, *, siyuan_url: str = "http://127.0.0.1:9", siyuan_token: str = "",
                 probe: str) -> None:
        self.tmp = tmp
        self.token = secrets.token_urlsafe(16)
        self.probe = probe  # the plugin whose state says which host owns the folder
        self.ports = [free_port(), free_port()]
        # "--opt=value": a random token may start with "-"
        self.args = [f"--plugins={plugins}", f"--data={tmp / 'data'}", f"--token={self.token}",
                     f"--siyuan-url={siyuan_url}", f"--siyuan-token={siyuan_token}", "--no-reload",
                     "--log-level=WARNING"]
        self.procs: dict[int, HostProcess] = {}
        self.kills = 0
        self._logs = itertools.count()
        self.http = httpx.AsyncClient(timeout=10.0, trust_env=False)

    def spawn(self, port: int) -> HostProcess:
        proc = HostProcess(self.args, port, self.tmp / f"host-{next(self._logs)}-{port}.log")
        self.procs[port] = proc
        return proc

    async def state(self, port: int) -> str | None:
        """The probe plugin's state on that host ("running", "inactive" on a standby), None if unreachable."""
        try:
            r = await self.http.get(f"http://127.0.0.1:{port}/api/plugin/rpc/{self.probe}",
                                    headers={"Authorization": f"Token {self.token}"}, timeout=2.0)
            body = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        return body["data"]["state"] if body.get("code") == 0 else None

    async def states(self) -> dict[int, str | None]:
        return {port: await self.state(port) for port in self.ports}

    async def start(self) -> None:
        self.spawn(self.ports[0])
        await self.wait_for({self.ports[0]: "running"})
        self.spawn(self.ports[1])
        await self.wait_for({self.ports[0]: "running", self.ports[1]: "inactive"})

    async def wait_for(self, wanted: dict[int, str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = await self.states()
            if all(states[p] == s for p, s in wanted.items()):
                return
            exited = [p for p in wanted if p in self.procs and not self.procs[p].alive]
            if time.monotonic() > deadline or exited:
                raise AssertionError(f"hosts did not reach {wanted}: {states}; logs: {self.tail_logs()}")
            await asyncio.sleep(0.02)

    async def owner(self, timeout: float = 30.0) -> int:
        """The port of the host that runs the plugins (waiting through a takeover)."""
        deadline = time.monotonic() + timeout
        while True:
            states = await self.states()
            running = [port for port, state in states.items() if state == "running"]
            assert len(running) <= 1, f"two hosts run the plugins: {states}"
            if running:
                return running[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no host owns the folder: {states}; {self.tail_logs()}")
            await asyncio.sleep(0.02)

    async def kill_owner_and_replace(self) -> tuple[int, int]:
        """SIGKILL the owner once the standby is ready; start a new standby on the freed port.
        Returns (killed port, new owner port)."""
        owner = await self.owner()
        other = next(p for p in self.ports if p != owner)
        await self.wait_for({owner: "running", other: "inactive"})
        self.procs[owner].kill()
        self.kills += 1
        self.spawn(owner)
        return owner, other

    def tail_logs(self, lines: int = 15) -> str:
        out = []
        for path in sorted(self.tmp.glob("host-*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    async def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        await self.http.aclose()


class CallFailed(Exception):
    """The call got no success answer: it may or may not have been applied (the client must resend)."""


class Client:
    """A JSON-RPC client of one plugin that follows the owning host of a HostPair (HTTP or WebSocket)."""

    def __init__(self, pair: HostPair, plugin: str, *, websocket: bool) -> None:
        self.pair = pair
        self.plugin = plugin
        self.websocket = websocket
        self.port = pair.ports[0]
        self.notifications: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._ws: Any = None

    def _switch(self) -> None:
        self.port = next(p for p in self.pair.ports if p != self.port)

    async def call(self, method: str, *params: Any) -> Any:
        """One attempt. Raises CallFailed when the host is down, standing by, or the call errored."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        try:
            answer = await (self._ws_call(request) if self.websocket else self._http_call(request))
        except (TimeoutError, OSError, httpx.HTTPError, websockets.exceptions.WebSocketException, ValueError) as exc:
            await self._drop()
            self._switch()
            raise CallFailed(f"{type(exc).__name__}: {exc}") from None
        if "error" in answer:
            if answer["error"]["code"] in (-32001, -32002):
                await self._drop()
                self._switch()
            raise CallFailed(json.dumps(answer["error"]))
        return answer["result"]

    async def call_until_answered(self, method: str, *params: Any, attempts: int = 2000) -> Any:
        for _ in range(attempts):
            try:
                return await self.call(method, *params)
            except CallFailed:
                await asyncio.sleep(0.01)
        raise AssertionError(f"{method} never succeeded after {attempts} attempts; {self.pair.tail_logs()}")

    async def _http_call(self, request: dict[str, Any]) -> dict[str, Any]:
        r = await self.pair.http.post(f"http://127.0.0.1:{self.port}/api/plugin/rpc/{self.plugin}",
                                      json=request, headers={"Authorization": f"Token {self.pair.token}"},
                                      timeout=10.0)
        return r.json()  # type: ignore[no-any-return]

    async def _ws_call(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._ws is None:
            self._ws = await websockets.connect(
                f"ws://127.0.0.1:{self.port}/ws/plugin/rpc/{self.plugin}", open_timeout=5,
                additional_headers={"Authorization": f"Token {self.pair.token}"})
        await self._ws.send(json.dumps(request))
        while True:
            message = json.loads(await asyncio.wait_for(self._ws.recv(), 10.0))
            if "id" in message and message["id"] == request["id"]:
                return message  # type: ignore[no-any-return]
            if "method" in message:
                self.notifications.append(message)

    async def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    async def close(self) -> None:
        await self._drop()
