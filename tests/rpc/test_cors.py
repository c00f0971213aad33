"""CORS for the standalone server (``kplug serve --allow-origin``): a page on SiYuan's origin calls the plugin
routes on another port (preflight, then the call); other origins and the admin API stay same-origin only.
Also the request size limit applied before the body is read (the same 413 as for a body that was read)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from kplug_testing import Host
from rpc_server import TOKEN, Server
from websockets.typing import Origin

from kplug_lab.protocol.jsonrpc import Limits
from kplug_lab.rpc.cors import CORSPolicy

SIYUAN = "http://127.0.0.1:6806"
EVIL = "http://evil.example"
PLUGIN = 'siyuan.rpc.bind("echo", (x) => x);'
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["hi"]})


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    """What a browser sends before a cross-origin call with a token and a JSON body: no credentials."""
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.fixture
async def served(host: Host, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    host.plugin("p", PLUGIN)
    await host.start()
    origins = getattr(request, "param", [SIYUAN])
    server = Server(host, allow_origins=origins, limits=Limits(max_body_bytes=4096))
    try:
        yield server
    finally:
        await server.close()


async def anonymous(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as client:
        return await client.request(method, path, **kwargs)


# ---- preflight and calls from an allowed origin -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/plugin/rpc/p", "/api/plugin/rpc?name=p", "/api/plugin/getLoadedPlugin",
                                  "/api/plugin/listLoadedPlugins", "/api/plugin"])
async def test_preflight_from_an_allowed_origin_is_answered_without_credentials(served: Server, path: str) -> None:
    r = await anonymous(served, "OPTIONS", path, headers=preflight(SIYUAN))
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == SIYUAN
    allowed_headers = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Origin" in r.headers["Vary"]


async def test_a_call_from_an_allowed_origin_carries_its_origin_back(served: Server) -> None:
    r = await served.http.post("/api/plugin/rpc/p", content=CALL,
                               headers={"Origin": SIYUAN, "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["result"] == "hi"
    assert r.headers["Access-Control-Allow-Origin"] == SIYUAN


@pytest.mark.parametrize("method,path", [("GET", "/api/plugin/rpc/p"), ("GET", "/api/plugin"),
                                         ("POST", "/api/plugin/listLoadedPlugins")])
async def test_plugin_info_and_list_answer_an_allowed_origin(served: Server, method: str, path: str) -> None:
    r = await served.http.request(method, path, headers={"Origin": SIYUAN})
    assert r.status_code == 200 and r.json()["code"] == 0
    assert r.headers["Access-Control-Allow-Origin"] == SIYUAN


async def test_refusals_carry_the_origin_too_so_the_page_can_read_why(served: Server) -> None:
    r = await anonymous(served, "POST", "/api/plugin/rpc/p", content=CALL, headers={"Origin": SIYUAN})
    assert r.status_code == 401 and r.json()["code"] == -1
    assert r.headers["Access-Control-Allow-Origin"] == SIYUAN


async def test_the_token_is_still_required_after_a_preflight(served: Server) -> None:
    assert (await anonymous(served, "OPTIONS", "/api/plugin/rpc/p", headers=preflight(SIYUAN))).status_code == 204
    r = await anonymous(served, "POST", "/api/plugin/rpc/p", content=CALL, headers={"Origin": SIYUAN})
    assert r.status_code == 401


# ---- other origins ------------------------------------------------------------------------------------------

async def test_preflight_from_another_origin_is_refused_and_says_how_to_allow_it(served: Server) -> None:
    r = await anonymous(served, "OPTIONS", "/api/plugin/rpc/p", headers=preflight(EVIL))
    assert r.status_code == 403
    assert "Access-Control-Allow-Origin" not in r.headers
    assert f"--allow-origin {EVIL}" in r.text


async def test_a_call_from_another_origin_gets_no_cors_header(served: Server) -> None:
    r = await served.http.post("/api/plugin/rpc/p", content=CALL, headers={"Origin": EVIL})
    assert r.status_code == 200  # answered (the token is valid), but a browser keeps it from the page
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("served", [[]], indirect=True)
async def test_by_default_no_other_origin_is_allowed(served: Server) -> None:
    r = await anonymous(served, "OPTIONS", "/api/plugin/rpc/p", headers=preflight(SIYUAN))
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = await served.http.post("/api/plugin/rpc/p", content=CALL, headers={"Origin": SIYUAN})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    assert "Vary" not in r.headers


@pytest.mark.parametrize("served", [["*"]], indirect=True)
async def test_star_allows_every_origin(served: Server) -> None:
    r = await anonymous(served, "OPTIONS", "/api/plugin/rpc/p", headers=preflight(EVIL))
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    r = await served.http.post("/api/plugin/rpc/p", content=CALL, headers={"Origin": EVIL})
    assert r.json()["result"] == "hi" and r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("served", [[SIYUAN, "http://localhost:3000"]], indirect=True)
async def test_several_origins_are_each_answered_with_their_own(served: Server) -> None:
    for origin in (SIYUAN, "http://localhost:3000"):
        r = await served.http.post("/api/plugin/rpc/p", content=CALL, headers={"Origin": origin})
        assert r.headers["Access-Control-Allow-Origin"] == origin


async def test_the_admin_api_stays_same_origin_only(served: Server) -> None:
    r = await anonymous(served, "OPTIONS", "/kplug/api/rpc", headers=preflight(SIYUAN))
    assert r.status_code == 401 and "Access-Control-Allow-Origin" not in r.headers
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "kplug.list"})
    r = await served.http.post("/kplug/api/rpc", content=body, headers={"Origin": SIYUAN})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


# ---- WebSockets (browsers apply no CORS to them: the server checks Origin) ---------------------------------

async def ws_call(server: Server, path: str, origin: str) -> Any:
    async with websockets.connect(f"{server.ws}{path}?token={TOKEN}", origin=Origin(origin)) as ws:
        await ws.send(CALL)
        return json.loads(await ws.recv())


async def test_a_websocket_from_an_allowed_origin_is_accepted(served: Server) -> None:
    assert (await ws_call(served, "/ws/plugin/rpc/p", SIYUAN))["result"] == "hi"
    assert (await ws_call(served, "/ws/plugin/rpc/p", served.url))["result"] == "hi"  # same origin, as before


async def test_a_websocket_from_another_origin_is_refused_with_400_as_siyuan_does(served: Server) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await ws_call(served, "/ws/plugin/rpc/p", EVIL)
    assert refused.value.response.status_code == 400  # changes §3 (tornado's own check says 403)


async def test_the_admin_websocket_refuses_even_an_allowed_origin(served: Server) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await ws_call(served, "/kplug/api/ws", SIYUAN)
    assert refused.value.response.status_code == 403


# ---- the allowed origins themselves -------------------------------------------------------------------------

@pytest.mark.parametrize("given,origin", [
    ("http://127.0.0.1:6806", "http://127.0.0.1:6806"),
    ("http://127.0.0.1:6806/", "http://127.0.0.1:6806"),
    ("HTTP://LocalHost:3000", "http://localhost:3000"),
    ("https://example.com:443", "https://example.com"),
    ("http://[::1]:6806", "http://[::1]:6806"),
])
def test_allowed_origins_are_written_as_browsers_send_them(given: str, origin: str) -> None:
    policy = CORSPolicy([given])
    assert policy.origins == {origin}
    assert policy.allow_origin_header(origin) == origin
    assert policy.allow_origin_header("http://other:1") is None


@pytest.mark.parametrize("given,problem", [
    ("127.0.0.1:6806", "is not an origin"),
    ("ftp://host", "is not an origin"),
    ("http://", "is not an origin"),
    ("http://host/app", "more than scheme://host[:port]"),
    ("http://host?x=1", "more than scheme://host[:port]"),
    ("http://host:99999", "invalid port"),
])
def test_a_malformed_origin_is_a_clear_error(given: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        CORSPolicy([given])


def test_kplug_serve_refuses_a_malformed_allow_origin(tmp_path: Any) -> None:
    (tmp_path / "plugins").mkdir()
    proc = subprocess.run([sys.executable, "-m", "kplug_lab", "serve", "--plugins", str(tmp_path / "plugins"),
                           "--port", "0", "--allow-origin", "127.0.0.1:6806"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--allow-origin" in proc.stderr and "is not an origin" in proc.stderr


async def test_kplug_serve_allow_origin_reaches_the_routes(tmp_path: Any) -> None:
    plugins = tmp_path / "plugins"
    (plugins / "p").mkdir(parents=True)
    (plugins / "p" / "plugin.json").write_text(json.dumps({"name": "p", "version": "1.0.0", "kernels": ["all"]}))
    (plugins / "p" / "kernel.js").write_text(PLUGIN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kplug_lab", "serve", "--plugins", str(plugins), "--data", str(tmp_path / "data"),
        "--port", "0", "--token", TOKEN, "--no-reload", "--allow-origin", SIYUAN, "--allow-origin",
        "http://localhost:3000", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, f"kplug serve exited early: {lines}"
            lines.append(line)
            if line.startswith("URL:"):
                url = line.split()[1].rstrip("/")
                break
        assert any("browser pages may call the plugin routes from http://127.0.0.1:6806, http://localhost:3000"
                   in seen for seen in lines), lines
        async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
            r = await client.options("/api/plugin/rpc/p", headers=preflight("http://localhost:3000"))
            assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
            r = await client.post("/api/plugin/rpc/p", content=CALL,
                                  headers={"Origin": SIYUAN, "Authorization": f"Token {TOKEN}"})
            assert r.json()["result"] == "hi" and r.headers["Access-Control-Allow-Origin"] == SIYUAN
    finally:
        proc.terminate()
        await proc.wait()
