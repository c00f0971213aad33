"""CORS in Jupyter mode: the plugin routes follow jupyter_server's own ``allow_origin`` / ``allow_origin_pat``
(``--allow-origin`` is the standalone server's), preflight included.

pytest-jupyter's fixtures run their own asyncio loop: these tests are plain functions that drive it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kplug_testing import write_plugin
from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's server fixtures, for this module only)

from kplug_lab.server.extension import KplugLabApp

T = TypeVar("T")
SIYUAN = "http://127.0.0.1:6806"
EVIL = "http://evil.example"
ANON = {"Authorization": ""}
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["hi"]})


def preflight(origin: str) -> dict[str, str]:
    return {**ANON, "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.fixture(autouse=True)
def _strict_server_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_SERVER_ALLOW_UNAUTHENTICATED_ACCESS", "false")


@pytest.fixture
def server_cors() -> dict[str, Any]:
    return {"allow_origin": SIYUAN}


@pytest.fixture  # type: ignore[no-redef]
def jp_server_config(tmp_path: Path, server_cors: dict[str, Any]) -> dict[str, Any]:
    root = tmp_path / "kplug-plugins"
    write_plugin(root, "p", 'siyuan.rpc.bind("echo", (x) => x);')
    return {
        "ServerApp": {"jpserver_extensions": {"kplug_lab": True, "jupyter_server_terminals": False}, **server_cors},
        "KplugLabApp": {"plugins_dir": str(root), "data_dir": str(tmp_path / "kplug-data"), "hot_reload": False},
    }


@pytest.fixture
def run(jp_asyncio_loop: Any) -> Callable[[Awaitable[T]], T]:
    return jp_asyncio_loop.run_until_complete  # type: ignore[no-any-return]


@pytest.fixture
def fetch(jp_serverapp: Any, jp_fetch: Any, run: Callable[[Awaitable[Any]], Any]) -> Iterator[Callable[..., Any]]:
    app = jp_serverapp.extension_manager.extension_points["kplug_lab"].app
    assert isinstance(app, KplugLabApp)
    run(app.start_extension())

    def fetch_(path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("raise_error", False)
        return run(jp_fetch(*path.split("/"), **kwargs))

    yield fetch_
    run(app.stop_extension())


@pytest.mark.parametrize("path", ["api/plugin/rpc/p", "api/plugin/getLoadedPlugin", "api/plugin"])
def test_preflight_follows_the_servers_allow_origin(fetch: Callable[..., Any], path: str) -> None:
    r = fetch(path, method="OPTIONS", headers=preflight(SIYUAN))
    assert r.code in (200, 204)
    assert r.headers["Access-Control-Allow-Origin"] == SIYUAN
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in r.headers["Access-Control-Allow-Methods"]


def test_a_call_carries_the_servers_allow_origin(fetch: Callable[..., Any]) -> None:
    r = fetch("api/plugin/rpc/p", method="POST", body=CALL, headers={"Origin": SIYUAN})
    assert r.code == 200 and json.loads(r.body)["result"] == "hi"
    assert r.headers["Access-Control-Allow-Origin"] == SIYUAN


def test_the_preflight_does_not_open_the_call_itself(fetch: Callable[..., Any]) -> None:
    r = fetch("api/plugin/rpc/p", method="POST", body=CALL, headers={**ANON, "Origin": SIYUAN})
    assert r.code == 403


@pytest.mark.parametrize("server_cors", [{"allow_origin_pat": r"http://127\.0\.0\.1:\d+"}])
def test_allow_origin_pat_is_honoured_too(fetch: Callable[..., Any]) -> None:
    r = fetch("api/plugin/rpc/p", method="POST", body=CALL, headers={"Origin": SIYUAN})
    assert r.headers["Access-Control-Allow-Origin"] == SIYUAN
    r = fetch("api/plugin/rpc/p", method="POST", body=CALL, headers={"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("server_cors", [{}])
def test_without_allow_origin_a_preflight_gets_no_origin(fetch: Callable[..., Any]) -> None:
    r = fetch("api/plugin/rpc/p", method="OPTIONS", headers=preflight(SIYUAN))
    assert "Access-Control-Allow-Origin" not in r.headers
