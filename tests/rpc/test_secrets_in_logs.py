"""Tokens stay out of logs (issue 11 item 6): the access log redacts credential query parameters, and the JS
client authenticates its WebSocket with a subprotocol instead of a token in the URL."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from kplug_testing import Host, captured_logs
from rpc_server import TOKEN, Server

from kplug_lab.rpc.secrets_in_logs import redact_uri, token_from_subprotocols

PLUGIN = """
siyuan.rpc.bind("echo", (x) => x);
siyuan.server.private.http.handler = async (req) => ({ body: { data: { type: "JSON", data: req.url.query } } });
"""


def test_redact_uri_hides_only_credential_parameters() -> None:
    assert redact_uri("/api/plugin/rpc/p?token=s3cret&x=1") == "/api/plugin/rpc/p?token=[redacted]&x=1"
    assert redact_uri("/a?TOKEN=s&ticket=t") == "/a?TOKEN=[redacted]&ticket=[redacted]"
    assert redact_uri("/a?x=1&y=token") == "/a?x=1&y=token"
    assert redact_uri("/a") == "/a"


def test_token_from_subprotocols_reads_base64url_utf8() -> None:
    encoded = base64.urlsafe_b64encode("tök/+?".encode()).decode().rstrip("=")
    assert token_from_subprotocols(f"kplug, kplug.token.{encoded}") == "tök/+?"
    assert token_from_subprotocols("kplug") is None
    assert token_from_subprotocols("kplug.token.%%%") is None


@pytest.fixture
async def server(host: Host) -> AsyncIterator[Server]:
    host.plugin("p", PLUGIN)
    await host.start()
    s = Server(host)
    yield s
    await s.close()


async def test_no_log_line_holds_the_token(server: Server) -> None:
    with captured_logs("kplug_lab.access", "tornado.application", "tornado.general", "kplug_lab") as records:
        await _use_the_token_every_way(server)
    access = [r for r in records if r.name == "kplug_lab.access"]
    assert len(access) >= 4 and any("token=[redacted]" in r.getMessage() for r in access)
    client_side = ("httpx", "httpcore", "websockets.client")  # this test's own clients log what they send
    server_lines = [r.getMessage() for r in records if not r.name.startswith(client_side)]
    assert server_lines and not [line for line in server_lines if TOKEN in line]


async def _use_the_token_every_way(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as anon:
        call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["hi"]})
        r = await anon.post(f"/api/plugin/rpc/p?token={TOKEN}", content=call)
        assert r.json()["result"] == "hi"
        r = await anon.get(f"/plugin/private/p/page?token={TOKEN}&x=1")
        assert r.json() == {"x": ["1"]}  # the plugin never sees the token either
        r = await anon.post(f"/api/plugin/rpc/p?token={TOKEN}x", content=call)
        assert r.status_code == 401  # a wrong token, logged as a warning: redacted too
    encoded = base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")
    async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p",
                                  subprotocols=["kplug", f"kplug.token.{encoded}"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "kplug"
        await ws.send(call)
        assert json.loads(await ws.recv())["result"] == "hi"
