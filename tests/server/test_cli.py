"""``kplug serve`` as a user runs it: a subprocess that prints its URL, token and a curl line that works, and
stops cleanly (every plugin's onunload) on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kplug_testing import free_port, write_petals, write_plugin

HELLO = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a), "echoes");
siyuan.plugin.lifecycle.onunload = async () => { await siyuan.storage.put("unloaded.txt", "bye"); };
"""
STARTUP_TIMEOUT = 60.0


def kplug_command() -> list[str]:
    script = shutil.which("kplug", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "kplug_lab.server.cli"]


class Served:
    """A running ``kplug serve``; its stdout lines are read by a thread so a test never blocks on a pipe."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        # a file, not a pipe nobody reads (a full pipe blocks the server); closed in stop()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen([*kplug_command(), "serve", *args], stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, prefix: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=STARTUP_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"kplug serve printed no line starting {prefix!r}; got {self.seen}") from None
            if line is None:
                self.stderr.seek(0)
                stderr = self.stderr.read().decode(errors="replace")
                raise AssertionError(f"kplug serve exited ({self.proc.wait()}) before printing {prefix!r}; "
                                     f"stdout {self.seen}, stderr {stderr}")
            self.seen.append(line)
            if line.strip().startswith(prefix):
                return line.strip()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STARTUP_TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()


@pytest.fixture
def served() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        s.stop()


def run_curl_line(line: str) -> httpx.Response:
    """Runs the printed ``curl -s -H H -d D URL`` line's request with httpx."""
    argv = shlex.split(line)
    assert argv[:2] == ["curl", "-s"] and argv[2] == "-H" and argv[4] == "-d", argv
    name, _, value = argv[3].partition(": ")
    return httpx.post(argv[6], headers={name: value}, content=argv[5], trust_env=False, timeout=30)


def test_serve_prints_url_token_and_a_working_curl_line_and_sigterm_runs_onunload(
        tmp_path: Path, served: list[Served]) -> None:
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "hello", HELLO)
    data = tmp_path / "data"
    s = Served(["--plugins", str(plugins), "--data", str(data), "--host", "127.0.0.1", "--port", "0",
                "--siyuan-url", "http://127.0.0.1:9", "--siyuan-token", "siyuan-secret", "--no-reload"])
    served.append(s)
    url = s.read_until("URL:").split()[1]
    token = s.read_until("Token:").split()[1]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/") and len(token) >= 24
    s.read_until("Try:")
    curl = s.read_until("curl ")
    assert f"Authorization: Token {token}" in shlex.split(curl)
    r = run_curl_line(curl)
    assert r.status_code == 200 and r.json() == {"jsonrpc": "2.0", "result": "hi", "id": 1}
    info = httpx.get(f"{url}api/plugin/rpc/hello", headers={"Authorization": f"Token {token}"}, trust_env=False)
    assert info.json()["data"]["state"] == "running"
    assert httpx.get(f"{url}api/plugin", trust_env=False).status_code == 401

    assert s.stop() == 0
    assert (data / "storage" / "hello" / "unloaded.txt").read_text() == "bye"
    assert any(line.startswith("stopping") for line in (*s.seen, *iter(s.lines.get, None)))


def test_serve_a_workspace_with_a_given_token(tmp_path: Path, served: list[Served]) -> None:
    workspace = tmp_path / "ws"
    write_plugin(workspace / "data" / "plugins", "hello", HELLO)
    write_plugin(workspace / "data" / "plugins", "disabled", HELLO)
    write_petals(workspace, [{"name": "hello", "enabled": True}, {"name": "disabled", "enabled": False}])
    s = Served(["--workspace", str(workspace), "--port", "0", "--token", "my-token", "--no-reload"])
    served.append(s)
    url = s.read_until("URL:").split()[1]
    assert s.read_until("Token:") == "Token: my-token"
    r = run_curl_line(s.read_until("curl "))
    assert r.json()["result"] == "hi"
    listed = httpx.get(f"{url}api/plugin", headers={"Authorization": "Token my-token"}, trust_env=False).json()
    assert [p["name"] for p in listed["data"]] == ["hello"]
    assert s.stop() == 0
    assert (workspace / "data" / "storage" / "petal" / "hello" / "unloaded.txt").read_text() == "bye"


