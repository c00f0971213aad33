"""The example plugins in plugins/ run in a real PluginManager against the fake SiYuan kernel."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kplug_testing import REPO, Host, free_port, wait_for

from kplug_lab.errors import PluginCallError
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.manager import PluginManager
from kplug_lab.rpc.app import make_standalone_app
from kplug_lab.testing import FakeSiYuan, RecordingEndpoint

EXAMPLES = ("hello", "counter", "heartbeat", "notes-agent", "journal", "todo", "signed-upload", "streamer")


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[FakeSiYuan]:
    async with FakeSiYuan(tmp_path / "workspace") as k:
        yield k


@pytest.fixture
async def endpoint() -> AsyncIterator[RecordingEndpoint]:
    async with RecordingEndpoint() as e:
        yield e


async def start_examples(host: Host, kernel: FakeSiYuan, *names: str, token: str | None = None) -> PluginManager:
    for name in names or EXAMPLES:
        shutil.copytree(REPO / "plugins" / name, host.root / name)
    manager = await host.start(siyuan_url=kernel.url, siyuan_token=kernel.token if token is None else token)
    for name in names or EXAMPLES:
        await wait_for(lambda name=name: host.state(name) in (PluginState.RUNNING, PluginState.ERROR),  # type: ignore[misc]
                       what=f"{name} to start")
        assert host.state(name) == PluginState.RUNNING, (name, host.logs(name))
    return manager


def private_request(method: str, path: str, body: bytes = b"") -> dict[str, Any]:
    """The request object the private route hands to ``siyuan.server.private.http.handler`` (spec §3.8.1)."""
    return {
        "url": {"user": None, "host": "127.0.0.1", "path": f"/plugin/private/notes-agent{path}",
                "pathname": f"/plugin/private/notes-agent{path}", "fragment": "", "hash": "", "search": "",
                "query": {}},
        "request": {"method": method, "uri": f"/plugin/private/notes-agent{path}", "proto": "HTTP/1.1",
                    "protoMajor": 1, "protoMinor": 1, "headers": {}, "cookies": {},
                    "contentType": "application/json", "contentLength": len(body) or -1, "referer": "",
                    "userAgent": "", "body": {"form": None, "dataBase64": base64.b64encode(body).decode()}},
        "context": {"path": path, "fullPath": "/plugin/private/:name/*path", "clientIp": "127.0.0.1",
                    "remoteIp": "127.0.0.1", "remoteAddr": "127.0.0.1", "params": {"name": ["notes-agent"],
                                                                                   "path": [path]}},
        "port": None,
    }


async def test_every_example_plugin_reaches_running(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel)
    methods = {info.name: {m.name for m in info.methods} for info in manager.list_plugins()}
    assert methods["hello"] == {"echo", "greet", "lastGreeting", "info"}
    assert methods["counter"] == {"get", "increment", "reset"}
    assert methods["heartbeat"] == {"configure", "beat", "flush", "stats"}
    assert methods["notes-agent"] == {"add", "list"}
    assert {"append", "entries", "edit", "remove", "changes", "following"} <= methods["journal"]
    assert methods["todo"] == {"add", "done", "list"}
    assert methods["signed-upload"] == {"publicKey", "sign", "verify", "upload", "check"}
    assert methods["streamer"] == {"head", "served"}
    for info in manager.list_plugins():
        for m in info.methods:
            assert m.descriptions, f"{info.name}.{m.name} has no description"


async def test_hello_echo_storage_and_logger(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "hello")
    assert await manager.call("hello", "echo", ["hi"]) == "hi"
    assert await manager.call("hello", "echo", [1, {"a": [True, None]}]) == [1, {"a": [True, None]}]
    assert await manager.call("hello", "lastGreeting") is None
    assert await manager.call("hello", "greet", ["Ana"]) == "Hello, Ana!"
    assert await manager.call("hello", "lastGreeting") == "Hello, Ana!"
    assert await manager.call("hello", "greet") == "Hello, world!"
    info = await manager.call("hello", "info")
    assert info == {"name": "hello", "version": "0.1.0", "platform": manager.platform}
    logs = host.logs("hello")
    assert "Hello 0.1.0 loading" in logs and "running" in logs and "greeted Ana" in logs
    lines: list[str] = []
    unsubscribe = manager.subscribe_logs(lambda record: lines.append(record.message))
    try:
        await manager.reload("hello")
    finally:
        unsubscribe()
    assert "unloading" in lines
    assert await manager.call("hello", "lastGreeting") == "Hello, world!"


async def test_counter_broadcasts_each_change_and_persists(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "counter")
    seen: list[tuple[str, Any]] = []
    unsubscribe = manager.subscribe_broadcasts("counter", lambda method, params: seen.append((method, params)))
    try:
        assert (await manager.call("counter", "increment"))["value"] == 1
        assert (await manager.call("counter", "increment", [5]))["value"] == 6
        assert (await manager.call("counter", "reset"))["value"] == 0
        assert (await manager.call("counter", "increment", [2]))["value"] == 2
        await wait_for(lambda: len(seen) == 4, what="four broadcasts")
        assert [(m, p["value"]) for m, p in seen] == [("changed", 1), ("changed", 6), ("changed", 0), ("changed", 2)]
        with pytest.raises(PluginCallError, match="by must be a finite number"):
            await manager.call("counter", "increment", ["three"])
    finally:
        unsubscribe()
    await manager.reload("counter")
    assert (await manager.call("counter", "get"))["value"] == 2


async def test_counter_gives_each_concurrent_caller_the_value_its_own_increment_made(
        host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "counter")
    results = await asyncio.gather(*(manager.call("counter", "increment") for _ in range(20)))
    assert sorted(r["value"] for r in results) == list(range(1, 21))
    assert (await manager.call("counter", "get"))["value"] == 20


async def test_heartbeat_flushes_through_forward_proxy(host: Host, kernel: FakeSiYuan,
                                                       endpoint: RecordingEndpoint) -> None:
    manager = await start_examples(host, kernel, "heartbeat")
    await manager.call("heartbeat", "configure", [{"endpoint": endpoint.url + "/events", "flushMs": 600_000}])
    for i in range(3):
        assert await manager.call("heartbeat", "beat", [{"entity": f"file{i}.md"}]) == i + 1
    assert await manager.call("heartbeat", "flush") == {"sent": 3}
    [received] = endpoint.received
    assert received.method == "POST" and received.path == "/events"
    assert [e["entity"] for e in received.json()["events"]] == ["file0.md", "file1.md", "file2.md"]
    assert await manager.call("heartbeat", "stats") == {"pending": 0, "sent": 3}
    [proxied] = kernel.requests_to("/api/network/forwardProxy")
    assert proxied.authorized and proxied.status == 200
    assert proxied.json["url"] == endpoint.url + "/events"


async def test_heartbeat_keeps_events_when_the_endpoint_fails_and_flushes_on_its_timer(
        host: Host, kernel: FakeSiYuan, endpoint: RecordingEndpoint) -> None:
    manager = await start_examples(host, kernel, "heartbeat")
    await manager.call("heartbeat", "configure", [{"endpoint": endpoint.url + "/events", "flushMs": 600_000}])
    await manager.call("heartbeat", "beat", [{"entity": "a"}])
    endpoint.fail_next(1, status=503)
    result = await manager.call("heartbeat", "flush")
    assert result["sent"] == 0 and "503" in result["error"]
    assert await manager.call("heartbeat", "stats") == {"pending": 1, "sent": 0}
    await manager.call("heartbeat", "configure", [{"flushMs": 50}])
    await endpoint.wait_for(1)
    assert endpoint.json_bodies() == [{"events": [{"entity": "a", "at": endpoint.json_bodies()[0]["events"][0]["at"]}]}]
    for _ in range(200):  # the plugin updates its counters once the proxied answer is back
        if await manager.call("heartbeat", "stats") == {"pending": 0, "sent": 1}:
            break
        await asyncio.sleep(0.02)
    assert await manager.call("heartbeat", "stats") == {"pending": 0, "sent": 1}
    assert len(endpoint.accepted()) == 1


async def test_heartbeat_concurrent_flushes_send_a_batch_once(host: Host, kernel: FakeSiYuan,
                                                               endpoint: RecordingEndpoint) -> None:
    manager = await start_examples(host, kernel, "heartbeat")
    await manager.call("heartbeat", "configure", [{"endpoint": endpoint.url + "/events", "flushMs": 600_000}])
    await manager.call("heartbeat", "beat", [{"entity": "a"}])
    results = await asyncio.gather(*(manager.call("heartbeat", "flush") for _ in range(3)))
    assert results == [{"sent": 1}] * 3  # the later calls joined the flush in progress
    assert len(endpoint.received) == 1
    assert await manager.call("heartbeat", "stats") == {"pending": 0, "sent": 1}


async def test_heartbeat_cannot_reach_a_non_loopback_endpoint(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "heartbeat")
    await manager.call("heartbeat", "configure", [{"endpoint": "http://203.0.113.7/events", "flushMs": 600_000}])
    await manager.call("heartbeat", "beat", [{"entity": "a"}])
    result = await manager.call("heartbeat", "flush")
    assert result["sent"] == 0 and "only forwards to loopback" in result["error"]
    assert await manager.call("heartbeat", "stats") == {"pending": 1, "sent": 0}


async def test_notes_agent_private_route_and_capability(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "notes-agent")
    assert (await manager.call("notes-agent", "add", ["buy milk"]))["id"] == 1
    res = await manager.http_request("notes-agent", "http", private_request(
        "POST", "/notes", json.dumps({"text": "call Ana about milk"}).encode()))
    assert res["statusCode"] == 201 and res["body"]["data"]["data"]["text"] == "call Ana about milk"
    res = await manager.http_request("notes-agent", "http", private_request("GET", "/notes"))
    assert res["statusCode"] == 200 and res["headers"] == {"X-Notes": ["2"]}
    assert [n["text"] for n in res["body"]["data"]["data"]] == ["buy milk", "call Ana about milk"]
    res = await manager.http_request("notes-agent", "http", private_request("GET", "/nope"))
    assert res["statusCode"] == 404 and res["body"]["string"]["values"] == ["/nope"]

    [tool] = [t for t in manager.tools() if t["plugin"] == "notes-agent"]
    assert tool["name"].startswith("plugin__notes_agent__search_notes__") and len(tool["name"].split("__")[-1]) == 12
    assert tool["inputSchema"]["required"] == ["query"]
    result = await manager.invoke_tool(tool["name"], {"query": "milk"})
    assert result["isError"] is False
    assert [n["id"] for n in json.loads(result["content"][0]["text"])] == [1, 2]
    result = await manager.invoke_tool(tool["name"], {"query": "Ana"})
    assert [n["id"] for n in json.loads(result["content"][0]["text"])] == [2]
    await manager.reload("notes-agent")
    assert len(await manager.call("notes-agent", "list")) == 2


async def test_journal_writes_blocks_through_the_kernel_api(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "journal")
    first = await manager.call("journal", "append", ["Started the journal"])
    second = await manager.call("journal", "append", ["Second entry"])
    [doc] = kernel.blocks.query("SELECT id, hpath, box FROM blocks WHERE type = 'd' AND content = 'Journal'")
    assert doc["hpath"] == "/Journal" and doc["box"] == kernel.notebook
    rows = kernel.blocks.query(f"SELECT id, content FROM blocks WHERE parent_id = '{doc['id']}' ORDER BY sort")
    assert [(r["id"], r["content"]) for r in rows] == [(first, "Started the journal"), (second, "Second entry")]
    assert "custom-journal" in kernel.blocks.attrs(first)

    entries = await manager.call("journal", "entries")
    assert [e["content"] for e in entries] == ["Started the journal", "Second entry"]
    kd = await manager.call("journal", "edit", [first, "Started the journal, edited"])
    assert kd["id"] == first and kd["kramdown"].startswith("Started the journal, edited\n{: id=")
    assert await manager.call("journal", "remove", [second]) is True
    assert [e["content"] for e in await manager.call("journal", "entries")] == ["Started the journal, edited"]
    with pytest.raises(PluginCallError, match=r"block .* not found"):
        await manager.call("journal", "remove", [second])

    api = [r for r in kernel.requests if r.path.startswith("/api/")]
    assert {r.path for r in api} >= {"/api/query/sql", "/api/notebook/lsNotebooks", "/api/filetree/createDocWithMd",
                                     "/api/block/appendBlock", "/api/attr/setBlockAttrs", "/api/block/updateBlock",
                                     "/api/block/getBlockKramdown", "/api/block/deleteBlock"}
    assert all(r.authorized for r in api)
    # the host's own probe of which plugins SiYuan runs (one_copy.py) is not the plugin's request
    plugin_api = [r for r in api if r.path != "/api/plugin/listLoadedPlugins"]
    assert all(r.headers.get("X-Auth-Token") == kernel.token for r in plugin_api)


async def test_journal_follows_transactions_on_the_kernel_ws(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "journal")
    await wait_for(lambda: any(r.path == "/ws" and r.authorized for r in kernel.requests), what="/ws dialled")
    assert await manager.call("journal", "following") is True
    seen: list[Any] = []
    unsubscribe = manager.subscribe_broadcasts("journal", lambda method, params: seen.append((method, params)))
    try:
        # a change made by someone else (another SiYuan window) through the kernel's own API
        async with httpx.AsyncClient(base_url=kernel.url, trust_env=False,
                                     headers={"Authorization": f"Token {kernel.token}"}) as api:
            resp = await api.post("/api/block/appendBlock", json={"parentID": kernel.document, "data": "from a window",
                                                                  "dataType": "markdown"})
        block_id = resp.json()["data"][0]["doOperations"][0]["id"]
        await wait_for(lambda: len(seen) == 1, what="the transaction to reach the plugin")
        assert seen == [("blocksChanged", [{"action": "insert", "id": block_id}])]
        assert await manager.call("journal", "changes") == [{"action": "insert", "id": block_id}]

        entry = await manager.call("journal", "append", ["mine"])
        await wait_for(lambda: len(seen) == 3, what="the plugin's own two transactions")
        assert [(m, p[0]["action"], p[0]["id"]) for m, p in seen[1:]] == [
            ("blocksChanged", "insert", entry), ("blocksChanged", "updateAttrs", entry)]
    finally:
        unsubscribe()


async def test_journal_socket_closes_on_unload_and_sees_kernel_shutdown(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "journal")
    await wait_for(lambda: len(kernel._sockets) == 1, what="/ws connected")
    await manager.unload("journal")
    await wait_for(lambda: len(kernel._sockets) == 0, what="the plugin's socket to close on unload")

    shutil.rmtree(host.root / "journal")
    shutil.copytree(REPO / "plugins" / "journal", host.root / "journal")
    await manager.load(str(host.root / "journal"))
    await wait_for(lambda: len(kernel._sockets) == 1, what="/ws connected again")
    for sock in list(kernel._sockets):
        sock.close(1001, "kernel restarting")
    await wait_for(lambda: any("/ws closed (1001 kernel restarting)" in line for line in host.logs("journal")),
                   what="onclose with the kernel's code and reason")
    assert await manager.call("journal", "following") is False


async def test_journal_with_a_wrong_token_reports_the_kernels_401(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "journal", token="wrong")
    with pytest.raises(PluginCallError, match="HTTP 401"):
        await manager.call("journal", "append", ["x"])
    await wait_for(lambda: any("cannot follow block changes" in line for line in host.logs("journal")),
                   what="the refused /ws dial to be logged")
    assert await manager.call("journal", "following") is False
    assert all(not r.authorized for r in kernel.requests)


async def test_todo_split_over_files_with_require_keeps_its_list_across_restarts(host: Host,
                                                                               kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "todo")
    assert await manager.call("todo", "add", ["  write docs "]) == 1
    assert await manager.call("todo", "add", ["ship"]) == 2
    assert (await manager.call("todo", "done", [1]))["done"] is True
    with pytest.raises(PluginCallError, match="title must be a non-empty string"):
        await manager.call("todo", "add", [""])
    await manager.reload("todo")
    assert await manager.call("todo", "list") == [{"id": 1, "title": "write docs", "done": True},
                                                  {"id": 2, "title": "ship", "done": False}]


async def test_signed_upload_signs_verifies_and_keeps_its_key_across_restarts(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "signed-upload")
    jwk = await manager.call("signed-upload", "publicKey")
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk
    signature = await manager.call("signed-upload", "sign", ["hello"])
    assert len(bytes.fromhex(signature)) == 64  # r || s, as Web Crypto gives ECDSA signatures
    assert await manager.call("signed-upload", "verify", ["hello", signature]) is True
    assert await manager.call("signed-upload", "verify", ["hellO", signature]) is False
    with pytest.raises(PluginCallError, match="signature must be hex"):
        await manager.call("signed-upload", "verify", ["hello", "not hex"])
    await manager.reload("signed-upload")  # the key pair was kept in storage as JWK
    assert await manager.call("signed-upload", "publicKey") == jwk
    assert await manager.call("signed-upload", "verify", ["hello", signature]) is True
    assert kplug_only(manager, "signed-upload") == []  # runs in SiYuan as it is


async def test_signed_upload_puts_a_form_data_file_and_checks_it(host: Host, kernel: FakeSiYuan) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    manager = await start_examples(host, kernel, "signed-upload")
    text = "Grüße, a signed note\n"
    result = await manager.call("signed-upload", "upload", ["note.txt", text])
    assert result["path"] == "/data/storage/signed-upload/note.txt"
    stored = kernel.workspace_path("/data/storage/signed-upload/note.txt")
    assert stored.read_bytes() == text.encode()
    sidecar = json.loads(kernel.workspace_path("/data/storage/signed-upload/note.txt.sig").read_text())
    assert sidecar["signature"] == result["signature"]

    # the signature checks out with another implementation too (P1363 r || s to DER)
    jwk = sidecar["publicKey"]
    point = b"\x04" + base64.urlsafe_b64decode(jwk["x"] + "==") + base64.urlsafe_b64decode(jwk["y"] + "==")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    raw = bytes.fromhex(result["signature"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, text.encode(), ec.ECDSA(hashes.SHA256()))

    [put, _] = kernel.requests_to("/api/file/putFile")
    assert put.authorized and put.status == 200
    assert put.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="note.txt"' in put.body and b"Content-Type: text/plain" in put.body

    assert await manager.call("signed-upload", "check", ["note.txt"]) == {"name": "note.txt", "found": True,
                                                                         "valid": True}
    stored.write_text("tampered")
    assert (await manager.call("signed-upload", "check", ["note.txt"]))["valid"] is False
    assert (await manager.call("signed-upload", "check", ["missing.txt"]))["found"] is False
    with pytest.raises(PluginCallError, match="name must be"):
        await manager.call("signed-upload", "upload", ["../escape", "x"])


async def test_streamer_reads_a_kernel_file_as_a_stream_and_aborts_when_it_has_enough(
        host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "streamer")
    big = kernel.workspace_path("/data/storage/big.txt")
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(b"0123456789" * 50_000)  # 500 kB: more than one chunk
    got = await manager.call("streamer", "head", ["/data/storage/big.txt", 100])
    assert got["size"] == 100 and got["complete"] is False and got["text"] == "0123456789" * 10
    small = kernel.workspace_path("/data/storage/small.txt")
    small.write_text("short")
    got = await manager.call("streamer", "head", ["/data/storage/small.txt", 1024])
    assert got == {"size": 5, "chunks": 1, "complete": True, "text": "short"}
    got = await manager.call("streamer", "head", ["/data/storage/big.txt", 10 ** 6])
    assert got["size"] == 500_000 and got["complete"] is True and got["chunks"] > 1
    with pytest.raises(PluginCallError, match=r"getFile /data/nope\.txt: stat /data/nope\.txt: no such file"):
        await manager.call("streamer", "head", ["/data/nope.txt"])
    assert kplug_only(manager, "streamer") == []


async def test_streamer_serves_streamed_responses_on_its_private_route(host: Host, kernel: FakeSiYuan) -> None:
    manager = await start_examples(host, kernel, "streamer")
    kernel.workspace_path("/data/storage/page.txt").parent.mkdir(parents=True, exist_ok=True)
    kernel.workspace_path("/data/storage/page.txt").write_bytes(b"abc" * 100_000)
    port = free_port()
    server = make_standalone_app(manager, "admin-token").listen(port, address="127.0.0.1")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30,
                                     headers={"Authorization": "Token admin-token"}) as http:
            r = await http.get("/plugin/private/streamer/count", params={"to": "5"})
            assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert r.text == "1\n2\n3\n4\n5\n"
            r = await http.get("/plugin/private/streamer/count", params={"to": "-1"})
            assert r.status_code == 400

            async with http.stream("GET", "/plugin/private/streamer/count", params={"to": "1000000"}) as r:
                lines = r.aiter_lines()
                assert [await anext(lines) for _ in range(3)] == ["1", "2", "3"]
            await wait_for_served(manager, lambda s: s["cancelled"] == 1)

            r = await http.get("/plugin/private/streamer/file", params={"path": "/data/storage/page.txt"})
            assert r.status_code == 200 and r.content == b"abc" * 100_000
            r = await http.get("/plugin/private/streamer/file", params={"path": "/data/nope"})
            assert r.status_code == 404 and "no such file" in r.text
    finally:
        server.stop()
        await server.close_all_connections()
    served = await manager.call("streamer", "served")
    assert served == {"started": 2, "finished": 1, "cancelled": 1}


async def wait_for_served(manager: PluginManager, check: Any) -> None:
    for _ in range(750):  # the plugin learns of the client leaving when the host next pulls its stream
        if check(await manager.call("streamer", "served")):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"streamer never reached the expected counts: {await manager.call('streamer', 'served')}")


def kplug_only(manager: PluginManager, name: str) -> list[str]:
    """kplug_lab's own globals the plugin touched (the portability report): none for a plugin that runs in SiYuan."""
    info = manager.get_plugin(name)
    assert info is not None
    return info.kplug_only
