"""kplug_lab as a jupyter_server extension: every route under the server's base URL, with the server's auth.

Runs with ``JUPYTER_SERVER_ALLOW_UNAUTHENTICATED_ACCESS=false`` so a handler method missing its auth
decorator is refused by the server itself and the anonymous-request tests fail.

pytest-jupyter's fixtures run their own asyncio loop (``jp_asyncio_loop``), which pytest-asyncio does not
know: these tests are plain functions that drive that loop with :func:`run`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tornado.httpclient
import tornado.websocket
from jupyter_core.paths import jupyter_data_dir
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.utils import url_path_join
from kplug_testing import write_plugin
from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's server fixtures, for this module only)

from kplug_lab.server.extension import KplugLabApp

T = TypeVar("T")
CALL_TOKEN = "kplug-call-only-secret"

PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a), "echoes");
siyuan.rpc.bind("shout", async (n) => {
  for (let i = 0; i < n; i++) await siyuan.rpc.broadcast("tick", [i]);
  return n;
});
siyuan.server.private.http.handler = async (req) => ({
  statusCode: 200, body: { data: { type: "JSON", data: { path: req.context.path } } } });
siyuan.plugin.lifecycle.onunload = async () => { await siyuan.storage.put("unloaded.txt", "bye"); };
"""


