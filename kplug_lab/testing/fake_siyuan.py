"""A fake SiYuan kernel for tests: the HTTP API shapes a kernel plugin reaches through ``siyuan.client``.

It answers like SiYuan's gin router: every API route is a ``POST`` answering the envelope
``{"code": 0, "msg": "", "data": ...}``; a wrong token gets HTTP 401 ``{"code": -1, "msg": "Auth failed ..."}``;
the file API answers its errors with HTTP 202 and an envelope whose ``code`` is an HTTP status; an unknown
route is a plain-text 404. Blocks live in a real SQLite ``blocks`` table (see ``_blocks.py``) that
``/api/query/sql`` reads, and every block change is pushed on ``/ws`` as a ``transactions`` message.

Two differences from a real kernel are deliberate: ``/api/network/forwardProxy`` only reaches loopback
addresses (so no test can leave the machine), and ``/api/query/sql`` only runs read-only statements.

Use it from a test on the running asyncio loop::

    async with FakeSiYuan(tmp_path / "ws") as kernel:
        config = HostConfig(siyuan_url=kernel.url, siyuan_token=kernel.token)

or in a background thread (any test style)::

    with FakeSiYuan(tmp_path / "ws").run_in_thread() as kernel:
        ...

or from a shell: ``python -m kplug_lab.testing.fake_siyuan --port 6806 --token T --workspace DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import ipaddress
import json
import mimetypes
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tornado import httpserver, netutil, web, websocket

from ..errors import KplugError
from ._blocks import BlockError, BlockStore, dom_to_markdown

__all__ = ["FakeSiYuan", "RecordedRequest", "forward_proxy_target_allowed"]

#: the version ``/api/system/version`` reports
FAKE_VERSION = "3.6.0"
_AUTH_FAILED = "Auth failed [token]: missing or wrong API token (send Authorization: Token <token>)"


@dataclass
class RecordedRequest:
    """One request the fake kernel received (inspect ``FakeSiYuan.requests`` in tests)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    authorized: bool
    status: int = 0
    #: the JSON body, when it parsed as JSON
    json: Any = None


@dataclass
class _Result:
    data: Any = None
    code: int = 0
    msg: str = ""
    status: int = 200


class _ApiError(KplugError):
    def __init__(self, msg: str, code: int = -1, status: int = 200) -> None:
        super().__init__(msg)
        self.code = code
        self.status = status


