"""A real ``jupyter server`` process with the extension as installed (enabled by the shipped
``jupyter_server_config.d/kplug_lab.json``): plugins start from ``_start_jupyter_server_extension`` once the
server runs, answer under the base URL with the server's token, and SIGTERM runs their onunload."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from kplug_testing import write_plugin

PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a));
siyuan.plugin.lifecycle.onunload = async () => { await siyuan.storage.put("unloaded.txt", "bye"); };
"""
TOKEN = "jupyter-process-token"
TIMEOUT = 60.0


def _server_info(runtime: Path, proc: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, "jupyter server exited early"
        for f in runtime.glob("jpserver-*.json"):
            try:
                info: dict[str, object] = json.loads(f.read_text())
            except ValueError:
                continue  # being written
            try:  # jupyter_server writes the file a moment before it listens
                socket.create_connection(("127.0.0.1", int(info["port"])), timeout=5).close()  # type: ignore[call-overload]
            except OSError:
                continue
            return info
        time.sleep(0.05)
    raise AssertionError("jupyter server did not write its runtime file and listen")


def test_a_real_jupyter_server_starts_plugins_serves_them_and_unloads_them_on_sigterm(tmp_path: Path) -> None:
    plugins, data, runtime = tmp_path / "plugins", tmp_path / "data", tmp_path / "runtime"
    write_plugin(plugins, "p", PLUGIN)
    env = {**os.environ, "JUPYTER_SERVER_ALLOW_UNAUTHENTICATED_ACCESS": "false",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "jdata"),
           "JUPYTER_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           "--ServerApp.port=0", "--ServerApp.base_url=/jp/", f"--IdentityProvider.token={TOKEN}",
           f"--KplugLabApp.plugins_dir={plugins}", f"--KplugLabApp.data_dir={data}", "--KplugLabApp.hot_reload=False"]
    log = tmp_path / "server.log"  # a file, not a pipe: a full pipe would block the server
    with log.open("wb") as log_file, subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                                      stderr=log_file) as proc:
        try:
            info = _server_info(runtime, proc)
            url = f"http://127.0.0.1:{info['port']}/jp/"
            auth = {"Authorization": f"token {TOKEN}"}
            with httpx.Client(base_url=url, headers=auth, trust_env=False, timeout=30) as client:
                deadline = time.monotonic() + TIMEOUT
                while (client.get("api/plugin/rpc/p").json().get("data") or {}).get("state") != "running":
                    assert time.monotonic() < deadline, "the plugin never reached running"
                    time.sleep(0.1)
                r = client.post("api/plugin/rpc/p", content='{"jsonrpc":"2.0","id":1,"method":"echo","params":["x"]}')
                assert r.json() == {"jsonrpc": "2.0", "result": "x", "id": 1}
                assert httpx.get(f"{url}api/plugin", trust_env=False).status_code == 403
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = log.read_text(errors="replace")
    assert "kplug_lab | extension was successfully loaded" in stderr
    assert (data / "storage" / "p" / "unloaded.txt").read_text() == "bye", stderr[-2000:]


def test_jupyter_lists_the_installed_extension_as_enabled_and_ok() -> None:
    done = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                          text=True, timeout=TIMEOUT, env={**os.environ, "NO_COLOR": "1"})
    out = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    assert re.search(r"^\s*kplug_lab enabled\s*$", out, re.MULTILINE), out
    assert re.search(r"^\s*kplug_lab \S+ OK\s*$", out, re.MULTILINE), out