class NoAdmin(Authorizer):
    """A server authorizer that grants everything except ``write`` on ``kplug``."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (resource == "kplug" and action == "write")


@pytest.fixture(autouse=True)
def _strict_server_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_SERVER_ALLOW_UNAUTHENTICATED_ACCESS", "false")


@pytest.fixture
def authorizer_class() -> type[Authorizer] | None:
    return None


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    root = tmp_path / "kplug-plugins"
    write_plugin(root, "p", PLUGIN)
    write_plugin(root, "other", "siyuan.rpc.bind('ping', () => 'pong');")
    return root


@pytest.fixture
def jp_server_config(plugins_dir: Path, tmp_path: Path, authorizer_class: type[Authorizer] | None) -> dict[str, Any]:
    server: dict[str, Any] = {"jpserver_extensions": {"kplug_lab": True, "jupyter_server_terminals": False}}
    if authorizer_class is not None:
        server["authorizer_class"] = authorizer_class
    return {
        "ServerApp": server,
        "KplugLabApp": {"plugins_dir": str(plugins_dir), "data_dir": str(tmp_path / "kplug-data"),
                        "hot_reload": False, "call_token": CALL_TOKEN, "call_timeout": 5.0,
                        "max_request_bytes": 4096, "proxy_allow_private": True, "follow_caller_cpu": False},
    }


@pytest.fixture
def run(jp_asyncio_loop: Any) -> Callable[[Awaitable[T]], T]:
    return jp_asyncio_loop.run_until_complete  # type: ignore[no-any-return]


@pytest.fixture
def kplug(jp_serverapp: Any, run: Callable[[Awaitable[Any]], Any]) -> Iterator[KplugLabApp]:
    """The extension, started as ``_start_jupyter_server_extension`` would (pytest-jupyter does not call it)."""
    app = jp_serverapp.extension_manager.extension_points["kplug_lab"].app
    assert isinstance(app, KplugLabApp)
    run(app.start_extension())
    yield app
    run(app.stop_extension())


@pytest.fixture
def fetch(jp_fetch: Any, run: Callable[[Awaitable[Any]], Any], kplug: KplugLabApp) -> Callable[..., Any]:
    """``fetch("api/plugin", method=..., body=..., headers=...)``: the response, whatever its status."""

    def fetch_(path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("raise_error", False)
        if kwargs.get("method") == "POST":
            kwargs.setdefault("body", b"")
        return run(jp_fetch(*path.split("/"), **kwargs))

    return fetch_


def rpc(method: str, *params: Any, id_: int = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)})


def body(response: Any) -> Any:
    return json.loads(response.body)


ANON = {"Authorization": ""}
CALL_ONLY = {"Authorization": f"token {CALL_TOKEN}"}


def test_the_extension_is_configured_from_traits_and_the_server_refuses_anonymous_access(
        jp_serverapp: Any, kplug: KplugLabApp, plugins_dir: Path) -> None:
    assert jp_serverapp.allow_unauthenticated_access is False
    assert kplug.plugins_dir == str(plugins_dir) and kplug.max_request_bytes == 4096
    assert kplug.manager is not None
    assert sorted(i.name for i in kplug.manager.list_plugins()) == ["other", "p"]
    assert kplug.manager.config.call_timeout == 5.0 and kplug.manager.config.hot_reload is False
    assert kplug.manager.config.follow_caller_cpu is False
    assert jp_serverapp.web_app.settings["kplug_proxy_allow_private"] is True


@pytest.mark.parametrize("jp_base_url", ["/", "/a%40b/", "/deep/base/"])
def test_every_route_answers_under_the_base_url(jp_base_url: str, fetch: Callable[..., Any]) -> None:
    r = fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", "hi"))
    assert r.code == 200 and body(r) == {"jsonrpc": "2.0", "result": "hi", "id": 1}
    r = fetch("api/plugin/rpc", method="POST", params={"name": "p"}, body=rpc("echo", 2))
    assert body(r)["result"] == 2
    r = fetch("api/plugin/rpc", method="POST", params={"name": "p"},
              body='{"jsonrpc":"2.0","method":"echo","params":[1]}')
    assert r.code == 204
    assert body(fetch("api/plugin/rpc/p"))["data"]["name"] == "p"
    assert body(fetch("api/plugin/rpc", params={"name": "p"}))["data"]["state"] == "running"
    assert body(fetch("api/plugin/getLoadedPlugin", method="POST", body='{"name":"other"}'))["code"] == 0
    assert sorted(i["name"] for i in body(fetch("api/plugin"))["data"]) == ["other", "p"]
    assert len(body(fetch("api/plugin/listLoadedPlugins", method="POST"))["data"]) == 2
    r = fetch("plugin/private/p/some/where")
    assert r.code == 200 and body(r) == {"path": "/some/where"}
    r = fetch("kplug/api/rpc", method="POST", body=rpc("kplug.call", "other", "ping", []))
    assert body(r)["result"] == "pong"


def test_a_route_outside_the_base_url_is_not_served(jp_serverapp: Any, kplug: KplugLabApp,
                                                    http_server_client: Any, jp_auth_header: dict[str, str],
                                                    run: Callable[[Awaitable[Any]], Any]) -> None:
    r = run(http_server_client.fetch("/api/plugin", headers=jp_auth_header, raise_error=False))
    assert r.code == 404


def test_plugin_call_errors_and_request_limit_are_the_standalone_ones(fetch: Callable[..., Any]) -> None:
    r = fetch("api/plugin/rpc/missing", method="POST", body=rpc("echo"))
    assert body(r) == {"jsonrpc": "2.0", "error": {"code": -32001, "message": "Plugin not loaded"}, "id": None}
    r = fetch("api/plugin/rpc/p", method="POST", body=rpc("nope"))
    assert body(r)["error"]["code"] == -32601
    r = fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", "x" * 5000))
    assert r.code == 413 and "too large" in body(r)["error"]["data"]


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("POST", "api/plugin/rpc/p", rpc("echo", 1)),
    ("GET", "api/plugin/rpc/p", None),
    ("POST", "api/plugin/getLoadedPlugin", '{"name":"p"}'),
    ("GET", "api/plugin", None),
    ("POST", "api/plugin/listLoadedPlugins", ""),
    ("GET", "plugin/private/p/x", None),
    ("POST", "plugin/private/p/x", "data"),
    ("POST", "kplug/api/rpc", rpc("kplug.list")),
    ("GET", "ws/plugin/rpc/p", None),
    ("GET", "kplug/api/ws", None),
])
def test_anonymous_and_wrong_token_requests_are_refused(fetch: Callable[..., Any], method: str, path: str,
                                                        payload: str | None) -> None:
    for headers in (ANON, {"Authorization": "token wrong"}, {"Authorization": "Bearer wrong"}):
        r = fetch(path, method=method, body=payload, headers=headers, follow_redirects=False)
        assert r.code == 403, (path, headers, r.code)
        assert body(r)["code"] == -1


def test_token_in_header_or_query_is_accepted(fetch: Callable[..., Any], jp_serverapp: Any) -> None:
    token = jp_serverapp.identity_provider.token
    for headers in ({"Authorization": f"token {token}"}, {"Authorization": f"Bearer {token}"},
                    {"Authorization": f"Token {token}"}):
        assert body(fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", 5), headers=headers))["result"] == 5
    r = fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", 6), headers=ANON, params={"token": token})
    assert body(r)["result"] == 6


def _cookies(response: Any) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return {k: v.value for k, v in jar.items()}


@pytest.fixture
def browser(fetch: Callable[..., Any], jp_serverapp: Any) -> dict[str, str]:
    """A browser session: the login page's XSRF cookie, then a password login with the server token."""
    login = fetch("login", headers=ANON)
    xsrf = _cookies(login)["_xsrf"]
    r = fetch("login", method="POST", headers={**ANON, "Cookie": f"_xsrf={xsrf}"}, follow_redirects=False,
              body=f"password={jp_serverapp.identity_provider.token}&_xsrf={xsrf}")
    assert r.code == 302, r.code
    cookies = {**_cookies(r), "_xsrf": xsrf}
    return {"xsrf": xsrf, "cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def test_browser_cookie_auth_needs_the_xsrf_token_on_post(fetch: Callable[..., Any], browser: dict[str, str]) -> None:
    cookie_only = {**ANON, "Cookie": browser["cookie"]}
    assert body(fetch("api/plugin/rpc/p", headers=cookie_only))["data"]["name"] == "p"
    r = fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", 1), headers=cookie_only)
    assert r.code == 403 and "_xsrf" in body(r)["msg"]
    r = fetch("kplug/api/rpc", method="POST", body=rpc("kplug.list"), headers=cookie_only)
    assert r.code == 403
    with_xsrf = {**cookie_only, "X-XSRFToken": browser["xsrf"]}
    r = fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", 1), headers=with_xsrf)
    assert r.code == 200 and body(r)["result"] == 1
    r = fetch("kplug/api/rpc", method="POST", body=rpc("kplug.list"), headers=with_xsrf)
    assert sorted(p["name"] for p in body(r)["result"]) == ["other", "p"]


def test_call_only_token_calls_and_reads_but_is_refused_the_admin_api_and_the_rest_of_the_server(
        fetch: Callable[..., Any]) -> None:
    assert body(fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", 3), headers=CALL_ONLY))["result"] == 3
    r = fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", 4), headers=ANON, params={"token": CALL_TOKEN})
    assert body(r)["result"] == 4
    assert body(fetch("api/plugin", headers=CALL_ONLY))["code"] == 0
    assert fetch("kplug/api/rpc", method="POST", body=rpc("kplug.list"), headers=CALL_ONLY).code == 403
    assert fetch("plugin/private/p/x", headers=CALL_ONLY).code == 403
    assert fetch("api/contents", headers=CALL_ONLY).code == 403
    assert fetch("api/me", headers=CALL_ONLY).code == 403


@pytest.mark.parametrize("authorizer_class", [NoAdmin])
def test_the_server_authorizer_decides_per_action(fetch: Callable[..., Any]) -> None:
    assert body(fetch("api/plugin/rpc/p", method="POST", body=rpc("echo", 1)))["result"] == 1
    assert body(fetch("api/plugin"))["code"] == 0
    r = fetch("kplug/api/rpc", method="POST", body=rpc("kplug.list"))
    assert r.code == 403 and body(r)["msg"] == "User is not authorized to write on resource: kplug."
    assert fetch("plugin/private/p/x").code == 403


def _ws_url(jp_http_port: int, jp_base_url: str, path: str) -> str:
    # 127.0.0.1 as for the HTTP fetches: the login cookie's name contains the host it was set for
    return f"ws://127.0.0.1:{jp_http_port}" + url_path_join(jp_base_url, path)


def _ws_connect(run: Callable[[Awaitable[Any]], Any], url: str, headers: dict[str, str]) -> Any:
    return run(tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, headers=headers)))