def forward_proxy_target_allowed(url: str) -> bool:
    """True if ``url`` is an http(s) URL whose host is a loopback address (``localhost`` or 127/8, ::1)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FakeSiYuan:
    """A SiYuan kernel stand-in on ``127.0.0.1`` with a workspace directory, blocks, and a push channel.

    Attributes a test inspects: ``url``, ``token``, ``requests`` (every request, in order), ``broadcasts``
    (every message pushed on ``/ws``), ``messages`` (``pushMsg``/``pushErrMsg`` calls), ``blocks`` (the
    store: notebooks, ``query``, ``block``), ``notebook`` and ``document`` (the ids of the seeded notebook
    "Test" and its document "/Welcome", which holds one paragraph).

    ``loaded_plugins`` is what SiYuan's own kernel-plugin host runs (name -> state code, spec §2.1), reported by
    ``/api/plugin/listLoadedPlugins`` and ``GET /api/plugin`` (spec §5.7); a test sets it to play "SiYuan
    runs this plugin itself" (it may be changed from any thread).
    """

    def __init__(self, workspace: Path | str, token: str | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, version: str = FAKE_VERSION) -> None:
        self.workspace = Path(workspace).resolve()
        for sub in ("conf", "data", "temp"):
            (self.workspace / sub).mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16) if token is None else token
        self.version = version
        self.requests: list[RecordedRequest] = []
        self.broadcasts: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.loaded_plugins: dict[str, int] = {}
        self.blocks = BlockStore()
        nb = self.blocks.add_notebook("Test")
        self.notebook = nb.id
        self.document = self.blocks.create_doc(nb.id, "/Welcome", "Hello from the fake kernel.")
        self._host = host
        self._port = port
        self._server: httpserver.HTTPServer | None = None
        self._sockets: set[_PushSocket] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._boot_id = secrets.token_hex(4)
        #: a browser session: the ``siyuan`` cookie ``/api/system/loginAuth`` sets (SiYuan's session cookie)
        self.session = secrets.token_hex(16)
        #: pages served at their path to anyone (``serve_page``), as SiYuan serves its app's files
        self.pages: dict[str, tuple[str, bytes]] = {}
        #: close codes and reasons the kernel received on ``/ws/test/echo``
        self.echo_closes: list[tuple[int | None, str | None]] = []
        self._app = web.Application([
            (r"/ws", _PushSocket, {"kernel": self}),
            (r"/ws/test/echo", _EchoSocket, {"kernel": self}),
            (r"/test/upload", _UploadSink, {"kernel": self}),
            (r"/test/download", _Download, {"kernel": self}),
            (r"/test/events", _Events, {"kernel": self}),
            (r"/test/redirect", _Redirect, {"kernel": self}),
            (r"/test/files/(.*)", web.StaticFileHandler, {"path": str(self.workspace / "data" / "assets")}),
            (r"/(.*)", _ApiHandler, {"kernel": self}),
        ])

    # ---- running ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake kernel is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}/ws"

    async def start(self) -> FakeSiYuan:
        """Listen on the running asyncio loop (port 0 picks a free one)."""
        if self._server is not None:
            raise RuntimeError("the fake kernel is already started")
        sockets = netutil.bind_sockets(self._port, self._host)
        self._port = sockets[0].getsockname()[1]
        self._server = httpserver.HTTPServer(self._app)
        self._server.add_sockets(sockets)
        self._loop = asyncio.get_running_loop()
        return self

    async def aclose(self) -> None:
        """Stop listening, close every push socket and the block store."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            for sock in list(self._sockets):
                sock.close(1001, "kernel stopping")
            await server.close_all_connections()
        self.blocks.close()

    async def __aenter__(self) -> FakeSiYuan:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @contextlib.contextmanager
    def run_in_thread(self) -> Iterator[FakeSiYuan]:
        """Serve from a background thread with its own loop for the duration of the ``with`` block."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop()

    def start_in_thread(self) -> FakeSiYuan:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-siyuan", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop a kernel started with ``start_in_thread`` (waits for its thread)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            raise RuntimeError("stop() is for a kernel started in a thread; await aclose() otherwise")
        fut = asyncio.run_coroutine_threadsafe(self.aclose(), loop)
        fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    # ---- what tests look at -------------------------------------------------------------------------

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def transactions(self) -> list[dict[str, Any]]:
        """Every ``transactions`` push so far (the ``data`` of each message is a list of transactions)."""
        return [m for m in self.broadcasts if m["cmd"] == "transactions"]

    # ---- push channel -------------------------------------------------------------------------------

    def push(self, cmd: str, data: Any, *, app: str = "", sid: str = "", callback: str = "",
             code: int = 0, msg: str = "") -> dict[str, Any]:
        """Send a SiYuan push message to every ``/ws`` session (and record it)."""
        message = {"cmd": cmd, "reqId": int(time.time() * 1000), "app": app, "sid": sid, "pushMode": 0,
                   "callback": callback, "code": code, "msg": msg, "data": data}
        self.broadcasts.append(message)
        text = json.dumps(message, ensure_ascii=False)
        for sock in list(self._sockets):
            with contextlib.suppress(websocket.WebSocketClosedError):
                sock.write_message(text)
        return message

    def _push_transaction(self, operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        transactions = [{"doOperations": operations, "undoOperations": None}]
        self.push("transactions", transactions, app=self._boot_id)
        return transactions

    # ---- auth ---------------------------------------------------------------------------------------

    def serve_page(self, path: str, html: str, content_type: str = "text/html; charset=utf-8") -> None:
        """Serve ``html`` at ``GET path`` (no authentication: SiYuan serves its app's files to anyone)."""
        self.pages[path] = (content_type, html.encode("utf-8"))

    def authorized(self, headers: Any, query_token: str | None) -> bool:
        if not self.token:
            return True
        for cookie in headers.get_list("Cookie") if hasattr(headers, "get_list") else [headers.get("Cookie", "")]:
            for part in cookie.split(";"):
                name, _, value = part.strip().partition("=")
                if name == "siyuan" and secrets.compare_digest(value, self.session):
                    return True
        if secrets.compare_digest(headers.get("X-Auth-Token", ""), self.token):
            return True
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        if scheme in ("Token", "token", "Bearer", "bearer") and secrets.compare_digest(value.strip(), self.token):
            return True
        return query_token is not None and secrets.compare_digest(query_token, self.token)

    # ---- the workspace (file API) -------------------------------------------------------------------

    def workspace_path(self, path: Any) -> Path:
        """``path`` (workspace-relative, e.g. ``/data/foo.md``) resolved inside the workspace, or a 403."""
        if not isinstance(path, str) or not path:
            raise _ApiError("[path] is required and must be a string", code=400, status=202)
        target = (self.workspace / path.lstrip("/")).resolve()
        if target != self.workspace and self.workspace not in target.parents:
            raise _ApiError(f"Forbidden: [{path}] is outside the workspace", code=403, status=202)
        return target


# ---- HTTP ---------------------------------------------------------------------------------------------

Endpoint = Callable[["_ApiHandler", Any], Awaitable[_Result]]
_ROUTES: dict[str, Endpoint] = {}
_NO_AUTH = {"/api/system/version", "/api/system/loginAuth"}
_GET_TOO = {"/api/system/version", "/api/plugin"}


def _route(path: str) -> Callable[[Endpoint], Endpoint]:
    def register(fn: Endpoint) -> Endpoint:
        _ROUTES[path] = fn
        return fn
    return register


def _arg(body: Any, name: str, kind: type | tuple[type, ...] = str, required: bool = True) -> Any:
    value = body.get(name) if isinstance(body, dict) else None
    if value is None:
        if required:
            raise _ApiError(f"[{name}] is required")
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _ApiError(f"[{name}] must be a {names}, got {type(value).__name__}")
    return value


class _ApiHandler(web.RequestHandler):
    kernel: FakeSiYuan

    def initialize(self, kernel: FakeSiYuan) -> None:
        self.kernel = kernel
        self._record: RecordedRequest | None = None

    def check_xsrf_cookie(self) -> None:
        return None

    async def get(self, path: str) -> None:
        page = self.kernel.pages.get("/" + path)
        if page is not None:
            self.kernel.requests.append(RecordedRequest("GET", "/" + path, dict(self.request.headers), b"",
                                                        authorized=True, status=200))
            self.raw(page[1], page[0])
            return
        await self._serve("/" + path, allow_get=True)

    async def post(self, path: str) -> None:
        await self._serve("/" + path, allow_get=False)

    async def put(self, path: str) -> None:
        self._not_found()

    async def delete(self, path: str) -> None:
        self._not_found()

    async def _serve(self, path: str, allow_get: bool) -> None:
        req = self.request
        record = RecordedRequest(req.method or "", path, dict(req.headers), req.body or b"", authorized=False)
        self._record = record
        self.kernel.requests.append(record)
        endpoint = _ROUTES.get(path)
        if endpoint is None or (allow_get and path not in _GET_TOO):
            self._not_found()
            return
        token = self.get_query_argument("token", None)
        record.authorized = path in _NO_AUTH or self.kernel.authorized(req.headers, token)
        if not record.authorized:
            self._envelope(_Result(code=-1, msg=_AUTH_FAILED, status=401))
            return
        body: Any = {}
        is_form = req.headers.get("Content-Type", "").startswith(("multipart/", "application/x-www-form-urlencoded"))
        if not is_form and req.body:
            try:
                body = json.loads(req.body)
            except ValueError:
                self._envelope(_Result(code=-1, msg="parses request failed: the body is not valid JSON"))
                return
            record.json = body
        try:
            result = await endpoint(self, body)
        except _ApiError as exc:
            result = _Result(code=exc.code, msg=str(exc), status=exc.status)
        except BlockError as exc:
            result = _Result(code=-1, msg=str(exc))
        if not self._finished:
            self._envelope(result)

    def _not_found(self) -> None:
        # gin's default NoRoute answer
        self.set_status(404)
        self.set_header("Content-Type", "text/plain")
        self.finish(b"404 page not found")
        if self._record is not None:
            self._record.status = 404

    def _envelope(self, result: _Result) -> None:
        self.set_status(result.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"code": result.code, "msg": result.msg, "data": result.data}, ensure_ascii=False))
        if self._record is not None:
            self._record.status = result.status

    def raw(self, data: bytes, content_type: str) -> None:
        self.set_header("Content-Type", content_type)
        self.finish(data)
        if self._record is not None:
            self._record.status = 200


