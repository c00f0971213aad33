"""The fake SiYuan kernel answers with SiYuan's shapes: envelope, auth, file API codes, blocks, /ws pushes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kplug_testing import free_port, loopback_app
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kplug_lab.testing import FakeSiYuan, RecordingEndpoint
from kplug_lab.testing.fake_siyuan import forward_proxy_target_allowed


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[FakeSiYuan]:
    async with FakeSiYuan(tmp_path / "ws", token="secret-token") as k:
        yield k


@pytest.fixture
async def api(kernel: FakeSiYuan) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=kernel.url, headers={"Authorization": f"Token {kernel.token}"},
                                 trust_env=False) as client:
        yield client


async def ok(api: httpx.AsyncClient, path: str, body: Any = None) -> Any:
    resp = await api.post(path, json=body if body is not None else {})
    assert resp.status_code == 200, resp.text
    env = resp.json()
    assert env["code"] == 0, env
    assert env["msg"] == ""
    return env["data"]


async def fails(api: httpx.AsyncClient, path: str, body: Any, status: int = 200, code: int = -1) -> str:
    resp = await api.post(path, json=body)
    assert resp.status_code == status, resp.text
    env = resp.json()
    assert env["code"] == code, env
    assert env["data"] is None
    return str(env["msg"])


async def push_socket(kernel: FakeSiYuan) -> WebSocketClientConnection:
    return await websocket_connect(f"{kernel.ws_url}?app=test&id=s1&type=main&token={kernel.token}")


async def next_push(conn: WebSocketClientConnection) -> dict[str, Any]:
    msg = await asyncio.wait_for(conn.read_message(), 5)
    assert isinstance(msg, str)
    result: dict[str, Any] = json.loads(msg)
    return result


# ---- auth and routing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Authorization": "Token secret-token"}, {"Authorization": "token secret-token"},
    {"Authorization": "Bearer secret-token"}, {"Authorization": "bearer secret-token"},
    {"X-Auth-Token": "secret-token"},
])
async def test_every_accepted_token_form_is_authorized(kernel: FakeSiYuan, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(trust_env=False) as c:
        resp = await c.post(kernel.url + "/api/notebook/lsNotebooks", headers=headers, json={})
    assert resp.status_code == 200
    assert resp.json()["code"] == 0
    assert kernel.requests[-1].authorized


async def test_token_in_query_is_accepted(kernel: FakeSiYuan) -> None:
    async with httpx.AsyncClient(trust_env=False) as c:
        resp = await c.post(f"{kernel.url}/api/notebook/lsNotebooks?token={kernel.token}", json={})
    assert resp.json()["code"] == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token wrong"}, {"Authorization": "Basic secret-token"},
                                     {"X-Auth-Token": "nope"}])
async def test_missing_or_wrong_token_gets_401_envelope(kernel: FakeSiYuan, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(trust_env=False) as c:
        resp = await c.post(kernel.url + "/api/query/sql", headers=headers, json={"stmt": "SELECT 1"})
    assert resp.status_code == 401
    body = resp.json()
    assert body["code"] == -1
    assert body["msg"].startswith("Auth failed")
    assert not kernel.requests[-1].authorized
    assert kernel.requests[-1].status == 401


async def test_version_needs_no_auth_and_answers_get_and_post(kernel: FakeSiYuan) -> None:
    async with httpx.AsyncClient(trust_env=False) as c:
        for resp in (await c.post(kernel.url + "/api/system/version"), await c.get(kernel.url + "/api/system/version")):
            assert resp.json() == {"code": 0, "msg": "", "data": kernel.version}


async def test_unknown_endpoint_and_wrong_method_are_gin_404(api: httpx.AsyncClient) -> None:
    for resp in (await api.post("/api/nope/nothing", json={}), await api.get("/api/query/sql")):
        assert resp.status_code == 404
        assert resp.text == "404 page not found"
        assert resp.headers["content-type"].startswith("text/plain")


async def test_invalid_json_body_is_an_envelope_error(api: httpx.AsyncClient) -> None:
    resp = await api.post("/api/query/sql", content=b"{not json")
    assert resp.status_code == 200
    assert resp.json()["code"] == -1
    assert "not valid JSON" in resp.json()["msg"]


async def test_requests_are_recorded_with_their_json(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    await ok(api, "/api/query/sql", {"stmt": "SELECT 1 AS one"})
    [rec] = kernel.requests_to("/api/query/sql")
    assert rec.method == "POST"
    assert rec.json == {"stmt": "SELECT 1 AS one"}
    assert rec.status == 200


# ---- system and notebooks -----------------------------------------------------------------------------

async def test_get_conf_and_ls_notebooks(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    conf = await ok(api, "/api/system/getConf")
    assert set(conf) == {"conf", "start", "isPublish"}
    assert conf["conf"]["system"]["workspaceDir"] == str(kernel.workspace)
    assert conf["conf"]["system"]["kernelVersion"] == kernel.version
    notebooks = (await ok(api, "/api/notebook/lsNotebooks"))["notebooks"]
    assert [nb["name"] for nb in notebooks] == ["Test"]
    assert notebooks[0]["id"] == kernel.notebook
    assert {"id", "name", "icon", "sort", "closed"} <= set(notebooks[0])


# ---- SQL and blocks ----------------------------------------------------------------------------------

async def test_sql_reads_the_blocks_table_with_siyuan_columns(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    rows = await ok(api, "/api/query/sql", {"stmt": "SELECT * FROM blocks ORDER BY type"})
    assert [r["type"] for r in rows] == ["d", "p"]
    doc, para = rows
    assert {"id", "parent_id", "root_id", "hash", "box", "path", "hpath", "name", "alias", "memo", "tag",
            "content", "fcontent", "markdown", "length", "type", "subtype", "ial", "sort", "created",
            "updated"} == set(doc)
    assert doc["id"] == kernel.document
    assert doc["content"] == "Welcome"
    assert doc["hpath"] == "/Welcome"
    assert doc["path"] == f"/{kernel.document}.sy"
    assert para["parent_id"] == para["root_id"] == kernel.document
    assert para["content"] == "Hello from the fake kernel."
    assert para["box"] == kernel.notebook


async def test_sql_refuses_writes_and_reports_sql_errors(api: httpx.AsyncClient) -> None:
    assert "read-only" in await fails(api, "/api/query/sql", {"stmt": "DELETE FROM blocks"})
    assert "no such table" in await fails(api, "/api/query/sql", {"stmt": "SELECT * FROM nope"})
    assert "[stmt] is required" in await fails(api, "/api/query/sql", {})
    rows = await ok(api, "/api/query/sql", {"stmt": "SELECT count(*) AS n FROM blocks"})
    assert rows == [{"n": 2}]


async def test_append_insert_update_delete_keep_the_sql_table_current(
        kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    doc = kernel.document
    [tx] = await ok(api, "/api/block/appendBlock", {"dataType": "markdown", "data": "## Plans", "parentID": doc})
    [op] = tx["doOperations"]
    assert op["action"] == "insert" and op["parentID"] == doc and tx["undoOperations"] is None
    heading = op["id"]
    assert f'data-node-id="{heading}"' in op["data"]

    [tx] = await ok(api, "/api/block/insertBlock", {"dataType": "markdown", "data": "first step",
                                                    "previousID": heading})
    step = tx["doOperations"][0]["id"]
    assert tx["doOperations"][0]["previousID"] == heading
    assert tx["doOperations"][0]["parentID"] == doc

    [tx] = await ok(api, "/api/block/prependBlock", {"dataType": "dom", "data": "<p>Top &amp; first</p>",
                                                     "parentID": doc})
    top = tx["doOperations"][0]["id"]

    rows = await ok(api, "/api/query/sql", {"stmt": f"SELECT id, type, subtype, content FROM blocks "
                                                    f"WHERE parent_id = '{doc}' ORDER BY sort"})
    assert [(r["type"], r["subtype"], r["content"]) for r in rows] == [
        ("p", "", "Top & first"), ("p", "", "Hello from the fake kernel."), ("h", "h2", "Plans"),
        ("p", "", "first step")]
    assert rows[0]["id"] == top and rows[2]["id"] == heading and rows[3]["id"] == step

    [tx] = await ok(api, "/api/block/updateBlock", {"dataType": "markdown", "data": "first step, done", "id": step})
    assert tx["doOperations"][0]["action"] == "update"
    [row] = await ok(api, "/api/query/sql", {"stmt": f"SELECT content, markdown FROM blocks WHERE id = '{step}'"})
    assert row == {"content": "first step, done", "markdown": "first step, done"}

    [tx] = await ok(api, "/api/block/deleteBlock", {"id": step})
    assert tx["doOperations"][0] == {"action": "delete", "data": None, "id": step, "parentID": "",
                                     "previousID": "", "nextID": "", "retData": None}
    assert await ok(api, "/api/query/sql", {"stmt": f"SELECT id FROM blocks WHERE id = '{step}'"}) == []


async def test_block_errors_are_envelopes(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    assert "not found" in await fails(api, "/api/block/updateBlock", {"id": "20200101000000-missing",
                                                                      "data": "x", "dataType": "markdown"})
    assert "[parentID] is required" in await fails(api, "/api/block/appendBlock", {"data": "x"})
    assert "dataType" in await fails(api, "/api/block/appendBlock", {"data": "x", "dataType": "html",
                                                                     "parentID": kernel.document})
    assert "document" in await fails(api, "/api/block/deleteBlock", {"id": kernel.document})


async def test_block_info_kramdown_children(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    [para] = await ok(api, "/api/block/getChildBlocks", {"id": kernel.document})
    assert para["type"] == "p" and "subType" not in para
    info = await ok(api, "/api/block/getBlockInfo", {"id": para["id"]})
    assert info == {"box": kernel.notebook, "path": f"/{kernel.document}.sy", "rootID": kernel.document,
                    "rootTitle": "Welcome", "rootChildID": para["id"], "rootIcon": ""}
    kd = await ok(api, "/api/block/getBlockKramdown", {"id": para["id"]})
    assert kd["id"] == para["id"]
    assert kd["kramdown"].startswith("Hello from the fake kernel.\n{: id=\"" + para["id"] + '"')
    await ok(api, "/api/block/appendBlock", {"data": "# Title\n\n- a\n- b\n\n```js\nx()\n```",
                                             "parentID": kernel.document, "dataType": "markdown"})
    kids = await ok(api, "/api/block/getChildBlocks", {"id": kernel.document})
    assert [(k["type"], k.get("subType")) for k in kids] == [("p", None), ("h", "h1"), ("l", "u"), ("c", None)]


async def test_block_attrs_get_set_batch_and_sql(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    [para] = await ok(api, "/api/block/getChildBlocks", {"id": kernel.document})
    pid = para["id"]
    assert await ok(api, "/api/attr/setBlockAttrs", {"id": pid, "attrs": {"custom-mood": "good",
                                                                          "name": "greeting"}}) is None
    attrs = await ok(api, "/api/attr/getBlockAttrs", {"id": pid})
    assert attrs["custom-mood"] == "good" and attrs["name"] == "greeting" and attrs["id"] == pid
    assert "updated" in attrs
    doc_attrs = await ok(api, "/api/attr/getBlockAttrs", {"id": kernel.document})
    assert doc_attrs["title"] == "Welcome" and doc_attrs["type"] == "doc"

    assert await ok(api, "/api/attr/batchSetBlockAttrs", {"blockAttrs": [
        {"id": pid, "attrs": {"custom-mood": ""}}, {"id": kernel.document, "attrs": {"custom-x": "1"}}]}) is None
    batch = await ok(api, "/api/attr/batchGetBlockAttrs", {"ids": [pid, kernel.document]})
    assert "custom-mood" not in batch[pid]
    assert batch[kernel.document]["custom-x"] == "1"

    [row] = await ok(api, "/api/query/sql", {"stmt": f"SELECT name, ial FROM blocks WHERE id = '{pid}'"})
    assert row["name"] == "greeting" and 'name="greeting"' in row["ial"]
    rows = await ok(api, "/api/query/sql", {"stmt": "SELECT block_id, name, value FROM attributes ORDER BY name"})
    assert {(r["block_id"], r["name"], r["value"]) for r in rows} == {(kernel.document, "custom-x", "1"),
                                                                     (pid, "name", "greeting")}
    assert "string" in await fails(api, "/api/attr/setBlockAttrs", {"id": pid, "attrs": {"custom-n": 3}})
    assert "managed by the kernel" in await fails(api, "/api/attr/setBlockAttrs", {"id": pid, "attrs": {"id": "x"}})


async def test_hpath_by_path_and_by_id(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    child = await ok(api, "/api/filetree/createDocWithMd", {"notebook": kernel.notebook, "path": "/Welcome/Child",
                                                            "markdown": "text"})
    [row] = await ok(api, "/api/query/sql", {"stmt": f"SELECT path FROM blocks WHERE id = '{child}'"})
    assert row["path"] == f"/{kernel.document}/{child}.sy"
    assert await ok(api, "/api/filetree/getHPathByID", {"id": child}) == "/Welcome/Child"
    assert await ok(api, "/api/filetree/getHPathByPath", {"notebook": kernel.notebook,
                                                          "path": row["path"]}) == "/Welcome/Child"
    assert "not found" in await fails(api, "/api/filetree/getHPathByPath", {"notebook": kernel.notebook,
                                                                            "path": "/nope.sy"})


# ---- files -------------------------------------------------------------------------------------------

async def test_put_get_read_remove_file(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    resp = await api.post("/api/file/putFile", data={"path": "/data/notes/a.txt", "isDir": "false",
                                                     "modTime": "1700000000000"},
                          files={"file": ("a.txt", b"hello \x00 bytes")})
    assert resp.json() == {"code": 0, "msg": "", "data": None}
    assert (kernel.workspace / "data/notes/a.txt").read_bytes() == b"hello \x00 bytes"
    resp = await api.post("/api/file/putFile", data={"path": "/data/notes/sub", "isDir": "true"})
    assert resp.json()["code"] == 0

    resp = await api.post("/api/file/getFile", json={"path": "/data/notes/a.txt"})
    assert resp.status_code == 200
    assert resp.content == b"hello \x00 bytes"
    assert resp.headers["content-type"].startswith("text/plain")

    entries = await ok(api, "/api/file/readDir", {"path": "/data/notes"})
    assert [(e["name"], e["isDir"], e["isSymlink"]) for e in entries] == [("a.txt", False, False), ("sub", True, False)]
    assert entries[0]["updated"] == 1700000000

    assert await ok(api, "/api/file/removeFile", {"path": "/data/notes/a.txt"}) is None
    assert not (kernel.workspace / "data/notes/a.txt").exists()


async def test_file_errors_are_http_202_with_status_codes(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    (kernel.workspace / "data/dir").mkdir()
    (kernel.workspace / "data/file.txt").write_text("x")
    assert "no such file" in await fails(api, "/api/file/getFile", {"path": "/data/missing"}, 202, 404)
    await fails(api, "/api/file/getFile", {"path": "/data/dir"}, 202, 405)
    await fails(api, "/api/file/readDir", {"path": "/data/file.txt"}, 202, 405)
    await fails(api, "/api/file/readDir", {"path": "/data/missing"}, 202, 404)
    await fails(api, "/api/file/removeFile", {"path": "/data/missing"}, 202, 404)
    resp = await api.post("/api/file/putFile", data={"path": "/data/x.txt"})
    assert resp.status_code == 202 and resp.json()["code"] == 400


@pytest.mark.parametrize("path", ["/../outside.txt", "../../etc/passwd", "/data/../../outside.txt", "/data/link/x"])
async def test_file_api_is_confined_to_the_workspace(kernel: FakeSiYuan, api: httpx.AsyncClient, path: str,
                                                     tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (kernel.workspace / "data/link").symlink_to(tmp_path)
    (tmp_path / "x").write_text("secret")
    assert "outside the workspace" in await fails(api, "/api/file/getFile", {"path": path}, 202, 403)
    await fails(api, "/api/file/removeFile", {"path": path}, 202, 403)
    resp = await api.post("/api/file/putFile", data={"path": path}, files={"file": ("f", b"evil")})
    assert resp.status_code == 202 and resp.json()["code"] == 403
    assert (tmp_path / "outside.txt").read_text() == "secret"
    assert (tmp_path / "x").read_text() == "secret"


# ---- notifications -----------------------------------------------------------------------------------

async def test_push_msg_and_err_msg_are_recorded_and_pushed(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    conn = await push_socket(kernel)
    try:
        data = await ok(api, "/api/notification/pushMsg", {"msg": "saved", "timeout": 3000})
        assert set(data) == {"id"}
        pushed = await next_push(conn)
        assert pushed["cmd"] == "msg" and pushed["msg"] == "saved"
        assert pushed["data"] == {"closeTimeout": 3000, "id": data["id"]}
        await ok(api, "/api/notification/pushErrMsg", {"msg": "broken"})
        assert (await next_push(conn))["cmd"] == "errmsg"
    finally:
        conn.close()
    assert [(m["kind"], m["msg"], m["timeout"]) for m in kernel.messages] == [("msg", "saved", 3000),
                                                                             ("errmsg", "broken", 7000)]


# ---- forwardProxy ------------------------------------------------------------------------------------

async def test_forward_proxy_reaches_a_loopback_endpoint(api: httpx.AsyncClient) -> None:
    async with RecordingEndpoint() as endpoint:
        data = await ok(api, "/api/network/forwardProxy", {
            "url": endpoint.url + "/collect?x=1", "method": "PUT", "timeout": 5000, "contentType": "text/plain",
            "headers": [{"X-Api-Key": "k1"}, {"X-Trace": "t"}], "payload": "hi there", "payloadEncoding": "text",
        })
        [got] = endpoint.received
        assert (got.method, got.path, got.body) == ("PUT", "/collect", b"hi there")
        assert got.headers["X-Api-Key"] == "k1" and got.headers["X-Trace"] == "t"
        assert got.headers["Content-Type"] == "text/plain"
        assert set(data) == {"body", "bodyEncoding", "contentType", "elapsed", "headers", "status", "url"}
        assert data["status"] == 200 and data["bodyEncoding"] == "text"
        assert json.loads(data["body"]) == {"ok": True, "received": 1}
        assert data["headers"]["Content-Type"] == ["application/json"]
        assert data["url"] == endpoint.url + "/collect?x=1"

        endpoint.fail_next(1, status=503)
        data = await ok(api, "/api/network/forwardProxy", {
            "url": endpoint.url + "/b", "payload": {"events": [1, 2]}, "responseEncoding": "base64"})
        assert data["status"] == 503 and data["bodyEncoding"] == "base64"
        assert endpoint.received[-1].json() == {"events": [1, 2]}
        assert endpoint.received[-1].method == "POST"

        await ok(api, "/api/network/forwardProxy", {"url": endpoint.url, "payload": "aGk=",
                                                    "payloadEncoding": "base64"})
        assert endpoint.received[-1].body == b"hi"


@pytest.mark.parametrize("url", ["http://example.com/", "http://10.0.0.1/", "http://192.168.1.1:8080/x",
                                 "https://8.8.8.8/", "http://[2001:db8::1]/", "ftp://127.0.0.1/", "file:///etc/passwd",
                                 "http://127.0.0.1.nip.io/", "not a url"])
async def test_forward_proxy_refuses_every_non_loopback_target(kernel: FakeSiYuan, api: httpx.AsyncClient,
                                                               url: str) -> None:
    msg = await fails(api, "/api/network/forwardProxy", {"url": url, "payload": "x"})
    assert "only forwards to loopback" in msg
    assert not forward_proxy_target_allowed(url)


async def test_forward_proxy_refuses_a_redirect_off_loopback(api: httpx.AsyncClient) -> None:
    from tornado import web

    class Redirect(web.RequestHandler):
        def get(self) -> None:
            self.redirect("http://10.1.2.3/stolen")

    async with loopback_app([(r"/", Redirect)]) as url:
        msg = await fails(api, "/api/network/forwardProxy", {"url": f"{url}/", "method": "GET"})
        assert "only forwards to loopback" in msg and "10.1.2.3" in msg


async def test_forward_proxy_reports_a_dead_target(api: httpx.AsyncClient) -> None:
    msg = await fails(api, "/api/network/forwardProxy", {"url": f"http://127.0.0.1:{free_port()}/"})
    assert msg.startswith("forward request failed:")


def test_loopback_targets_are_allowed() -> None:
    for url in ("http://127.0.0.1:1/x", "http://localhost/", "https://127.8.9.10/", "http://[::1]:80/"):
        assert forward_proxy_target_allowed(url)


# ---- /ws ---------------------------------------------------------------------------------------------

async def test_ws_pushes_transactions_in_siyuan_envelope(kernel: FakeSiYuan, api: httpx.AsyncClient) -> None:
    conn = await push_socket(kernel)
    try:
        [tx] = await ok(api, "/api/block/appendBlock", {"data": "pushed", "dataType": "markdown",
                                                        "parentID": kernel.document})
        msg = await next_push(conn)
        assert set(msg) == {"cmd", "code", "msg", "data", "reqId", "app", "sid", "pushMode", "callback"}
        assert msg["cmd"] == "transactions" and msg["code"] == 0 and msg["pushMode"] == 0
        assert msg["data"] == [tx]
        await ok(api, "/api/attr/setBlockAttrs", {"id": kernel.document, "attrs": {"custom-a": "b"}})
        msg = await next_push(conn)
        assert msg["data"][0]["doOperations"][0]["action"] == "updateAttrs"
    finally:
        conn.close()
    assert len(kernel.transactions()) == 2


async def test_ws_accepts_header_auth_and_refuses_a_wrong_token(kernel: FakeSiYuan) -> None:
    from tornado.httpclient import HTTPClientError, HTTPRequest

    conn = await websocket_connect(HTTPRequest(kernel.ws_url + "?type=main",
                                               headers={"X-Auth-Token": kernel.token}))
    conn.close()
    with pytest.raises(HTTPClientError) as err:
        await websocket_connect(kernel.ws_url + "?type=main&token=wrong")
    assert err.value.code == 401
    assert kernel.requests[-1].path == "/ws" and not kernel.requests[-1].authorized


async def test_stop_closes_push_sockets(tmp_path: Path) -> None:
    kernel = await FakeSiYuan(tmp_path / "w2").start()
    conn = await push_socket(kernel)
    await kernel.aclose()
    assert await asyncio.wait_for(conn.read_message(), 5) is None


# ---- running modes -----------------------------------------------------------------------------------

def test_runs_in_a_background_thread(tmp_path: Path) -> None:
    with FakeSiYuan(tmp_path / "ws").run_in_thread() as kernel:
        resp = httpx.post(kernel.url + "/api/query/sql", json={"stmt": "SELECT count(*) AS n FROM blocks"},
                          headers={"Authorization": f"Token {kernel.token}"}, trust_env=False)
        assert resp.json()["data"] == [{"n": 2}]
        url = kernel.url
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + "/api/system/version", trust_env=False)


def test_command_line_prints_url_and_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "kplug_lab.testing.fake_siyuan", "--port", "0", "--token", "T",
                             "--workspace", str(tmp_path / "ws")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake SiYuan kernel")
        url = line.rsplit(" ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        assert proc.stdout.readline().strip() == "Token: T"
        resp = httpx.post(url + "/api/notebook/lsNotebooks", headers={"Authorization": "Token T"}, trust_env=False)
        assert resp.json()["data"]["notebooks"][0]["name"] == "Test"
    finally:
        proc.terminate()
        proc.wait(10)