def test_restarting_serve_keeps_the_generated_token_and_a_configured_client_keeps_working(
        tmp_path: Path, served: list[Served]) -> None:
    workspace = tmp_path / "ws"
    write_plugin(workspace / "data" / "plugins", "hello", HELLO)
    write_petals(workspace, [{"name": "hello", "enabled": True}])
    port = str(free_port())
    tokens = []
    for _ in range(2):
        s = Served(["--workspace", str(workspace), "--port", port, "--no-reload"])
        served.append(s)
        url = s.read_until("URL:").split()[1]
        tokens.append(s.read_until("Token:").split()[1])
        # the client configured with the first run's URL and token
        r = httpx.post(f"{url}api/plugin/rpc/hello", json={"jsonrpc": "2.0", "id": 1, "method": "echo",
                                                           "params": ["again"]},
                       headers={"Authorization": f"Token {tokens[0]}"}, trust_env=False)
        assert r.json()["result"] == "again"
        assert s.stop() == 0
    assert tokens[0] == tokens[1] and len(tokens[0]) >= 24
    kept = workspace / "temp" / "kplug" / "token"
    assert kept.read_text().strip() == tokens[0]
    if os.name == "posix":
        assert kept.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("source", ["file", "env"])
def test_secrets_come_from_a_file_or_the_environment_not_only_the_command_line(
        tmp_path: Path, served: list[Served], source: str) -> None:
    write_plugin(tmp_path / "plugins", "hello", HELLO)
    args = ["--plugins", str(tmp_path / "plugins"), "--port", "0", "--no-reload"]
    env = {}
    if source == "file":
        (tmp_path / "token").write_text("token-from-file\n")
        (tmp_path / "call").write_text("call-from-file")
        args += ["--token-file", str(tmp_path / "token"), "--call-token-file", str(tmp_path / "call")]
        token, call = "token-from-file", "call-from-file"
    else:
        env = {"KPLUG_TOKEN": "token-from-env", "KPLUG_CALL_TOKEN": "call-from-env"}
        token, call = "token-from-env", "call-from-env"
    s = Served(args, env)
    served.append(s)
    url = s.read_until("URL:").split()[1]
    assert s.read_until("Token:") == f"Token: {token}"
    assert token not in " ".join(s.proc.args)  # type: ignore[arg-type]
    r = httpx.post(f"{url}api/plugin/rpc/hello", headers={"Authorization": f"Token {call}"}, trust_env=False,
                   content='{"jsonrpc":"2.0","id":1,"method":"echo","params":["hi"]}')
    assert r.json()["result"] == "hi"