# ---- system, notebooks, notifications ------------------------------------------------------------------

@_route("/api/system/version")
async def _version(h: _ApiHandler, body: Any) -> _Result:
    return _Result(h.kernel.version)


_STATE_NAMES = {0: "ready", 1: "loading", 2: "running", 3: "stopping", 4: "stopped", 5: "error"}


@_route("/api/plugin/listLoadedPlugins")
@_route("/api/plugin")
async def _list_loaded_plugins(h: _ApiHandler, body: Any) -> _Result:
    """The kernel plugins SiYuan's own host runs: ``PluginInfo[]``, or ``null`` when none (spec §5.7)."""
    infos = [{"name": name, "state": _STATE_NAMES.get(code, "unknown"), "stateCode": code, "methods": None}
             for name, code in sorted(dict(h.kernel.loaded_plugins).items())]
    return _Result(infos or None)


@_route("/api/system/loginAuth")
async def _login_auth(h: _ApiHandler, body: Any) -> _Result:
    if not isinstance(body, dict) or not secrets.compare_digest(str(body.get("authCode", "")), h.kernel.token):
        return _Result(code=-1, msg="Authentication failed")
    h.set_cookie("siyuan", h.kernel.session, path="/", httponly=True, samesite="Strict")
    return _Result(None)