def _ws_refused(run: Callable[[Awaitable[Any]], Any], url: str, headers: dict[str, str]) -> int:
    request = tornado.httpclient.HTTPRequest(url, headers=headers)
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        run(tornado.websocket.websocket_connect(request))
    return info.value.code


def test_websocket_plugin_calls_and_broadcasts(kplug: KplugLabApp, jp_ws_fetch: Any,
                                               run: Callable[[Awaitable[Any]], Any]) -> None:
    ws = run(jp_ws_fetch("ws", "plugin", "rpc", "p"))
    ws.write_message(rpc("shout", 2, id_=9))
    got = [json.loads(run(ws.read_message())) for _ in range(3)]
    assert [m["params"] for m in got if m.get("method") == "tick"] == [[0], [1]]
    assert {"jsonrpc": "2.0", "result": 2, "id": 9} in got
    ws.close()


def test_websocket_admin_api(kplug: KplugLabApp, jp_ws_fetch: Any, run: Callable[[Awaitable[Any]], Any]) -> None:
    ws = run(jp_ws_fetch("kplug", "api", "ws"))
    ws.write_message(rpc("kplug.state", "p"))
    assert json.loads(run(ws.read_message()))["result"]["state"] == "running"
    ws.close()


def test_websockets_refuse_anonymous_wrong_origin_and_call_only_admin(
        kplug: KplugLabApp, jp_http_port: int, jp_base_url: str, run: Callable[[Awaitable[Any]], Any],
        browser: dict[str, str], jp_ws_fetch: Any) -> None:
    for path in ("ws/plugin/rpc/p", "kplug/api/ws"):
        url = _ws_url(jp_http_port, jp_base_url, path)
        assert _ws_refused(run, url, {}) == 403
        assert _ws_refused(run, url, {"Authorization": "token wrong"}) == 403
        # a browser's cookie from another site's page: the server's origin check refuses it (SiYuan's 400 on the
        # plugin RPC socket, changes §3; the admin socket is kplug_lab's own and keeps tornado's 403)
        cross_site = 400 if path.startswith("ws/") else 403
        assert _ws_refused(run, url, {"Cookie": browser["cookie"], "Origin": "http://evil.example"}) == cross_site
    assert _ws_refused(run, _ws_url(jp_http_port, jp_base_url, "kplug/api/ws"), CALL_ONLY) == 403
    # same-origin browser page with its cookie, and the call-only token, may call plugins
    url = _ws_url(jp_http_port, jp_base_url, "ws/plugin/rpc/p")
    ws = _ws_connect(run, url, {"Cookie": browser["cookie"], "Origin": f"http://127.0.0.1:{jp_http_port}"})
    ws.write_message(rpc("echo", "cookie"))
    assert json.loads(run(ws.read_message()))["result"] == "cookie"
    ws.close()
    ws = run(jp_ws_fetch("ws", "plugin", "rpc", "p", headers=CALL_ONLY))
    ws.write_message(rpc("echo", "call-only"))
    assert json.loads(run(ws.read_message()))["result"] == "call-only"
    ws.close()


