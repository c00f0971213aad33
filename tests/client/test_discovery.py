"""Which server a notebook talks to when nobody said: KPLUG_LAB_URL, then the Jupyter server of this kernel."""

from __future__ import annotations

import pytest

from kplug_lab.client import Client, from_env, from_jupyter
from kplug_lab.client._discovery import discover


def test_env_variables_give_url_and_token() -> None:
    conn = from_env({"KPLUG_LAB_URL": "http://127.0.0.1:9/", "KPLUG_LAB_TOKEN": "t"})
    assert conn is not None and (conn.url, conn.token, conn.source) == ("http://127.0.0.1:9/", "t", "KPLUG_LAB_URL")
    assert from_env({}) is None


def test_jupyter_server_is_matched_on_parent_pid_and_keeps_its_base_url() -> None:
    servers = [
        {"pid": 11, "url": "http://127.0.0.1:8888/", "base_url": "/", "token": "a"},
        {"pid": 22, "url": "http://127.0.0.1:8889/lab/x/", "base_url": "/lab/x/", "token": "b"},
        {"pid": 33, "url": "http://127.0.0.1:8890/", "base_url": "/jh/", "token": ""},
    ]
    conn = from_jupyter(22, servers)
    assert conn is not None and (conn.url, conn.token) == ("http://127.0.0.1:8889/lab/x/", "b")
    conn = from_jupyter(33, servers)
    assert conn is not None and (conn.url, conn.token) == ("http://127.0.0.1:8890/jh/", None)
    assert from_jupyter(44, servers) is None


def test_env_wins_over_jupyter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPLUG_LAB_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("JPY_PARENT_PID", "1")
    conn = discover()
    assert conn is not None and conn.source == "KPLUG_LAB_URL"


def test_bad_url_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"http://127\.0\.0\.1:8765/"):
        Client("127.0.0.1:8765")