@_route("/api/system/getNetwork")
async def _get_network(h: _ApiHandler, body: Any) -> _Result:
    return _Result({"proxy": {"scheme": "", "host": "", "port": ""}})


@_route("/api/system/getConf")
async def _get_conf(h: _ApiHandler, body: Any) -> _Result:
    k = h.kernel
    conf = {
        "appearance": {"mode": 0, "lang": "en_US"},
        "lang": "en_US",
        "system": {"id": k._boot_id, "name": "fake-siyuan", "kernelVersion": k.version, "os": "linux",
                   "container": "std", "workspaceDir": str(k.workspace), "dataDir": str(k.workspace / "data"),
                   "confDir": str(k.workspace / "conf")},
        "bazaar": {"trust": True, "petalDisabled": False},
        "api": {"token": "********"},
        "readonly": False,
    }
    return _Result({"conf": conf, "start": True, "isPublish": False})


@_route("/api/notebook/lsNotebooks")
async def _ls_notebooks(h: _ApiHandler, body: Any) -> _Result:
    return _Result({"notebooks": [nb.as_json() for nb in h.kernel.blocks.notebooks.values()]})


def _push_message(cmd: str) -> Endpoint:
    async def push(h: _ApiHandler, body: Any) -> _Result:
        msg = _arg(body, "msg")
        timeout = _arg(body, "timeout", (int, float), required=False)
        timeout = 7000 if timeout is None else timeout
        msg_id = secrets.token_hex(4)
        h.kernel.messages.append({"kind": cmd, "id": msg_id, "msg": msg, "timeout": timeout})
        h.kernel.push(cmd, {"closeTimeout": timeout, "id": msg_id}, msg=msg)
        return _Result({"id": msg_id})
    return push


_route("/api/notification/pushMsg")(_push_message("msg"))
_route("/api/notification/pushErrMsg")(_push_message("errmsg"))


# ---- SQL, blocks, attributes, filetree -----------------------------------------------------------------

@_route("/api/query/sql")
async def _sql(h: _ApiHandler, body: Any) -> _Result:
    return _Result(h.kernel.blocks.query(_arg(body, "stmt")))


def _markdown_of(body: Any) -> str:
    data = _arg(body, "data")
    data_type = _arg(body, "dataType", required=False) or "markdown"
    if data_type == "markdown":
        return str(data)
    if data_type == "dom":
        return dom_to_markdown(data)
    raise _ApiError(f'[dataType] must be "markdown" or "dom", got {data_type!r}')


def _insert_ops(h: _ApiHandler, ids: list[str], parent_id: str, previous_id: str, next_id: str) -> list[Any]:
    ops = []
    prev = previous_id
    for block_id in ids:
        ops.append({"action": "insert", "data": h.kernel.blocks.dom(block_id), "id": block_id,
                    "parentID": parent_id, "previousID": prev, "nextID": next_id, "retData": None})
        prev = block_id
    return h.kernel._push_transaction(ops)


