"""Property-based fuzzing of the RPC routes (issue 11): random bodies, batches, headers and WebSocket frames at
SiYuan's plugin routes. The host never answers 5xx itself, never crashes, and every answer is a well-formed
envelope: a JSON-RPC response (or a batch of them), SiYuan's ``{code, msg, data}``, or an empty 204.

One server for the whole module (hypothesis runs many examples against it, as a hostile client would)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kplug_testing import Host
from rpc_server import TOKEN, Server

from kplug_lab.protocol.jsonrpc import Limits

PLUGIN = """
siyuan.rpc.bind("echo", (...a) => (a.length === 1 ? a[0] : a));
siyuan.rpc.bind("boom", () => { throw new Error("boom"); });
siyuan.rpc.bind("reject", async () => { throw 42; });
siyuan.rpc.bind("big", (n) => "x".repeat(Math.min(Number(n) || 0, 1 << 20)));
"""

SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=False), st.text(max_size=20))
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=3), max_leaves=6)
METHOD = st.one_of(st.sampled_from(["echo", "boom", "reject", "big", "nope", "", "ECHO", "__proto__", "constructor"]),
                   st.text(max_size=10), VALUE)
REQUEST = st.fixed_dictionaries(
    {}, optional={"jsonrpc": st.one_of(st.just("2.0"), VALUE), "method": METHOD, "params": VALUE,
                  "id": st.one_of(st.integers(), st.text(max_size=8), st.none(), VALUE)})
JSON_BODY = st.one_of(REQUEST, st.lists(REQUEST, max_size=5), VALUE).map(
    lambda v: json.dumps(v, allow_nan=True).encode())
BODY = st.one_of(JSON_BODY, st.binary(max_size=200),
                 st.sampled_from([b"", b"[]", b"{", b"[{}]", b"\xff\xfe", b"NaN", b'{"jsonrpc":"2.0","method":"echo",'
                                  b'"params":[1e400],"id":1}', b'{"jsonrpc":"2.0","method":"echo","id":1}' * 3]))
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40).map(str.strip)
HEADERS = st.dictionaries(st.sampled_from(["Content-Type", "Content-Encoding", "Accept", "Origin", "X-Anything",
                                           "Transfer-Encoding-Not", "Expect-Not", "Cookie"]),
                          HEADER_VALUE, max_size=3)
NAME = st.one_of(st.just("p"), st.just("missing"), st.text(alphabet="abcfXYZ0-_%.", max_size=6))


def well_formed_rpc(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(well_formed_rpc(v) and not isinstance(v, list) for v in value)
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0" or "id" not in value:
        return False
    if ("result" in value) == ("error" in value):
        return False
    if "error" in value:
        error = value["error"]
        return isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    return True


def well_formed_envelope(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("code"), int) and isinstance(value.get("msg"), str) \
        and "data" in value


def check_answer(r: httpx.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code == 204:
        assert r.content == b""
        return
    value = json.loads(r.content)
    assert well_formed_rpc(value) or well_formed_envelope(value), (r.status_code, r.text[:300])


class _Served:
    def __init__(self, tmp: Path) -> None:
        self.runner = asyncio.Runner()
        self.host = Host(tmp)
        self.host.plugin("p", PLUGIN)
        self.runner.run(self.host.start())
        self.server = self.runner.run(self._serve())

    async def _serve(self) -> Server:
        return Server(self.host, limits=Limits(max_body_bytes=64 * 1024, max_batch=20, call_timeout=10))

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def close(self) -> None:
        self.runner.run(self.server.close())
        if self.host.manager is not None:
            self.runner.run(self.host.manager.close())
        self.runner.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    s = _Served(tmp_path_factory.mktemp("fuzz-wire"))
    yield s
    s.close()


FUZZ = settings(deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(name=NAME, body=BODY, headers=HEADERS, batch=st.booleans())
def test_random_http_bodies_and_headers_get_well_formed_answers(served: _Served, name: str, body: bytes,
                                                                  headers: dict[str, str], batch: bool) -> None:
    if batch:
        body = b"[" + body + b"," + body + b"]"
    http = served.server.http
    check_answer(served.run(http.post(f"/api/plugin/rpc/{name}", content=body, headers=headers)))
    check_answer(served.run(http.get(f"/api/plugin/rpc/{name}", headers=headers)))
    r = served.run(http.post("/api/plugin/rpc/p", content=b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":7}'))
    assert r.json() == {"jsonrpc": "2.0", "result": 1, "id": 7}


@FUZZ
@given(frames=st.lists(st.one_of(JSON_BODY.map(lambda b: b.decode()), st.text(max_size=50), st.binary(max_size=50)),
                       min_size=1, max_size=5))
def test_random_websocket_frames_get_well_formed_answers_and_the_connection_survives(
        served: _Served, frames: list[str | bytes]) -> None:
    async def exchange() -> list[Any]:
        answers = []
        url = f"{served.server.ws}/ws/plugin/rpc/p"
        async with websockets.connect(url, additional_headers={"Authorization": f"Token {TOKEN}"}) as ws:
            for frame in frames:
                await ws.send(frame)
            await ws.send('{"jsonrpc":"2.0","method":"echo","params":["last"],"id":"last"}')
            while True:  # answers come in any order; the marker call is answered after every frame was read
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                answers.append(message)
                if isinstance(message, dict) and message.get("id") == "last" and "result" in message:
                    return answers

    answers = served.run(exchange())
    assert answers[-1] == {"jsonrpc": "2.0", "result": "last", "id": "last"}
    for answer in answers:
        assert well_formed_rpc(answer), answer
