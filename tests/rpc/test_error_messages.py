"""Every error reaching a client carries a message, never a bare ``null`` (issue 11 item 5): a method that throws
null or undefined (QuickJS itself throws null when it runs out of memory while building an error; a plugin flooding
``siyuan.rpc.broadcast`` once got ``error invoking method "flood": null``) is answered with a reason."""

from __future__ import annotations

import json

import websockets
from kplug_testing import Host
from rpc_server import Server

PLUGIN = """
siyuan.rpc.bind("throwsNull", () => { throw null; });
siyuan.rpc.bind("rejectsUndefined", async () => { throw undefined; });
"""


async def test_a_thrown_null_or_undefined_reaches_a_websocket_client_with_a_reason(host: Host) -> None:
    host.plugin("p", PLUGIN)
    await host.start()
    server = Server(host)
    try:
        async with websockets.connect(f"{server.ws}/ws/plugin/rpc/p", additional_headers=server.auth) as ws:
            for i, method in enumerate(["throwsNull", "rejectsUndefined"]):
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": method}))
                answer = json.loads(await ws.recv())
                data = answer["error"]["data"]
                assert not data.endswith((": null", ": undefined")), data
                assert "was thrown, without a reason" in data and "out of memory" in data, data
    finally:
        await server.close()