@_route("/api/block/insertBlock")
async def _insert_block(h: _ApiHandler, body: Any) -> _Result:
    md = _markdown_of(body)
    previous_id = _arg(body, "previousID", required=False) or ""
    next_id = _arg(body, "nextID", required=False) or ""
    parent_id = _arg(body, "parentID", required=False) or ""
    blocks = h.kernel.blocks
    if not parent_id:
        anchor = previous_id or next_id
        if not anchor:
            raise _ApiError("one of [parentID], [previousID], [nextID] is required")
        parent_id = blocks.parent_of(anchor)
    ids = blocks.insert(parent_id, md, previous_id=previous_id, next_id=next_id)
    return _Result(_insert_ops(h, ids, parent_id, previous_id, next_id))


@_route("/api/block/appendBlock")
async def _append_block(h: _ApiHandler, body: Any) -> _Result:
    parent_id = _arg(body, "parentID")
    ids = h.kernel.blocks.insert(parent_id, _markdown_of(body), append=True)
    siblings = [c["id"] for c in h.kernel.blocks.children(parent_id)]
    before = siblings[siblings.index(ids[0]) - 1] if siblings.index(ids[0]) > 0 else ""
    return _Result(_insert_ops(h, ids, parent_id, before, ""))


@_route("/api/block/prependBlock")
async def _prepend_block(h: _ApiHandler, body: Any) -> _Result:
    parent_id = _arg(body, "parentID")
    ids = h.kernel.blocks.insert(parent_id, _markdown_of(body), append=False)
    return _Result(_insert_ops(h, ids, parent_id, "", ""))


@_route("/api/block/updateBlock")
async def _update_block(h: _ApiHandler, body: Any) -> _Result:
    block_id = _arg(body, "id")
    h.kernel.blocks.update(block_id, _markdown_of(body))
    op = {"action": "update", "data": h.kernel.blocks.dom(block_id), "id": block_id, "parentID": "",
          "previousID": "", "nextID": "", "retData": None}
    return _Result(h.kernel._push_transaction([op]))


@_route("/api/block/deleteBlock")
async def _delete_block(h: _ApiHandler, body: Any) -> _Result:
    block_id = _arg(body, "id")
    h.kernel.blocks.delete(block_id)
    op = {"action": "delete", "data": None, "id": block_id, "parentID": "", "previousID": "", "nextID": "",
          "retData": None}
    return _Result(h.kernel._push_transaction([op]))


@_route("/api/block/getBlockInfo")
async def _block_info(h: _ApiHandler, body: Any) -> _Result:
    blocks = h.kernel.blocks
    row = blocks.block(_arg(body, "id"))
    root = blocks.block(row["root_id"])
    first = blocks.children(root["id"])
    return _Result({"box": row["box"], "path": row["path"], "rootID": root["id"], "rootTitle": root["content"],
                    "rootChildID": first[0]["id"] if first else "", "rootIcon": ""})


@_route("/api/block/getBlockKramdown")
async def _block_kramdown(h: _ApiHandler, body: Any) -> _Result:
    block_id = _arg(body, "id")
    return _Result({"id": block_id, "kramdown": h.kernel.blocks.kramdown(block_id)})


@_route("/api/block/getChildBlocks")
async def _child_blocks(h: _ApiHandler, body: Any) -> _Result:
    children = h.kernel.blocks.children(_arg(body, "id"))
    out = []
    for c in children:
        item = {"id": c["id"], "type": c["type"]}
        if c["subtype"]:
            item["subType"] = c["subtype"]
        out.append(item)
    return _Result(out)


@_route("/api/attr/getBlockAttrs")
async def _get_attrs(h: _ApiHandler, body: Any) -> _Result:
    return _Result(h.kernel.blocks.attrs(_arg(body, "id")))


@_route("/api/attr/setBlockAttrs")
async def _set_attrs(h: _ApiHandler, body: Any) -> _Result:
    block_id = _arg(body, "id")
    h.kernel.blocks.set_attrs(block_id, _arg(body, "attrs", dict))
    op = {"action": "updateAttrs", "data": {"new": h.kernel.blocks.attrs(block_id)}, "id": block_id,
          "parentID": "", "previousID": "", "nextID": "", "retData": None}
    h.kernel._push_transaction([op])
    return _Result(None)


@_route("/api/attr/batchGetBlockAttrs")
async def _batch_get_attrs(h: _ApiHandler, body: Any) -> _Result:
    ids = _arg(body, "ids", list)
    return _Result({block_id: h.kernel.blocks.attrs(block_id) for block_id in ids})


