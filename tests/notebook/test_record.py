"""``%kplug record``: a session's calls saved as a notebook that passes under nbval, and fails when an answer
changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from kplug_testing import write_plugin

from kplug_lab.client import CallFailed, Client
from kplug_lab.notebook._process import ServerProcess
from kplug_lab.notebook._record import RecordedCall, load_sanitize_patterns, notebook_of

REPO = Path(__file__).resolve().parents[2]
SANITIZE = REPO / "notebooks" / "nbval_sanitize.cfg"

DEMO = """
siyuan.rpc.bind("greet", (name) => `Hello, ${name}!`);
siyuan.rpc.bind("info", () => ({version: 1, at: new Date().toISOString(), tags: ["a", "b"]}));
siyuan.rpc.bind("add", (a, b) => a + b);
siyuan.rpc.bind("boom", () => { throw new Error("no such thing"); });
"""


def replay(notebook: Path, server: ServerProcess) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KPLUG_LAB_URL": server.url, "KPLUG_LAB_TOKEN": server.token or "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("JPY_PARENT_PID", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(SANITIZE), str(notebook)],
        cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=600)


def test_saved_sessions_pass_under_nbval_and_fail_when_an_answer_changes(
        connected: InteractiveShell, server: ServerProcess, tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "plugins", "rec-demo", DEMO)
    connected.run_line_magic("kplug", f"load {plugin}")
    assert "recording calls made from this notebook" in connected.run_line_magic("kplug", "record").text()
    connected.run_line_magic("kplug", 'call rec-demo.greet "Ada"')
    connected.run_line_magic("kplug", "call rec-demo.info")
    connected.run_line_magic("kplug", "call rec-demo.add 2 3")
    with pytest.raises(CallFailed):
        connected.run_line_magic("kplug", "call rec-demo.boom")
    connected.run_line_magic("kplug", "list")  # admin calls are not part of the test
    saved = tmp_path / "tests" / "rec_demo.ipynb"
    message = connected.run_line_magic("kplug", f"record --save {saved}").text()
    assert message.startswith(f"saved 4 call(s) to {saved}")

    nb = json.loads(saved.read_text())
    sources = [c["source"] for c in nb["cells"] if c["cell_type"] == "code"][1:]
    assert sources == ['%kplug call rec-demo.greet "Ada"', "%kplug call rec-demo.info", "%kplug call rec-demo.add 2 3",
                       "%kplug call rec-demo.boom"]
    info_output = nb["cells"][3]["outputs"][0]["data"]["text/plain"]
    assert '"at": "TIMESTAMP"' in info_output  # sanitised with the project's patterns
    boom = nb["cells"][5]
    assert boom["metadata"]["tags"] == ["raises-exception"] and boom["outputs"][0]["ename"] == "CallFailed"

    passed = replay(saved, server)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    (plugin / "kernel.js").write_text(DEMO.replace("Hello, ", "Hi, "))
    connected.run_line_magic("kplug", "reload rec-demo")
    failed = replay(saved, server)
    assert failed.returncode != 0
    assert "Hi, Ada!" in failed.stdout and "Hello, Ada!" in failed.stdout


def test_record_others_takes_calls_from_every_client(connected: InteractiveShell, server: ServerProcess,
                                                     tmp_path: Path) -> None:
    connected.run_line_magic("kplug", "record --others")
    with Client(server.url, server.token) as other:
        other.call("hello", "echo", {"from": "elsewhere"})
        with pytest.raises(Exception, match="not found"):
            other.call("hello", "nope")
    saved = tmp_path / "others.ipynb"
    assert connected.run_line_magic("kplug", f"record --save {saved}").text().startswith("saved 2 call(s)")
    cells = [c for c in json.loads(saved.read_text())["cells"] if c["cell_type"] == "code"][1:]
    assert [c["source"] for c in cells] == ['%kplug call hello.echo {"from": "elsewhere"}', "%kplug call hello.nope"]
    assert cells[1]["outputs"][0]["ename"] == "MethodNotFoundError"
    assert replay(saved, server).returncode == 0


def test_record_usage(connected: InteractiveShell, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not recording"):
        connected.run_line_magic("kplug", f"record --save {tmp_path / 'x.ipynb'}")
    connected.run_line_magic("kplug", "record")
    assert connected.run_line_magic("kplug", "record --stop").text() == "stopped recording"


def test_notebook_of_spreads_lists_and_passes_objects_whole() -> None:
    patterns = load_sanitize_patterns(SANITIZE)
    nb = notebook_of([RecordedCall("p.m", None, True, 1), RecordedCall("p.m", [1, "x"], True, None),
                      RecordedCall("p.m", {"k": 1}, True, "at 12:00:01")], patterns, title="t")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"][1:]
    assert [c["source"] for c in code] == ["%kplug call p.m", '%kplug call p.m 1 "x"', '%kplug call p.m {"k": 1}']
    assert code[2]["outputs"][0]["data"]["text/plain"] == '"at HH:MM:SS"'