def test_stop_extension_runs_every_onunload(kplug: KplugLabApp, tmp_path: Path,
                                            run: Callable[[Awaitable[Any]], Any]) -> None:
    marker = tmp_path / "kplug-data" / "storage" / "p" / "unloaded.txt"
    assert not marker.exists()
    run(kplug.stop_extension())
    assert marker.read_text() == "bye"
    assert kplug.manager is not None and kplug.manager.list_plugins() == []
    run(kplug.stop_extension())  # idempotent: the server's own shutdown calls it again


def test_start_extension_starts_plugins_once(kplug: KplugLabApp, run: Callable[[Awaitable[Any]], Any]) -> None:
    assert kplug.manager is not None
    before = {name: id(p) for name, p in kplug.manager.plugins.items()}
    run(kplug._start_jupyter_server_extension(None))
    assert {name: id(p) for name, p in kplug.manager.plugins.items()} == before


def test_the_server_finds_no_route_without_an_auth_decorator(jp_serverapp: Any) -> None:
    from kplug_lab.server.handlers import jupyter_routes

    undecorated = [m for pattern, cls, *_ in jupyter_routes()
                   for m in jp_serverapp.web_app._check_handler_auth(pattern, cls)]
    assert undecorated == []


def test_the_browser_client_script_is_public(fetch: Callable[..., Any]) -> None:
    r = fetch("kplug/static/kplug-client.js", headers=ANON)
    assert r.code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert fetch("kplug/static/missing.js", headers=ANON).code == 404