@_route("/api/attr/batchSetBlockAttrs")
async def _batch_set_attrs(h: _ApiHandler, body: Any) -> _Result:
    items = _arg(body, "blockAttrs", list)
    ops = []
    for item in items:
        block_id = _arg(item, "id")
        h.kernel.blocks.set_attrs(block_id, _arg(item, "attrs", dict))
        ops.append({"action": "updateAttrs", "data": {"new": h.kernel.blocks.attrs(block_id)}, "id": block_id,
                    "parentID": "", "previousID": "", "nextID": "", "retData": None})
    if ops:
        h.kernel._push_transaction(ops)
    return _Result(None)


@_route("/api/filetree/getHPathByPath")
async def _hpath_by_path(h: _ApiHandler, body: Any) -> _Result:
    return _Result(h.kernel.blocks.hpath_by_path(_arg(body, "notebook"), _arg(body, "path")))


@_route("/api/filetree/getHPathByID")
async def _hpath_by_id(h: _ApiHandler, body: Any) -> _Result:
    return _Result(h.kernel.blocks.hpath_of(_arg(body, "id")))


@_route("/api/filetree/createDocWithMd")
async def _create_doc(h: _ApiHandler, body: Any) -> _Result:
    return _Result(h.kernel.blocks.create_doc(_arg(body, "notebook"), _arg(body, "path"),
                                              _arg(body, "markdown", required=False) or ""))


# ---- files (errors: HTTP 202 with an envelope whose code is an HTTP status) -----------------------------

def _file_error(msg: str, code: int) -> _ApiError:
    return _ApiError(msg, code=code, status=202)


@_route("/api/file/getFile")
async def _get_file(h: _ApiHandler, body: Any) -> _Result:
    path = body.get("path") if isinstance(body, dict) else None
    target = h.kernel.workspace_path(path)
    if not target.exists():
        raise _file_error(f"stat {path}: no such file or directory", 404)
    if target.is_dir():
        raise _file_error("file is a directory", 405)
    data = target.read_bytes()
    h.raw(data, mimetypes.guess_type(target.name)[0] or "application/octet-stream")
    return _Result()


@_route("/api/file/putFile")
async def _put_file(h: _ApiHandler, body: Any) -> _Result:
    args = h.request.body_arguments
    path = args.get("path", [b""])[0].decode("utf-8", "replace")
    if not path:
        raise _file_error("[path] is required (multipart field)", 400)
    target = h.kernel.workspace_path(path)
    is_dir = args.get("isDir", [b"false"])[0].decode().strip().lower() in ("true", "1")
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
        return _Result(None)
    files = h.request.files.get("file")
    if not files:
        raise _file_error("[file] is required (multipart file field) unless isDir is true", 400)
    if target.is_dir():
        raise _file_error(f"[{path}] is a directory", 405)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(files[0]["body"])
    os.replace(tmp, target)
    mod_time = args.get("modTime", [b""])[0].decode()
    if mod_time.isdigit():
        seconds = int(mod_time) / 1000
        os.utime(target, (seconds, seconds))
    return _Result(None)


@_route("/api/file/removeFile")
async def _remove_file(h: _ApiHandler, body: Any) -> _Result:
    path = _arg(body, "path")
    target = h.kernel.workspace_path(path)
    if target == h.kernel.workspace:
        raise _file_error("Forbidden: cannot remove the workspace", 403)
    if not target.exists() and not target.is_symlink():
        raise _file_error(f"stat {path}: no such file or directory", 404)
    if target.is_dir() and not target.is_symlink():
        import shutil

        shutil.rmtree(target)
    else:
        target.unlink()
    return _Result(None)


@_route("/api/file/readDir")
async def _read_dir(h: _ApiHandler, body: Any) -> _Result:
    path = _arg(body, "path")
    target = h.kernel.workspace_path(path)
    if not target.exists():
        raise _file_error(f"stat {path}: no such file or directory", 404)
    if not target.is_dir():
        raise _file_error("file is not a directory", 405)
    entries = []
    for entry in sorted(target.iterdir(), key=lambda p: p.name):
        try:
            st = entry.lstat()
        except OSError:
            continue
        entries.append({"isDir": entry.is_dir() and not entry.is_symlink(), "isSymlink": entry.is_symlink(),
                        "name": entry.name, "updated": int(st.st_mtime)})
    return _Result(entries)


# ---- forwardProxy (loopback only) ---------------------------------------------------------------------

