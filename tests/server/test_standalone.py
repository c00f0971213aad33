"""Standalone mode's auth and base URL on every route (what tests/rpc/test_wire.py does not cover):
the same behaviours tests/server/test_jupyter.py checks in Jupyter mode."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from kplug_testing import Host, free_port

from kplug_lab.rpc.app import make_routes, make_standalone_app

TOKEN = "admin-token"
CALL_TOKEN = "call-only"
AUTH_FAILED = {"code": -1, "msg": "Auth failed [session=0]", "data": None}
BASE = "/deep/base/"

PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a));
siyuan.server.private.http.handler = async (req) => ({
  statusCode: 200, body: { data: { type: "JSON", data: { path: req.context.path } } } });
"""

ROUTES = [
    ("POST", "api/plugin/rpc/p", '{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}'),
    ("GET", "api/plugin/rpc/p", None),
    ("POST", "api/plugin/getLoadedPlugin", '{"name":"p"}'),
    ("GET", "api/plugin", None),
    ("POST", "api/plugin/listLoadedPlugins", ""),
    ("GET", "plugin/private/p/x", None),
    ("POST", "kplug/api/rpc", '{"jsonrpc":"2.0","id":1,"method":"kplug.list"}'),
]


class Server:
    def __init__(self, port: int) -> None:
        self.root = f"http://127.0.0.1:{port}"
        self.url = self.root + BASE
        self.ws = f"ws://127.0.0.1:{port}{BASE}"
        self.http = httpx.AsyncClient(trust_env=False)

    async def request(self, method: str, path: str, body: str | None = None, token: str | None = TOKEN,
                      **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return await self.http.request(method, self.url + path, content=body, headers=headers, **kwargs)


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    host.plugin("p", PLUGIN)
    await host.start()
    assert host.manager is not None
    port = free_port()
    srv = make_standalone_app(host.manager, TOKEN, call_token=CALL_TOKEN, base_url=BASE).listen(
        port, address="127.0.0.1")
    s = Server(port)
    yield s
    await s.http.aclose()
    srv.stop()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_every_route_answers_under_the_base_url_and_not_at_the_root(
        server: Server, method: str, path: str, body: str | None) -> None:
    r = await server.request(method, path, body)
    assert r.status_code == 200, r.text
    assert (await server.http.request(method, server.root + "/" + path, content=body,
                                      headers={"Authorization": f"Token {TOKEN}"})).status_code == 404


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_anonymous_and_wrong_tokens_get_siyuans_401(server: Server, method: str, path: str,
                                                          body: str | None) -> None:
    for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
        r = await server.request(method, path, body, token=token)
        assert r.status_code == 401 and r.json() == AUTH_FAILED, (token, r.status_code)
    r = await server.http.request(method, server.url + path, content=body, headers={"Authorization": TOKEN})
    assert r.status_code == 401, "a token without a scheme is refused"


async def test_call_only_token_calls_and_reads_but_not_admin_or_private(server: Server) -> None:
    r = await server.request(*ROUTES[0], token=CALL_TOKEN)
    assert r.json()["result"] == 1
    assert (await server.request("GET", "api/plugin", token=CALL_TOKEN)).json()["code"] == 0
    assert (await server.request("GET", "api/plugin/rpc/p", token=CALL_TOKEN)).json()["data"]["name"] == "p"
    assert (await server.request(*ROUTES[6], token=CALL_TOKEN)).status_code == 403
    assert (await server.request("GET", "plugin/private/p/x", token=CALL_TOKEN)).status_code == 403


async def test_websockets_refuse_anonymous_and_call_only_admin(server: Server) -> None:
    for path in ("ws/plugin/rpc/p", "kplug/api/ws"):
        for headers in ({}, {"Authorization": "Token wrong"}):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with websockets.connect(server.ws + path, additional_headers=headers):
                    pass
            assert info.value.response.status_code == 401
            assert json.loads(info.value.response.body or b"{}") == AUTH_FAILED
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(server.ws + "kplug/api/ws",
                                      additional_headers={"Authorization": f"Token {CALL_TOKEN}"}):
            pass
    assert info.value.response.status_code == 403


async def test_websockets_accept_the_token_in_the_query_and_the_call_only_token(server: Server) -> None:
    async with websockets.connect(f"{server.ws}ws/plugin/rpc/p?token={TOKEN}") as ws:
        await ws.send('{"jsonrpc":"2.0","id":1,"method":"echo","params":["q"]}')
        assert json.loads(await ws.recv())["result"] == "q"
    async with websockets.connect(server.ws + "ws/plugin/rpc/p",
                                  additional_headers={"Authorization": f"Bearer {CALL_TOKEN}"}) as ws:
        await ws.send('{"jsonrpc":"2.0","id":2,"method":"echo","params":["c"]}')
        assert json.loads(await ws.recv())["result"] == "c"
    async with websockets.connect(f"{server.ws}kplug/api/ws?token={TOKEN}") as ws:
        await ws.send('{"jsonrpc":"2.0","id":3,"method":"kplug.state","params":["p"]}')
        assert json.loads(await ws.recv())["result"]["state"] == "running"


async def test_an_app_without_an_auth_policy_refuses_everything(host: Host) -> None:
    """Fail closed: handlers mounted without ``kplug_auth`` (and not in Jupyter mode) serve nobody."""
    import tornado.web

    host.plugin("p", PLUGIN)
    await host.start()
    port = free_port()
    srv = tornado.web.Application(make_routes("/"), kplug_host=host.manager).listen(port, address="127.0.0.1")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            for method, path, body in ROUTES:
                r = await client.request(method, "/" + path, content=body,
                                         headers={"Authorization": f"Token {TOKEN}"})
                assert r.status_code == 401, path
    finally:
        srv.stop()
