"""The blocking client against a real ``kplug serve``: calls, notifications, batches, errors, admin API, WebSocket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kplug_testing import free_port, write_plugin

from kplug_lab.client import (
    AuthenticationFailed,
    CallFailed,
    Client,
    ConnectionFailed,
    InvalidParamsError,
    MethodNotFoundError,
    Notification,
    PluginNotLoadedError,
    PluginNotRunningError,
    RPCError,
)
from kplug_lab.errors import MethodNotFound, PluginNotLoaded
from kplug_lab.notebook._process import ServerProcess


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=30) as c:
        yield c


def test_call_spreads_positional_arguments_and_passes_keywords_as_one_object(client: Client) -> None:
    assert client.call("hello", "echo", "hi") == "hi"
    assert client.call("hello", "echo", 1, [2], {"a": None}) == [1, [2], {"a": None}]
    assert client.call("hello", "echo", who="Ada", n=2) == {"who": "Ada", "n": 2}
    assert client.call("hello", "greet", "Ada") == "Hello, Ada!"


def test_positional_and_keyword_arguments_together_are_refused_before_sending(client: Client) -> None:
    with pytest.raises(TypeError, match="not both"):
        client.call("hello", "echo", 1, x=2)


def test_notification_runs_the_method_and_returns_nothing(client: Client) -> None:
    before = client.call("counter", "get")["value"]
    client.notify("counter", "increment", 5)
    assert client.call("counter", "get")["value"] == before + 5


def test_batch_returns_results_and_errors_in_call_order(client: Client) -> None:
    out = (client.batch("hello").call("echo", 1).notify("echo", "ignored").call("nope")
           .call("echo", "last").send())
    assert out[0] == 1
    assert isinstance(out[1], MethodNotFoundError) and out[1].code == -32601
    assert out[2] == "last"
    assert len(out) == 3


def test_errors_are_mapped_by_json_rpc_code_and_name_the_call(client: Client) -> None:
    with pytest.raises(PluginNotLoadedError) as info:
        client.call("no-such-plugin", "echo")
    assert info.value.code == -32001 and isinstance(info.value, PluginNotLoaded)
    assert "no-such-plugin.echo" in str(info.value)
    with pytest.raises(MethodNotFoundError) as mnf:
        client.call("hello", "nope")
    assert isinstance(mnf.value, MethodNotFound) and mnf.value.code == -32601
    with pytest.raises(CallFailed) as failed:
        client.call("counter", "increment", "not a number")
    assert failed.value.code == -32603 and "by must be a finite number" in str(failed.value)
    with pytest.raises(InvalidParamsError):
        client.admin("kplug.state")  # name missing


def test_errors_render_a_one_line_traceback_in_notebooks(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        client.call("hello", "nope")
    lines = info.value._render_traceback_()  # type: ignore[attr-defined]
    assert len(lines) == 1 and "MethodNotFoundError" in lines[0] and "hello.nope" in lines[0]


def test_wrong_token_raises_authentication_failed(server: ServerProcess) -> None:
    with Client(server.url, "wrong") as c, pytest.raises(AuthenticationFailed) as info:
        c.call("hello", "echo", 1)
    assert info.value.status == 401


def test_unreachable_server_raises_connection_failed() -> None:
    with Client(f"http://127.0.0.1:{free_port()}/", "t", timeout=5) as c, pytest.raises(ConnectionFailed) as info:
        c.list_plugins()
    assert "is the server running" in str(info.value)


def test_history_records_each_call_with_its_outcome(client: Client) -> None:
    client.history.clear()
    client.call("hello", "echo", 7)
    with pytest.raises(RPCError):
        client.call("hello", "nope")
    first, second = client.history.records()
    assert (first.target, first.params, first.ok, first.result) == ("hello.echo", [7], True, 7)
    assert second.target == "hello.nope" and not second.ok and "Method not found" in (second.error or "")
    assert first.seconds >= 0


def test_admin_api_lists_states_logs_tools_and_discovers(client: Client) -> None:
    names = {p.name: p for p in client.list_plugins()}
    assert {"hello", "counter", "heartbeat"} <= set(names)
    hello = client.state("hello")
    assert hello.state == "running" and hello.state_code == 2
    assert "greet" in [m.name for m in hello.methods]
    client.call("hello", "greet", "Logs")
    assert any("greeted Logs" in r.message for r in client.logs("hello"))
    assert isinstance(client.tools(), list)
    assert any(m["name"] == "hello.greet" for m in client.discover()["methods"])
    with pytest.raises(PluginNotLoadedError):
        client.state("no-such-plugin")


def test_eval_runs_js_inside_the_plugin(client: Client) -> None:
    assert client.eval("hello", "siyuan.plugin.name + ':' + (1 + 2)") == "hello:3"


def test_load_reload_unload_a_plugin_folder(client: Client, tmp_path: Path) -> None:
    d = write_plugin(tmp_path, "cl-temp", 'siyuan.rpc.bind("v", () => 1);')
    assert client.load(str(d)).state == "running"
    assert client.call("cl-temp", "v") == 1
    (d / "kernel.js").write_text('siyuan.rpc.bind("v", () => 2);')
    assert client.reload("cl-temp").state == "running"
    assert client.call("cl-temp", "v") == 2
    client.unload("cl-temp")
    with pytest.raises((PluginNotLoadedError, PluginNotRunningError)):
        client.call("cl-temp", "v")


def test_sync_client_works_inside_a_running_event_loop(client: Client) -> None:
    async def inside_loop() -> object:
        return client.call("hello", "echo", "from a coroutine")

    assert asyncio.run(inside_loop()) == "from a coroutine"


def test_websocket_calls_batches_and_broadcast_notifications(client: Client) -> None:
    with client.connect("counter") as ws:
        start = ws.call("get")["value"]
        after = ws.call("increment", 2)
        assert after["value"] == start + 2
        note = ws.next_notification(10)
        assert note == Notification("changed", after)
        assert ws.batch().call("get").call("nope").send()[0]["value"] == start + 2
        with pytest.raises(MethodNotFoundError):
            ws.call("nope")


def test_websocket_to_unknown_plugin_raises_plugin_not_loaded(client: Client) -> None:
    with pytest.raises(PluginNotLoadedError):
        client.connect("no-such-plugin")


def test_websocket_closes_when_the_plugin_is_unloaded(client: Client, tmp_path: Path) -> None:
    d = write_plugin(tmp_path, "cl-ws", 'siyuan.rpc.bind("v", () => 1);')
    client.load(str(d))
    ws = client.connect("cl-ws")
    assert ws.call("v") == 1
    client.unload("cl-ws")
    started = time.monotonic()
    assert list(ws.notifications(timeout=30)) == []  # ends with the socket, not at the timeout
    assert time.monotonic() - started < 20
    assert ws.closed
    with pytest.raises(ConnectionFailed, match="no more notifications: the server closed the WebSocket"):
        ws.next_notification(timeout=30)
    with pytest.raises(ConnectionFailed):
        ws.call("v")
    ws.close()


def test_admin_socket_streams_state_and_log_notifications(client: Client, tmp_path: Path) -> None:
    d = write_plugin(tmp_path, "cl-admin", 'siyuan.rpc.bind("say", (t) => siyuan.logger.info(t));')
    client.load(str(d))
    with client.admin_socket() as admin:
        assert admin.subscribe(["state", "log"]) == ["state", "log"]
        client.call("cl-admin", "say", "ping from test")
        client.reload("cl-admin")
        seen = []
        for note in admin.notifications(timeout=5):
            seen.append(note)
            if any(n.method == "kplug.state" and n.params["state"] == "running" for n in seen):
                break
    logs = [n.params["message"] for n in seen if n.method == "kplug.log"]
    states = [n.params["state"] for n in seen if n.method == "kplug.state" and n.params["name"] == "cl-admin"]
    assert "ping from test" in logs
    assert states[-1] == "running" and "stopped" in states
    client.unload("cl-admin")


def test_server_gone_mid_session_raises_connection_failed(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    proc = ServerProcess(tmp_path / "plugins", data=tmp_path / "data").start()
    with Client(proc.url, proc.token, timeout=10) as c:
        assert c.list_plugins() == []
        proc.stop()
        with pytest.raises(ConnectionFailed):
            c.list_plugins()