_ENCODERS: dict[str, Callable[[bytes], str]] = {
    "base64": lambda b: base64.b64encode(b).decode(), "base64-std": lambda b: base64.b64encode(b).decode(),
    "base64-url": lambda b: base64.urlsafe_b64encode(b).decode(), "base32": lambda b: base64.b32encode(b).decode(),
    "base32-std": lambda b: base64.b32encode(b).decode(), "base32-hex": lambda b: base64.b32hexencode(b).decode(),
    "hex": lambda b: b.hex(),
}
_DECODERS: dict[str, Callable[[str], bytes]] = {
    "base64": base64.b64decode, "base64-std": base64.b64decode, "base64-url": base64.urlsafe_b64decode,
    "base32": base64.b32decode, "base32-std": base64.b32decode, "base32-hex": base64.b32hexdecode,
    "hex": bytes.fromhex,
}


def _refuse_non_loopback(request: httpx.Request) -> None:
    if not forward_proxy_target_allowed(str(request.url)):
        raise _ApiError(f"forward request refused: the fake kernel only forwards to loopback addresses, "
                        f"not [{request.url}]")


@_route("/api/network/forwardProxy")
async def _forward_proxy(h: _ApiHandler, body: Any) -> _Result:
    url = _arg(body, "url")
    if not forward_proxy_target_allowed(url):
        raise _ApiError(f"forward request refused: the fake kernel only forwards to loopback http(s) addresses "
                        f"(127.0.0.0/8, ::1, localhost), not [{url}]")
    method = (_arg(body, "method", required=False) or "POST").upper()
    timeout_ms = _arg(body, "timeout", (int, float), required=False) or 7000
    if timeout_ms < 1:
        timeout_ms = 7000
    headers: dict[str, str] = {}
    for pair in _arg(body, "headers", list, required=False) or []:
        if not isinstance(pair, dict):
            raise _ApiError("[headers] must be a list of {name: value} objects")
        headers.update({str(k): str(v) for k, v in pair.items()})
    headers["Content-Type"] = _arg(body, "contentType", required=False) or "application/json"
    encoding = _arg(body, "payloadEncoding", required=False) or "json"
    payload = body.get("payload")
    content: bytes | None
    if encoding in _DECODERS:
        try:
            content = _DECODERS[encoding](payload if isinstance(payload, str) else "")
        except (binascii.Error, ValueError) as exc:
            return _Result(code=-2, msg=f"decode {encoding} payload failed: {exc}")
    elif payload is None:
        content = None
    elif isinstance(payload, str):
        content = payload.encode("utf-8")
    else:
        content = json.dumps(payload).encode("utf-8")
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=timeout_ms / 1000, follow_redirects=True, trust_env=False,
                                     event_hooks={"request": [_async(_refuse_non_loopback)]}) as client:
            resp = await client.request(method, url, headers=headers, content=content)
    except httpx.HTTPError as exc:
        return _Result(code=-1, msg=f"forward request failed: {exc}")
    elapsed = int((time.monotonic() - started) * 1000)
    response_encoding = _arg(body, "responseEncoding", required=False) or "text"
    if response_encoding in _ENCODERS:
        text = _ENCODERS[response_encoding](resp.content)
    else:
        response_encoding = "text"
        text = resp.content.decode("utf-8", "replace")
    resp_headers: dict[str, list[str]] = {}
    for key, value in resp.headers.multi_items():
        resp_headers.setdefault("-".join(p.capitalize() for p in key.split("-")), []).append(value)
    return _Result({"url": url, "status": resp.status_code, "contentType": resp.headers.get("content-type", ""),
                    "body": text, "bodyEncoding": response_encoding, "headers": resp_headers, "elapsed": elapsed})


def _async(fn: Callable[[httpx.Request], None]) -> Callable[[httpx.Request], Awaitable[None]]:
    async def hook(request: httpx.Request) -> None:
        fn(request)
    return hook


# ---- the /ws push channel -----------------------------------------------------------------------------

