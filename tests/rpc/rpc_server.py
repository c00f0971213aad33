"""Helpers for the RPC tests: a standalone kplug server on a free loopback port, and raw WebSocket frames."""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass
from typing import Any

import httpx
import tornado.httpserver
import tornado.web
from kplug_testing import Host, free_port

from kplug_lab.protocol.jsonrpc import Limits
from kplug_lab.rpc.app import make_standalone_app

TOKEN = "admin-token"

class Server:
    """A running standalone app over ``host.manager`` (or another HostAPI); ``close()`` stops it."""

    def __init__(self, host: Host, api: Any = None, *, limits: Limits | None = None, **app_options: Any) -> None:
        self.host = host
        app = make_standalone_app(api or host.manager, TOKEN, limits=limits, **app_options)
        self.port = free_port()
        self._server: tornado.httpserver.HTTPServer = app.listen(self.port, address="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}"
        self.auth = {"Authorization": f"Token {TOKEN}"}
        self.http = httpx.AsyncClient(base_url=self.url, headers=self.auth, trust_env=False, timeout=30)

    async def rpc(self, body: Any, name: str = "p", raw: bool = False) -> httpx.Response:
        content = body if raw else json.dumps(body)
        return await self.http.post(f"/api/plugin/rpc/{name}", content=content)

    async def close(self) -> None:
        await self.http.aclose()
        self._server.stop()
        await self._server.close_all_connections()


@dataclass
class Frame:
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int:
        return int(struct.unpack("!H", self.payload[:2])[0]) if len(self.payload) >= 2 else 1005

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace")


class RawWebSocket:
    """A hand-made WebSocket client that reads only when asked: it can play a client too slow to read, and
    it sees control frames (pings, the close frame) that client libraries answer silently."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str, headers: dict[str, str]) -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")
                     .encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def read_frame(self) -> Frame:
        b0, b1 = await self.reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return Frame(b0 & 0x0F, await self.reader.readexactly(length))

    def close(self) -> None:
        self.writer.close()


def html_page(html: str) -> type[tornado.web.RequestHandler]:
    """A handler that serves ``html``: the test page a browser test loads."""

    class Page(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(html)

    return Page
