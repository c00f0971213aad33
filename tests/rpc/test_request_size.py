"""The request size limit is applied while the body arrives, not after tornado has read all of it: a body over
``Limits.max_body_bytes`` is answered (the same 413 as before) before the client has finished sending it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kplug_testing import Host
from rpc_server import TOKEN, Server

from kplug_lab.protocol.jsonrpc import Limits

LIMIT = 4096
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["hi"]}).encode()


@pytest.fixture
async def served(host: Host, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    host.plugin("p", 'siyuan.rpc.bind("echo", (x) => x);')
    await host.start()
    server = Server(host, limits=Limits(max_body_bytes=getattr(request, "param", LIMIT)))
    try:
        yield server
    finally:
        await server.close()


class Raw:
    """One HTTP/1.1 connection written by hand, to send part of a body and read what comes back meanwhile."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: Server) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", server.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self, path: str, headers: dict[str, str]) -> None:
        lines = "".join(f"{k}: {v}\r\n" for k, v in {"Host": "127.0.0.1", "Authorization": f"Token {TOKEN}",
                                                       "Content-Type": "application/json", **headers}.items())
        await self.send(f"POST {path} HTTP/1.1\r\n{lines}\r\n".encode())

    async def response(self) -> tuple[int, dict[str, str], Any]:
        head = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)).decode()
        status_line, *header_lines = head.strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", "0"))), 30)
        return int(status_line.split()[1]), headers, json.loads(body) if body else None

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 30) == b""

    def close(self) -> None:
        self.writer.close()


def too_large(size: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request",
                                        "data": f"RPC request is too large: {size}, the limit is {LIMIT}"}, "id": None}


async def test_a_declared_oversized_body_is_answered_before_it_is_sent(served: Server) -> None:
    raw = await Raw.open(served)
    try:
        await raw.head("/api/plugin/rpc/p", {"Content-Length": str(10 * LIMIT)})
        await raw.send(b"[" + b" " * 100)  # a tenth of the body or so: the answer must not wait for the rest
        status, _, answer = await raw.response()
        assert (status, answer) == (413, too_large(f"{10 * LIMIT} bytes"))
        # the rest is read and dropped; the connection then serves the next request
        await raw.send(b" " * (10 * LIMIT - 101))
        await raw.head("/api/plugin/rpc/p", {"Content-Length": str(len(CALL))})
        await raw.send(CALL)
        status, _, answer = await raw.response()
        assert status == 200 and answer["result"] == "hi"
    finally:
        raw.close()


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(served: Server) -> None:
    raw = await Raw.open(served)
    try:
        await raw.head("/api/plugin/rpc/p", {"Transfer-Encoding": "chunked"})
        chunk = b" " * 1024
        for _ in range(LIMIT // len(chunk) + 1):
            await raw.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, _, answer = await raw.response()  # before the last chunk was sent
        assert (status, answer) == (413, too_large(f"more than {LIMIT} bytes"))
        await raw.send(b"0\r\n\r\n")
        await raw.head("/api/plugin/rpc/p", {"Content-Length": str(len(CALL))})
        await raw.send(CALL)
        assert (await raw.response())[2]["result"] == "hi"
    finally:
        raw.close()


async def test_a_client_waiting_for_100_continue_gets_the_refusal_instead(served: Server) -> None:
    raw = await Raw.open(served)
    try:
        await raw.head("/api/plugin/rpc/p", {"Content-Length": str(10 * LIMIT), "Expect": "100-continue"})
        status, _, answer = await raw.response()
        assert (status, answer) == (413, too_large(f"{10 * LIMIT} bytes"))
        assert await raw.closed_by_server()  # the body was never sent, so the connection cannot go on
    finally:
        raw.close()


async def test_a_body_within_the_limit_still_gets_100_continue(served: Server) -> None:
    raw = await Raw.open(served)
    try:
        await raw.head("/api/plugin/rpc/p", {"Content-Length": str(len(CALL)), "Expect": "100-continue"})
        assert await asyncio.wait_for(raw.reader.readuntil(b"\r\n\r\n"), 30) == b"HTTP/1.1 100 (Continue)\r\n\r\n"
        await raw.send(CALL)
        assert (await raw.response())[2]["result"] == "hi"
    finally:
        raw.close()


@pytest.mark.parametrize("served", [200 * 1024 * 1024], indirect=True)
async def test_a_limit_above_tornados_own_cap_is_the_one_applied(served: Server) -> None:
    """tornado refuses bodies over 100 MB with a bare 400 unless told otherwise; 150 MB is under our limit."""
    raw = await Raw.open(served)
    try:
        await raw.head("/api/plugin/rpc/p", {"Content-Length": str(150 * 1024 * 1024), "Expect": "100-continue"})
        assert await asyncio.wait_for(raw.reader.readuntil(b"\r\n\r\n"), 30) == b"HTTP/1.1 100 (Continue)\r\n\r\n"
    finally:
        raw.close()


async def test_the_pre_check_answers_first_for_an_unknown_plugin(served: Server) -> None:
    raw = await Raw.open(served)
    try:
        await raw.head("/api/plugin/rpc/nope", {"Content-Length": str(10 * LIMIT), "Expect": "100-continue"})
        status, _, answer = await raw.response()
        assert status == 200 and answer["error"]["code"] == -32001
    finally:
        raw.close()


async def test_an_oversized_body_sent_whole_gets_the_answer(served: Server) -> None:
    r = await served.rpc({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x" * (3 * LIMIT)]})
    assert r.status_code == 413 and "RPC request is too large" in r.json()["error"]["data"]
    assert (await served.rpc({"jsonrpc": "2.0", "id": 2, "method": "echo", "params": ["ok"]})).json()["result"] == "ok"


async def test_the_admin_api_and_plugin_info_are_limited_too(served: Server) -> None:
    r = await served.http.post("/kplug/api/rpc", content=b" " * (2 * LIMIT))
    assert r.status_code == 413 and r.json()["error"]["code"] == -32600
    r = await served.http.post("/api/plugin/getLoadedPlugin", content=b" " * (2 * LIMIT))
    assert r.status_code == 413
    assert r.json() == {"code": -1, "msg": f"request body is too large: {2 * LIMIT} bytes, the limit is {LIMIT}",
                        "data": None}


async def test_an_oversized_body_on_a_get_of_plugin_info_is_answered_once(served: Server,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    r = await served.http.request("GET", "/api/plugin/rpc/p", content=b" " * (2 * LIMIT))
    assert r.status_code == 413 and "too large" in r.text
    assert not [rec for rec in caplog.records if "Tried to write" in rec.getMessage() or rec.exc_info]
    assert (await served.http.get("/api/plugin/rpc/p")).json()["data"]["name"] == "p"
