"""The inspector widget built headlessly against a real server: its buttons make real calls, and it shows them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from kplug_testing import write_plugin

from kplug_lab.client import Client
from kplug_lab.notebook._inspector import Inspector
from kplug_lab.notebook._process import ServerProcess


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token) as c:
        yield c


def eventually(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_shows_plugins_state_and_methods_with_descriptions(client: Client) -> None:
    with closing(Inspector(client, select="hello", live=False)) as ins:
        assert {"hello", "counter", "heartbeat"} <= set(ins.plugin_select.options)
        assert "running" in ins.state_html.value
        assert "greet" in ins.methods_html.value and "Greets someone and stores the greeting" in ins.methods_html.value
        assert "greet" in ins.method_select.options
        assert ins.method_select.value == ins.method_select.options[0]  # Call works without choosing first
        ins.plugin_select.value = "counter"
        assert "increment" in ins.methods_html.value and "hello" not in ins.state_html.value
        assert ins.method_select.value == ins.method_select.options[0]


def test_call_button_calls_the_method_and_shows_result_and_timing(client: Client) -> None:
    with closing(Inspector(client, select="hello", live=False)) as ins:
        client.history.clear()
        ins.method_select.value = "greet"
        ins.args_text.value = '"Widget"'
        ins.call_button.click()
        assert "Hello, Widget!" in ins.result_html.value
        last = client.history.records()[-1]
        assert (last.target, last.params, last.result) == ("hello.greet", ["Widget"], "Hello, Widget!")
        assert "hello.greet" in ins.history_html.value and " ms</td>" in ins.history_html.value
        ins.args_text.value = "not json"
        ins.call_button.click()
        assert "not valid JSON" in ins.result_html.value
        ins.method_select.value = "echo"
        ins.args_text.value = "1 2"
        ins.call_button.click()
        assert json.loads(ins.result_html.value.removeprefix("<pre>").removesuffix("</pre>")) == [1, 2]


def test_call_errors_are_shown_not_raised(client: Client) -> None:
    with closing(Inspector(client, select="counter", live=False)) as ins:
        ins.method_select.value = "increment"
        ins.args_text.value = '"x"'
        ins.call_button.click()
        assert "CallFailed" in ins.result_html.value and "finite number" in ins.result_html.value
        assert "error:" in ins.history_html.value


def test_reload_and_unload_buttons_act_on_the_selected_plugin(client: Client, tmp_path: Path) -> None:
    d = write_plugin(tmp_path, "ins-life", 'siyuan.rpc.bind("v", () => 1);')
    client.load(str(d))
    with closing(Inspector(client, select="ins-life", live=False)) as ins:
        (d / "kernel.js").write_text('siyuan.rpc.bind("v", () => 2); siyuan.rpc.bind("w", () => 3, "new");')
        ins.reload_button.click()
        assert client.call("ins-life", "v") == 2
        assert "w" in ins.method_select.options and "new" in ins.methods_html.value
        assert [r.target for r in client.history.records()[-2:]] == ["kplug.reload", "ins-life.v"]
        ins.unload_button.click()
        assert "ins-life" not in [p.name for p in client.list_plugins()]
        assert "not loaded" in ins.state_html.value


def test_live_log_view_and_state_follow_the_server(client: Client, tmp_path: Path) -> None:
    d = write_plugin(tmp_path, "ins-live", 'siyuan.rpc.bind("say", (t) => siyuan.logger.info(t));')
    client.load(str(d))
    with (closing(Inspector(client, select="ins-live", live=True)) as ins,
          Client(client.url, client.endpoint.token) as other):
        other.call("ins-live", "say", "live line from another client")
        eventually(lambda: "live line from another client" in ins.log_messages, "the log line")
        assert "live line from another client" in ins.log_view.value
        (d / "kernel.js").write_text('siyuan.rpc.bind("say", (t) => t); siyuan.rpc.bind("added", () => 1);')
        other.reload("ins-live")
        eventually(lambda: "added" in ins.method_select.options, "the reloaded plugin's methods")
        other.unload("ins-live")
        eventually(lambda: "running" not in ins.state_html.value, "the unloaded state")
