"""Every ``%kplug`` magic in a real IPython shell against a real ``kplug serve``, including the error paths."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from kplug_testing import write_plugin

from kplug_lab.client import (
    CallFailed,
    ConnectionFailed,
    MethodNotFoundError,
    PluginNotLoadedError,
)
from kplug_lab.notebook._display import CallValue, PluginList, PluginView
from kplug_lab.notebook._magics import USAGE
from kplug_lab.notebook._process import ServerProcess


def magics(shell: InteractiveShell) -> Any:
    return shell.magics_manager.registry["KplugMagics"]


def kplug(ip: InteractiveShell, line: str, cell: str | None = None) -> object:
    if cell is None:
        return ip.run_line_magic("kplug", line)
    return ip.run_cell_magic("kplug", line, cell)


def text(result: object) -> str:
    return result._repr_mimebundle_()["text/plain"]  # type: ignore[attr-defined, no-any-return]


def test_connect_with_url_and_token_checks_them_at_once(ip: InteractiveShell, server: ServerProcess) -> None:
    out = kplug(ip, f"connect {server.url} {server.token}")
    assert text(out).startswith(f"connected to {server.url} (explicit): ")
    with pytest.raises(Exception, match="401"):
        kplug(ip, f"connect {server.url} wrong-token")


def test_connect_discovers_the_server_from_environment(ip: InteractiveShell, server: ServerProcess,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPLUG_LAB_URL", server.url)
    monkeypatch.setenv("KPLUG_LAB_TOKEN", server.token)
    assert "(KPLUG_LAB_URL)" in text(kplug(ip, "connect"))
    kplug(ip, "disconnect")
    assert "hello" in text(kplug(ip, "list"))  # discovered again on first use


def test_without_any_connection_the_magic_says_how_to_connect(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="%kplug connect URL TOKEN"):
        kplug(ip, "list")


def test_list_shows_plugins_states_and_methods(connected: InteractiveShell) -> None:
    out = kplug(connected, "list")
    assert isinstance(out, PluginList)
    row = next(line for line in text(out).splitlines() if line.startswith("hello "))
    assert "running" in row and "greet" in row
    assert out["hello"].state == "running"
    assert "<table>" in out._repr_mimebundle_()["text/html"]


def test_call_takes_json_arguments(connected: InteractiveShell) -> None:
    out = kplug(connected, 'call hello.greet "Ada"')
    assert isinstance(out, CallValue) and out.value == "Hello, Ada!"
    assert text(out) == '"Hello, Ada!"'
    assert kplug(connected, 'call hello.echo 1 [2, 3] {"k": "v w"} null').value == [1, [2, 3], {"k": "v w"}, None]  # type: ignore[attr-defined]


def test_call_with_bad_json_explains_the_quoting(connected: InteractiveShell) -> None:
    with pytest.raises(UsageError, match=r'argument 1 is not valid JSON \(strings need double quotes'):
        kplug(connected, "call hello.greet Ada")
    with pytest.raises(UsageError, match="argument 2 is not valid JSON"):
        kplug(connected, "call hello.echo 1 {bad}")
    with pytest.raises(UsageError, match=r"NAME\.METHOD"):
        kplug(connected, "call hello")


def test_call_errors_raise_with_json_rpc_code_and_message(connected: InteractiveShell) -> None:
    with pytest.raises(PluginNotLoadedError) as nl:
        kplug(connected, "call no-such-plugin.echo 1")
    assert nl.value.code == -32001 and "Plugin not loaded" in str(nl.value)
    with pytest.raises(MethodNotFoundError) as mnf:
        kplug(connected, "call hello.nope")
    assert mnf.value.code == -32601
    with pytest.raises(CallFailed, match="by must be a finite number") as cf:
        kplug(connected, 'call counter.increment "x"')
    assert cf.value.code == -32603


def test_dollar_and_braces_are_not_expanded(connected: InteractiveShell) -> None:
    result = connected.run_cell('x = 5\nr = %kplug call hello.echo "$x {x}"')
    assert result.success
    assert connected.user_ns["r"].value == "$x {x}"


def test_state_load_reload_unload(connected: InteractiveShell, tmp_path: Path) -> None:
    d = write_plugin(tmp_path, "mg-life", 'siyuan.rpc.bind("v", () => 1, "one");', {"version": "1.2.3"})
    loaded = kplug(connected, f"load {d}")
    assert isinstance(loaded, PluginView) and loaded.state == "running"
    assert text(loaded) == "mg-life 1.2.3: running\n  v  one"
    (d / "kernel.js").write_text('siyuan.rpc.bind("v", () => 2, "two");')
    assert text(kplug(connected, "reload mg-life")).endswith("v  two")
    assert kplug(connected, "call mg-life.v").value == 2  # type: ignore[attr-defined]
    assert text(kplug(connected, "unload mg-life")) == "unloaded mg-life"
    with pytest.raises(PluginNotLoadedError):
        kplug(connected, "state mg-life")
    with pytest.raises(PluginNotLoadedError):
        kplug(connected, "unload mg-life")


def test_load_of_a_folder_without_plugin_json_fails_with_the_path(connected: InteractiveShell, tmp_path: Path) -> None:
    with pytest.raises(CallFailed, match=r"plugin\.json"):
        kplug(connected, f"load {tmp_path}")


def test_logs_show_recent_lines_without_times(connected: InteractiveShell) -> None:
    kplug(connected, 'call hello.greet "LogReader"')
    out = kplug(connected, "logs hello --limit 5")
    assert "INFO  [hello] greeted LogReader" in text(out).splitlines()
    with pytest.raises(PluginNotLoadedError):
        kplug(connected, "logs no-such-plugin")


def test_logs_follow_prints_new_lines(connected: InteractiveShell, server: ServerProcess,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from kplug_lab.client import Client

    done = threading.Event()

    def keep_greeting() -> None:
        with Client(server.url, server.token) as c:
            while not done.wait(0.2):
                c.call("hello", "greet", "Follower")

    t = threading.Thread(target=keep_greeting)
    t.start()
    try:
        assert kplug(connected, "logs hello --limit 0 --follow --count 1 --timeout 30") is None
    finally:
        done.set()
        t.join()
    assert "[hello] greeted Follower" in capsys.readouterr().out


def test_tools_lists_registered_tools(connected: InteractiveShell) -> None:
    out = text(kplug(connected, "tools"))
    assert "search_notes" in out  # the capability plugins/notes-agent registers in its onload


def test_eval_runs_the_cell_inside_the_plugin(connected: InteractiveShell) -> None:
    out = kplug(connected, "eval hello", "const n = 6 * 7;\n`${siyuan.plugin.name}:${n}`")
    assert out.value == "hello:42"  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="cell magic"):
        kplug(connected, "eval hello")
    with pytest.raises(CallFailed, match="ReferenceError"):
        kplug(connected, "eval hello", "notDefinedAnywhere")


def test_plugin_cell_writes_loads_and_reloads(connected: InteractiveShell) -> None:
    out = kplug(connected, "plugin mg-cell", 'siyuan.rpc.bind("hi", (w) => `hi ${w}`, "says hi");')
    assert out.state == "running" and text(out) == "mg-cell 0.0.1: running\n  hi  says hi"  # type: ignore[attr-defined]
    assert kplug(connected, 'call mg-cell.hi "there"').value == "hi there"  # type: ignore[attr-defined]
    kplug(connected, "plugin mg-cell", 'siyuan.rpc.bind("hi", (w) => `hello ${w}`);')
    assert kplug(connected, 'call mg-cell.hi "again"').value == "hello again"  # type: ignore[attr-defined]
    broken = kplug(connected, "plugin mg-cell", "this is not javascript")
    assert broken.state == "error" and "SyntaxError" in text(broken)  # type: ignore[attr-defined]
    kplug(connected, "unload mg-cell")
    with pytest.raises(UsageError, match="not a usable folder name"):
        kplug(connected, "plugin ../escape", "1")


def test_help_for_every_command(connected: InteractiveShell) -> None:
    assert text(kplug(connected, "help")) == USAGE
    assert text(kplug(connected, "")) == USAGE
    for command in ("connect", "disconnect", "list", "state", "load", "unload", "reload", "call", "logs", "tools",
                    "inspect", "eval", "plugin", "help"):
        out = text(kplug(connected, f"help {command}"))
        assert f"kplug {command}" in out.splitlines()[0], command
    assert "NAME.METHOD" in text(kplug(connected, "call --help"))
    assert "--follow" in text(kplug(connected, "logs -h"))
    with pytest.raises(UsageError, match="no command 'frobnicate'"):
        kplug(connected, "help frobnicate")
    with pytest.raises(UsageError, match="invalid choice"):
        kplug(connected, "frobnicate")


def test_inspect_returns_the_widget(connected: InteractiveShell) -> None:
    out = kplug(connected, "inspect hello")
    try:
        assert out.selected == "hello"  # type: ignore[attr-defined]
        assert "application/vnd.jupyter.widget-view+json" in out._repr_mimebundle_()  # type: ignore[attr-defined]
    finally:
        out.close()  # type: ignore[attr-defined]


def test_server_gone_raises_connection_failed(ip: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    proc = ServerProcess(tmp_path / "plugins", data=tmp_path / "data").start()
    kplug(ip, f"connect {proc.url} {proc.token}")
    assert text(kplug(ip, "list")) == "no plugins loaded"
    proc.stop()
    with pytest.raises(ConnectionFailed, match="is the server running"):
        kplug(ip, "list")


def test_local_mode_runs_every_magic_inside_the_kernel(ip: InteractiveShell, tmp_path: Path) -> None:
    assert "(local): 0 plugin(s)" in text(kplug(ip, "connect --local"))
    session = magics(ip).session
    assert session.local is not None and session.local.running
    view = kplug(ip, "plugin loc", 'siyuan.rpc.bind("twice", (n) => 2 * n, "doubles");\n'
                                   'siyuan.plugin.lifecycle.onload = () => siyuan.logger.info("loc up");')
    assert view.state == "running"  # type: ignore[attr-defined]
    assert kplug(ip, "call loc.twice 21").value == 42  # type: ignore[attr-defined]
    assert kplug(ip, "eval loc", "typeof siyuan.rpc.bind").value == "function"  # type: ignore[attr-defined]
    assert "INFO  [loc] loc up" in text(kplug(ip, "logs loc"))
    assert "loc" in text(kplug(ip, "list"))
    hello = Path(__file__).resolve().parents[2] / "plugins" / "hello"
    assert kplug(ip, f"load {hello}").state == "running"  # type: ignore[attr-defined]
    assert kplug(ip, 'call hello.greet "local"').value == "Hello, local!"  # type: ignore[attr-defined]
    assert kplug(ip, "reload loc").state == "running"  # type: ignore[attr-defined]
    kplug(ip, "unload loc")
    with pytest.raises(PluginNotLoadedError):
        kplug(ip, "call loc.twice 1")
    with pytest.raises(MethodNotFoundError):
        kplug(ip, "call hello.nope")
    local = session.local
    assert text(kplug(ip, "disconnect")) == "disconnected"
    assert not local.running


def test_a_token_that_starts_with_a_dash_works_for_the_server_and_connect(ip: InteractiveShell,
                                                                          tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    with ServerProcess(tmp_path / "plugins", data=tmp_path / "data", token="-dash-token") as proc:
        assert text(kplug(ip, f"connect {proc.url} -dash-token")).startswith(f"connected to {proc.url}")
        assert kplug(ip, "list").plugins == []  # type: ignore[attr-defined]


def test_state_shows_a_failed_hook_of_a_running_plugin(connected: InteractiveShell) -> None:
    view = kplug(connected, "plugin mg-hook",
                 'siyuan.plugin.lifecycle.onload = async () => { throw new Error("nope"); };')
    try:
        assert view.state == "running"  # type: ignore[attr-defined]
        out = text(kplug(connected, "state mg-hook"))
        assert out.splitlines()[0] == "mg-hook 0.0.1: running"
        assert "  ! hook failed: onload failed: Error: nope" in out
    finally:
        kplug(connected, "unload mg-hook")
