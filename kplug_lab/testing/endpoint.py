"""A loopback HTTP endpoint that records what it receives and can be told to fail: the "third-party
service" a plugin reports to (through the fake kernel's ``/api/network/forwardProxy``) in tests.

    async with RecordingEndpoint() as endpoint:
        endpoint.fail_next(2, status=503)       # the next two requests answer 503
        ... plugin flushes to endpoint.url + "/events" ...
        assert endpoint.json_bodies() == [...]
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from tornado import httpserver, netutil, web

__all__ = ["ReceivedRequest", "RecordingEndpoint"]


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: the status the endpoint answered
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class RecordingEndpoint:
    """Answers every request on ``127.0.0.1`` with ``{"ok": true}`` (or a failure, when told to)."""

    def __init__(self) -> None:
        self.received: list[ReceivedRequest] = []
        self._failures: list[int] = []
        self._server: httpserver.HTTPServer | None = None
        self._port = 0
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the endpoint is not started")
        return f"http://127.0.0.1:{self._port}"

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next ``count`` requests answer ``status`` (and are still recorded)."""
        self._failures.extend([status] * count)

    def accepted(self) -> list[ReceivedRequest]:
        return [r for r in self.received if r.status < 300]

    def json_bodies(self) -> list[Any]:
        """The JSON bodies of the requests that were answered with success, in arrival order."""
        return [r.json() for r in self.accepted()]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Wait until at least ``count`` requests were answered with success."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.accepted()) >= count), timeout)

    async def start(self) -> RecordingEndpoint:
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        self._port = sockets[0].getsockname()[1]
        self._server = httpserver.HTTPServer(web.Application([(r"/.*", _Recorder, {"endpoint": self})]))
        self._server.add_sockets(sockets)
        return self

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()

    async def __aenter__(self) -> RecordingEndpoint:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _record(self, request: ReceivedRequest) -> None:
        self.received.append(request)
        async with self._arrived:
            self._arrived.notify_all()


class _Recorder(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")  # type: ignore[assignment]

    def initialize(self, endpoint: RecordingEndpoint) -> None:
        self.endpoint = endpoint

    def check_xsrf_cookie(self) -> None:
        return None

    async def _answer(self) -> None:
        status = self.endpoint._failures.pop(0) if self.endpoint._failures else 200
        req = self.request
        await self.endpoint._record(ReceivedRequest(req.method or "", req.path, dict(req.headers),
                                                    req.body or b"", status))
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"ok": status < 300, "received": len(self.endpoint.received)}))

    get = post = put = patch = delete = head = _answer  # type: ignore[assignment]