@pytest.mark.parametrize(("args", "message"), [
    (["--plugins", ".", "--token-file", "/nonexistent/token"], "--token-file /nonexistent/token: cannot read it"),
    (["--plugins", ".", "--siyuan-token-file", "/dev/null"], "--siyuan-token-file /dev/null is empty"),
    (["--plugins", ".", "--memory-mb", "4096"], "allows a JS heap limit of at most 2040 MiB"),
    (["--plugins", ".", "--cpu-limit", "nan"], "kplug serve: "),
    ([], "give --workspace DIR or --plugins DIR"),
    (["--plugins", "/nonexistent/kplug"], "/nonexistent/kplug is not a directory"),
    (["--plugins", ".", "--workspace", "."], "not allowed with argument"),
    (["--plugins", ".", "--token", ""], "--token must not be empty"),
    (["--plugins", ".", "--token", "t", "--call-token", "t"], "--call-token must be non-empty and differ"),
    (["--plugins", ".", "--port", "http"], "invalid int value"),
    (["--plugins", ".", "--switch-interval", "0"], "--switch-interval must be a positive number of seconds"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run([*kplug_command(), "serve", *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_help_lists_the_documented_options() -> None:
    out = subprocess.run([*kplug_command(), "serve", "--help"], capture_output=True, text=True, timeout=60).stdout
    for option in ("--workspace", "--plugins", "--data", "--host", "--port", "--token", "--siyuan-url",
                   "--siyuan-token", "--call-token", "--base-url", "--dev", "--call-timeout", "--max-request-bytes",
                   "--proxy-allow-private", "--token-file", "--call-token-file", "--siyuan-token-file",
                   "--follow-caller-cpu", "--no-follow-caller-cpu", "--switch-interval", "--ws-direct-frames",
                   "--siyuan-poll-interval", "--siyuan-strict"):
        assert option in out, option
    assert "default 127.0.0.1" in out


PROXY = """
siyuan.server.private.http.handler = (req) => ({ body: { proxy: { url: (req.url.query.url || [])[0] } } });
"""


@pytest.mark.parametrize("allow", [False, True])
def test_proxy_allow_private_lets_a_private_route_reach_loopback(tmp_path: Path, served: list[Served],
                                                                 allow: bool) -> None:
    """``--proxy-allow-private`` is the switch the tests' application setting is; the default refuses."""
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "px", PROXY)
    s = Served(["--plugins", str(plugins), "--data", str(tmp_path / "data"), "--port", "0", "--token", "t0ken",
                "--no-reload", *(["--proxy-allow-private"] if allow else [])])
    served.append(s)
    url = s.read_until("URL:").split()[1]
    s.read_until("Token:")
    info = httpx.get(f"{url}api/plugin/rpc/px", headers={"Authorization": "Token t0ken"}, trust_env=False)
    assert info.json()["data"]["state"] == "running"
    target = f"{url}api/plugin"  # the server itself, on loopback: answers 401 to a request without a token
    r = httpx.get(f"{url}plugin/private/px/go", params={"url": target}, headers={"Authorization": "Token t0ken"},
                  trust_env=False, timeout=30)
    if allow:
        assert r.status_code == 401, r.text
    else:
        assert r.status_code == 502 and "non-public address 127.0.0.1" in r.text, r.text


@pytest.mark.parametrize(("args", "interval"), [([], None), (["--switch-interval", "0.0002"], 0.0002)])
def test_serve_leaves_the_switch_interval_alone_unless_asked(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                             interval: float | None) -> None:
    """The GIL switch interval is the whole process's: an opt-in tuning switch, not a default."""
    from kplug_lab.server import cli

    seen: list[float] = []

    def fake_run(coro: object) -> int:
        coro.close()  # type: ignore[attr-defined]
        seen.append(sys.getswitchinterval())
        return 0

    before = sys.getswitchinterval()
    monkeypatch.setattr(cli, "_run", fake_run)
    try:
        assert cli.main(["serve", "--port", "0", *args]) == 0
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(before if interval is None else interval)]


def test_serve_runs_on_uvloop_where_it_is_installed() -> None:
    from kplug_lab.server import cli

    async def loop_module() -> int:
        return 1 if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else 0

    assert cli._run(loop_module()) == 1


#: a ``sitecustomize`` that makes this Linux Python look like Windows where it matters to ``kplug serve``: the
#: POSIX-only modules cannot be imported, ``os`` has no eventfd, and the event loop refuses signal handlers
WINDOWS_LIKE = '''
import asyncio, asyncio.unix_events, importlib.abc, os, sys

BLOCKED = {"fcntl", "uvloop", "resource", "termios"}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked by the import-without-POSIX test)")
        return None


sys.meta_path.insert(0, _Blocker())
for _name in [n for n in sys.modules if n.partition(".")[0] in BLOCKED]:
    del sys.modules[_name]
for _attr in ("eventfd", "eventfd_read", "eventfd_write"):
    if hasattr(os, _attr):
        delattr(os, _attr)


def _refused(self, *args, **kwargs):
    raise NotImplementedError("no signal handlers on this loop (as on Windows)")


asyncio.AbstractEventLoop.add_signal_handler = _refused
asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = _refused
'''


def windows_like_env(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "windows-like"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(WINDOWS_LIKE)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH", "")) if p)}


def test_serve_imports_and_starts_without_fcntl_uvloop_eventfd_or_signal_handlers(
        tmp_path: Path, served: list[Served]) -> None:
    env = {**os.environ, **windows_like_env(tmp_path)}
    probe = subprocess.run([sys.executable, "-c", (
        "import importlib, pkgutil, kplug_lab\n"
        "for m in pkgutil.walk_packages(kplug_lab.__path__, 'kplug_lab.'):\n"
        "    if '.guest' not in m.name and not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "try:\n    import fcntl\nexcept ImportError:\n    print('blocked')\n")],
        env=env, capture_output=True, text=True, timeout=STARTUP_TIMEOUT)
    assert probe.returncode == 0 and probe.stdout.strip() == "blocked", probe.stderr
    helped = subprocess.run([*kplug_command(), "serve", "--help"], env=env, capture_output=True, text=True,
                            timeout=STARTUP_TIMEOUT)
    assert helped.returncode == 0 and "--workspace" in helped.stdout, helped.stderr

    workspace = tmp_path / "ws"
    write_plugin(workspace / "data" / "plugins", "hello", HELLO)
    write_petals(workspace, [{"name": "hello", "enabled": True}])
    s = Served(["--workspace", str(workspace), "--port", "0", "--no-reload"], env=env)
    served.append(s)
    s.read_until("URL:")
    r = run_curl_line(s.read_until("curl "))
    assert r.json()["result"] == "hi"
    # the host lock took its fcntl-free path (pread: the server shares this file's offset)
    assert b"locked against this process only" in os.pread(s.stderr.fileno(), 1 << 20, 0)
    assert s.stop() == 0  # SIGTERM through the portable signal.signal path
    assert (workspace / "data" / "storage" / "petal" / "hello" / "unloaded.txt").read_text() == "bye"


def test_siyuan_strict_reaches_the_host_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """``kplug serve --siyuan-strict`` is ``HostConfig.siyuan_strict`` (tests/host/test_portability.py: its effect)."""
    from kplug_lab.server import cli

    seen: list[bool] = []

    async def fake_serve(args: object) -> int:
        seen.append(bool(args.siyuan_strict))  # type: ignore[attr-defined]
        return 0

    monkeypatch.setattr(cli, "_serve", fake_serve)
    assert cli.main(["serve", "--port", "0", "--siyuan-strict"]) == 0
    assert cli.main(["serve", "--port", "0"]) == 0
    assert seen == [True, False]