@pytest.mark.parametrize("jp_server_config", [
    {"ServerApp": {"jpserver_extensions": {"kplug_lab": True, "jupyter_server_terminals": False}}}])
def test_without_a_plugin_folder_the_extension_serves_an_empty_list(fetch: Callable[..., Any],
                                                                     kplug: KplugLabApp) -> None:
    assert kplug.workspace == "" and kplug.plugins_dir == ""
    assert kplug.manager is not None and kplug.manager.data_dir == Path(jupyter_data_dir()) / "kplug_lab"
    assert body(fetch("api/plugin")) == {"code": 0, "msg": "", "data": None}
    assert body(fetch("api/plugin/rpc/p", method="POST", body=rpc("echo")))["error"]["code"] == -32001


@pytest.mark.parametrize(("traits", "message"), [
    ({"workspace": ".", "plugins_dir": "."}, "set workspace or plugins_dir, not both"),
    ({"plugins_dir": "/nonexistent/kplug"}, "KplugLabApp.plugins_dir: /nonexistent/kplug is not a directory"),
    ({"call_token": "SERVER"}, "call_token must differ from the server's token"),
])
def test_bad_configuration_is_a_clear_error(jp_serverapp: Any, traits: dict[str, str], message: str) -> None:
    traits = {k: jp_serverapp.identity_provider.token if v == "SERVER" else v for k, v in traits.items()}
    app = KplugLabApp(**traits)
    app.serverapp = jp_serverapp
    with pytest.raises(ValueError, match=message):
        app.initialize_settings()


def test_every_standalone_route_has_a_declared_jupyter_permission() -> None:
    """A new route falls back to ``write`` (admin-only); this makes its author choose on purpose."""
    from kplug_lab.rpc.app import make_routes
    from kplug_lab.server.handlers import ACTIONS

    unclassified = sorted({cls.__name__ for _, cls, *_ in make_routes("/") if cls not in ACTIONS})
    assert unclassified == [], f"add these handlers to kplug_lab.server.handlers.ACTIONS: {unclassified}"


def test_websocket_token_as_a_subprotocol_as_kplug_client_js_sends_it(
        fetch: Callable[..., Any], jp_http_port: int, jp_base_url: str, jp_serverapp: Any,
        run: Callable[[Awaitable[Any]], Any]) -> None:
    import base64

    url = _ws_url(jp_http_port, jp_base_url, "ws/plugin/rpc/p")
    encoded = base64.urlsafe_b64encode(jp_serverapp.identity_provider.token.encode()).decode().rstrip("=")
    request = tornado.httpclient.HTTPRequest(url, request_timeout=10)
    ws = run(tornado.websocket.websocket_connect(request, subprotocols=["kplug", f"kplug.token.{encoded}"]))
    assert ws.selected_subprotocol == "kplug"
    ws.write_message(rpc("echo", "sub"))
    assert json.loads(run(ws.read_message()))["result"] == "sub"
    ws.close()
    with pytest.raises(tornado.httpclient.HTTPClientError):
        run(tornado.websocket.websocket_connect(request, subprotocols=["kplug", "kplug.token.d3Jvbmc"]))


def test_the_siyuan_strict_trait_is_the_host_configs(tmp_path: Path) -> None:
    """``c.KplugLabApp.siyuan_strict = True`` makes the host SiYuan-strict (tests/host/test_portability.py)."""
    assert KplugLabApp(plugins_dir=str(tmp_path)).host_config().siyuan_strict is False
    assert KplugLabApp(plugins_dir=str(tmp_path), siyuan_strict=True).host_config().siyuan_strict is True
