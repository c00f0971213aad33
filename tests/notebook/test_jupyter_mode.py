"""The magics against a real ``jupyter server`` with the kplug_lab extension, found the way a kernel finds it:
``list_running_servers()`` matched on ``JPY_PARENT_PID``, with the server's base_url and token."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell
from kplug_testing import free_port, write_plugin

from kplug_lab.client import MethodNotFoundError, PluginNotLoadedError

REPO = Path(__file__).resolve().parents[2]
TOKEN = "jupyter-mode-token"


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    root = tmp_path_factory.mktemp("jupyter")
    shutil.copytree(REPO / "plugins" / "hello", root / "plugins" / "hello")
    runtime = root / "runtime"
    log_file = (root / "server.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPLUG_LAB_", "JPY_"))}
    env.update(JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_SERVER_ALLOW_UNAUTHENTICATED_ACCESS="false")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={free_port()}", "--ServerApp.port_retries=0", "--ServerApp.base_url=/jx/",
         f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}", "--ServerApp.jpserver_extensions={'kplug_lab': True}",
         f"--KplugLabApp.plugins_dir={root / 'plugins'}", f"--KplugLabApp.data_dir={root / 'data'}",
         "--KplugLabApp.dev_mode=True", "--KplugLabApp.hot_reload=False"],
        env=env, stdout=subprocess.DEVNULL, stderr=log_file)  # a file, not a pipe: a full pipe blocks the server
    info = runtime / f"jpserver-{proc.pid}.json"
    deadline = time.monotonic() + 60
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError("jupyter server did not start:\n" + (root / "server.log").read_text()[-3000:])
        time.sleep(0.1)
    # the server writes its info file before the extension has started the plugins: wait for hello to run
    url = json.loads(info.read_text())["url"]
    while True:
        try:
            answer = httpx.get(f"{url}api/plugin/rpc/hello", headers={"Authorization": f"token {TOKEN}"}).json()
            if (answer.get("data") or {}).get("stateCode") == 2:
                break
        except (httpx.HTTPError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError("hello did not start:\n" + (root / "server.log").read_text()[-3000:])
        time.sleep(0.1)
    try:
        yield proc, runtime
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def test_magics_find_and_use_the_jupyter_server_that_started_the_kernel(
        ip: InteractiveShell, jupyter: tuple[subprocess.Popen[bytes], Path], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    proc, runtime = jupyter
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("JPY_PARENT_PID", str(proc.pid))
    out = ip.run_line_magic("kplug", "connect")._repr_mimebundle_()["text/plain"]
    assert out.endswith(f"/jx/ (jupyter server (pid {proc.pid})): 1 plugin(s)")
    assert ip.run_line_magic("kplug", 'call hello.greet "Jupyter"').value == "Hello, Jupyter!"
    assert "hello" in ip.run_line_magic("kplug", "list")._repr_mimebundle_()["text/plain"]
    assert ip.run_cell_magic("kplug", "eval hello", "siyuan.plugin.name").value == "hello"
    view = ip.run_cell_magic("kplug", "plugin jx-cell", 'siyuan.rpc.bind("v", () => "in jupyter");')
    assert view.state == "running"
    assert ip.run_line_magic("kplug", "call jx-cell.v").value == "in jupyter"
    assert "greeted Jupyter" in ip.run_line_magic("kplug", "logs hello").messages
    assert ip.run_line_magic("kplug", "reload hello").state == "running"
    ip.run_line_magic("kplug", "unload jx-cell")
    with pytest.raises(PluginNotLoadedError):
        ip.run_line_magic("kplug", "call jx-cell.v")
    with pytest.raises(MethodNotFoundError):
        ip.run_line_magic("kplug", "call hello.nope")
    # the rest of the magics, through the same Jupyter server
    tool = ('siyuan.mcp.registerTool("jx_tool", {description: "d", inputSchema: {type: "object"}}, () => 1);'
            'siyuan.rpc.bind("w", () => "w", "dub");')
    folder = write_plugin(tmp_path, "jx-load", tool, {"version": "4.5.6"})
    loaded = ip.run_line_magic("kplug", f"load {folder}")
    assert loaded.state == "running"
    state = ip.run_line_magic("kplug", "state jx-load")._repr_mimebundle_()["text/plain"]
    assert state.startswith("jx-load 4.5.6: running") and "dub" in state
    assert "jx_tool" in ip.run_line_magic("kplug", "tools")._repr_mimebundle_()["text/plain"]
    widget = ip.run_line_magic("kplug", "inspect jx-load")
    try:
        assert widget.selected == "jx-load"
    finally:
        widget.close()
    ip.run_line_magic("kplug", "unload jx-load")


def test_jupyter_server_info_without_matching_pid_is_not_used(
        ip: InteractiveShell, jupyter: tuple[subprocess.Popen[bytes], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, runtime = jupyter
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("JPY_PARENT_PID", "1")
    with pytest.raises(Exception, match="not connected"):
        ip.run_line_magic("kplug", "list")
    assert json.loads(next(runtime.glob("jpserver-*.json")).read_text())["base_url"] == "/jx/"