class _PushSocket(websocket.WebSocketHandler):
    """``/ws?app=..&id=..&type=main``: receives every push message; what clients send is ignored."""

    kernel: FakeSiYuan

    def initialize(self, kernel: FakeSiYuan) -> None:
        self.kernel = kernel

    async def get(self, *args: Any, **kwargs: Any) -> None:
        req = self.request
        authorized = self.kernel.authorized(req.headers, self.get_query_argument("token", None))
        self.kernel.requests.append(RecordedRequest(req.method or "GET", "/ws", dict(req.headers), b"",
                                                    authorized=authorized, status=101 if authorized else 401))
        if not authorized:
            self.set_status(401)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps({"code": -1, "msg": _AUTH_FAILED, "data": None}))
            return
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return True  # authenticated by token; plugins dial from the host, not from a browser page

    def open(self, *args: str, **kwargs: str) -> None:
        self.kernel._sockets.add(self)

    def on_message(self, message: str | bytes) -> None:
        return None

    def on_close(self) -> None:
        self.kernel._sockets.discard(self)


# ---- test routes: streaming, ranges, redirects, a WebSocket echo (what the front door must pass through) ----

@web.stream_request_body
class _UploadSink(web.RequestHandler):
    """``POST /test/upload``: reads the body as it arrives and answers its size and sha256 (never holds it)."""

    def initialize(self, kernel: FakeSiYuan) -> None:
        self.kernel = kernel
        self._size = 0
        self._hash = hashlib.sha256()

    def prepare(self) -> None:
        self.request.connection.set_max_body_size(1 << 40)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        self._hash.update(chunk)

    def post(self) -> None:
        self.finish({"size": self._size, "sha256": self._hash.hexdigest(),
                     "contentType": self.request.headers.get("Content-Type", "")})

    put = post


def download_chunk(index: int, size: int = 64 * 1024) -> bytes:
    """The ``index``-th chunk of ``GET /test/download`` (deterministic, so a test can hash what it expects)."""
    return hashlib.sha256(str(index).encode()).digest() * (size // 32)


class _Download(web.RequestHandler):
    """``GET /test/download?chunks=N``: N chunks of 64 KiB, each flushed before the next (a chunked body)."""

    def initialize(self, kernel: FakeSiYuan) -> None:
        self.kernel = kernel

    async def get(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        for i in range(int(self.get_query_argument("chunks", "16"))):
            self.write(download_chunk(i))
            await self.flush()
        self.finish()


class _Events(web.RequestHandler):
    """``GET /test/events?n=N``: an event stream of N events, each flushed on its own, then the end."""

    def initialize(self, kernel: FakeSiYuan) -> None:
        self.kernel = kernel

    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        for i in range(int(self.get_query_argument("n", "3"))):
            self.write(f"id: {i}\ndata: event {i}\n\n")
            await self.flush()
        self.finish()


class _Redirect(web.RequestHandler):
    """``GET /test/redirect?to=PATH``: a 302 to ``PATH`` that also sets a cookie (as ``/check-auth`` does)."""

    def initialize(self, kernel: FakeSiYuan) -> None:
        self.kernel = kernel

    def get(self) -> None:
        self.set_cookie("redirected", "yes", path="/")
        self.redirect(self.get_query_argument("to", "/"))


class _EchoSocket(websocket.WebSocketHandler):
    """``/ws/test/echo``: sends every message back (text as text, binary as binary); ``close:<code>:<reason>``
    closes with that code; the close code the client sent is kept in ``kernel.echo_closes``."""

    def initialize(self, kernel: FakeSiYuan) -> None:
        self.kernel = kernel

    def check_origin(self, origin: str) -> bool:
        return True

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return subprotocols[0] if subprotocols else None

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str) and message.startswith("close:"):
            _, code, reason = message.split(":", 2)
            self.close(int(code), reason)
            return
        self.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        self.kernel.echo_closes.append((self.close_code, self.close_reason))


# ---- command line -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kplug_lab.testing.fake_siyuan",
                                     description="Serve a fake SiYuan kernel API on 127.0.0.1 for tests.")
    parser.add_argument("--port", type=int, default=6806, help="port (0: a free one); default 6806")
    parser.add_argument("--token", default=None, help="API token (default: a random one, printed)")
    parser.add_argument("--workspace", type=Path, required=True, help="workspace directory (created if missing)")
    args = parser.parse_args(argv)

    async def serve() -> None:
        kernel = FakeSiYuan(args.workspace, args.token, port=args.port)
        await kernel.start()
        print(f"fake SiYuan kernel {kernel.version} at {kernel.url}", flush=True)
        print(f"Token: {kernel.token}", flush=True)
        print(f"Workspace: {kernel.workspace}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await kernel.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
