"""The host operations a plugin's JS reaches through ``__kplug_native`` (contract: ``js/PROTOCOL.md``).

Sync ops return a JSON value or raise (the message becomes the JS error text). Async ops return a value
(settled in a later job), or a ``concurrent.futures.Future`` for work done off the plugin thread.
Argument checks with SiYuan's exact texts are done in JS; these functions trust the shapes but never
the contents (paths, URLs, sizes).
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ...protocol.routes import RouteMatch
from ...protocol.sse import encode_event
from .. import route_answers
from ..runtime.api import NO_PARAMS
from .client_events import ClientEvents, EventStreamError
from .client_socket import ClientSockets
from .durable import DurableOps
from .kernel import kernel_headers, kernel_url
from .private_ports import PortError, PrivatePorts, WebSocketPort
from .storage import StorageError

if TYPE_CHECKING:
    from ..runtime.plugin import Plugin

__all__ = ["HostOpError", "HostOps"]

_IO_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="kplug-io")
_MAX_RANDOM = 65536
_FETCH_TIMEOUT = 60.0


#: live timers one plugin may have: they live in the host, outside the sandbox's memory limit
MAX_TIMERS = 10_000


class HostOpError(Exception):
    """An op failed; the message is what the plugin sees."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _payload(data: bytes) -> dict[str, str]:
    """Bytes for the guest: valid UTF-8 as text (no base64 to decode in JS), anything else as base64."""
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": _b64(data)}


def _utf8(text: str) -> bytes:
    """A JS string as UTF-8; lone surrogates become U+FFFD, as SiYuan's Go conversion does."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text).encode("utf-8")


class HostOps:
    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self.sync: dict[str, Callable[..., Any]] = {
            "log": self.log,
            "timer_set": self.timer_set,
            "timer_clear": self.timer_clear,
            "random_bytes": self.random_bytes,
            "hrtime": self.hrtime,
            "rpc_bind": self.rpc_bind,
            "rpc_unbind": self.rpc_unbind,
            "tool_register": self.tool_register,
            "tool_unregister": self.tool_unregister,
            "resolve": self.resolve,
            "socket_url": self.socket_url,
            "event_open": self.event_open,
            "event_close": self.event_close,
            "port_sse_send": self.port_sse_send,
            "port_sse_close": self.port_sse_close,
        }
        self.async_: dict[str, Callable[..., Any]] = {
            "storage_get": self.storage_get,
            "storage_put": self.storage_put,
            "storage_remove": self.storage_remove,
            "storage_list": self.storage_list,
            "watcher_add": self.watcher_add,
            "watcher_remove": self.watcher_remove,
            "rpc_broadcast": self.rpc_broadcast,
            "fetch": self.fetch,
            "socket_open": self.socket_open,
            "socket_send": self.socket_send,
            "socket_ping": self.socket_ping,
            "socket_pong": self.socket_pong,
            "socket_close": self.socket_close,
            "port_send": self.port_send,
            "port_ping": self.port_ping,
            "port_pong": self.port_pong,
            "port_close": self.port_close,
        }
        self._watched: set[str] = set()
        self.sockets = ClientSockets(plugin)
        self.event_sources = ClientEvents(plugin)
        self.ports = PrivatePorts(plugin)
        self._closed = False
        self.durable = DurableOps(plugin)
        self.async_.update(self.durable.ops)

    def close(self) -> None:
        self._closed = True
        self.sockets.close_all()
        self.event_sources.close_all()
        self.ports.close_all()
        self.durable.close()

    # the two entry points registered in the VM
    def call_sync(self, op: str, *args: Any) -> Any:
        fn = self.sync.get(op)
        if fn is None:
            raise HostOpError(f"unknown host operation {op!r}")
        return fn(*args)

    def call_async(self, op: str, *args: Any) -> Any:
        fn = self.async_.get(op)
        if fn is None:
            raise HostOpError(f"unknown host operation {op!r}")
        return fn(*args)

    # ---- basics -------------------------------------------------------------------------------------

    def log(self, level: str, text: str) -> None:
        self.plugin.log(str(level), str(text))

    def timer_set(self, timer_id: int, delay_ms: float) -> None:
        actor = self.plugin.actor
        if actor is not None:
            if actor.pending_timers() >= MAX_TIMERS and not actor.is_armed(int(timer_id)):
                raise HostOpError(f"too many timers: {MAX_TIMERS} are pending; clear some before setting more")
            actor.arm_timer(int(timer_id), max(0.0, float(delay_ms or 0)) / 1000.0)

    def timer_clear(self, timer_id: int) -> None:
        actor = self.plugin.actor
        if actor is not None:
            actor.clear_timer(int(timer_id))

    def random_bytes(self, n: int) -> str:
        n = int(n)
        if n < 0 or n > _MAX_RANDOM:
            raise HostOpError(f"random_bytes: {n} is out of range (0..{_MAX_RANDOM})")
        return _b64(os.urandom(n))

    def hrtime(self) -> float:
        return self.plugin.hrtime()

    # ---- rpc ----------------------------------------------------------------------------------------

    def rpc_bind(self, name: str, descriptions: list[Any] | None = None) -> None:
        self.plugin.methods[str(name)] = [str(d) for d in (descriptions or [])]

    def rpc_unbind(self, name: str) -> None:
        self.plugin.methods.pop(str(name), None)

    def rpc_broadcast(self, method: str, has_params: bool, params: Any = None) -> None:
        self.plugin.manager._broadcast(self.plugin.name, str(method), params if has_params else NO_PARAMS)

    # ---- tools (siyuan.mcp and siyuan.agent share one registry) -------------------------------------

    def tool_register(self, kind: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
        registry = self.plugin.manager.tools_registry
        global_name = str(record.get("name") or name)
        owner = registry.get(global_name)
        if owner is not None and owner["plugin"] != self.plugin.name:
            raise HostOpError(f"tool name {global_name} is already registered by plugin [{owner['plugin']}]")
        registry[global_name] = {"plugin": self.plugin.name, "kind": str(kind), "local": str(name),
                                 "record": dict(record, name=global_name)}
        return dict(record, name=global_name)

    def tool_unregister(self, kind: str, name: str) -> None:
        registry = self.plugin.manager.tools_registry
        for key in [k for k, t in registry.items()
                    if t["plugin"] == self.plugin.name and t["local"] == str(name) and t["kind"] == str(kind)]:
            del registry[key]

    # ---- secrets / vars -----------------------------------------------------------------------------

    def resolve(self, kind: str, template: Any) -> str:
        if not isinstance(template, str):
            return ""
        store = self.plugin.config.secrets if kind == "secrets" else self.plugin.config.vars
        prefix = "secrets" if kind == "secrets" else "vars"

        def braces(m: re.Match[str]) -> str:
            return store.get(m.group(1), m.group(0))

        text = re.sub(r"\{\{" + prefix + r"\.([^}]+)\}\}", braces, template)

        def shell(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            return store.get(name, m.group(0))

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", shell, text)

    # ---- storage ------------------------------------------------------------------------------------

    def _storage(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except StorageError as exc:
            raise HostOpError(str(exc)) from None

    # The storage I/O runs here, on the plugin's own thread. SiYuan runs it on a goroutine of its own, but the
    # plugin awaits the result either way, and a hop to an I/O thread and back would only add latency to a
    # ~0.3 ms write (docs/adr/0003-host-benchmark.md); get and put avoid closures for the same reason.
    # A value and a failure alike settle in a later job, as SiYuan posts either back as a new job (§3.0, §6).
    def storage_get(self, path: str) -> dict[str, str] | concurrent.futures.Future[Any]:
        try:
            return _payload(self.plugin.storage.get(str(path)))
        except StorageError as exc:
            return _failed_later(exc)

    def storage_put(self, path: str, content: str, is_base64: bool = False) -> concurrent.futures.Future[Any] | None:
        data = _unb64(content) if is_base64 else _utf8(str(content))
        try:
            self.plugin.storage.put(str(path), data)
        except StorageError as exc:
            return _failed_later(exc)
        return None

    def storage_remove(self, path: str) -> concurrent.futures.Future[Any] | None:
        try:
            self.plugin.storage.remove(str(path))
        except StorageError as exc:
            return _failed_later(exc)
        return None

    def storage_list(self, path: str) -> list[dict[str, Any]] | concurrent.futures.Future[Any]:
        try:
            return self.plugin.storage.list(str(path))
        except StorageError as exc:
            return _failed_later(exc)

    def watcher_add(self, path: str) -> None:
        target = self._storage(lambda: self.plugin.storage.resolve(str(path)))
        if not target.exists():
            raise HostOpError("failed to add storage path to watcher: no such file or directory")
        self._watched.add(str(target))
        self.plugin.manager._watch_storage(self.plugin, target)

    def watcher_remove(self, path: str) -> None:
        target = self._storage(lambda: self.plugin.storage.resolve(str(path)))
        if str(target) not in self._watched:
            raise HostOpError("failed to remove storage path from watcher: can't remove non-existent watch")
        self._watched.discard(str(target))
        self.plugin.manager._unwatch_storage(self.plugin, target)

    # ---- client.fetch -------------------------------------------------------------------------------

    def fetch(self, path: str, init: dict[str, Any] | None = None,
              ) -> concurrent.futures.Future[Any] | Coroutine[Any, Any, dict[str, Any]]:
        init = init or {}
        path = str(path)
        if not path.startswith("/"):
            raise HostOpError("path must start with /")
        url = kernel_url(self.plugin.config, path, HostOpError)
        method = str(init.get("method") or "GET").upper()
        headers = {str(k): str(v) for k, v in (init.get("headers") or {}).items()}
        body = init.get("body")
        content = _unb64(body) if isinstance(body, str) and init.get("bodyIsBase64") else (
            body.encode("utf-8") if isinstance(body, str) else None)
        if method in ("GET", "HEAD", "OPTIONS"):
            content = None
        route = route_answers.match(method, path)
        if route is not None:  # the kernel plugins live here, not in the kernel at siyuan_url
            return self._answer_plugin_route(route, path, content)
        headers.update(kernel_headers(self.plugin.config))
        return _IO_POOL.submit(_do_fetch, url, path, method, headers, content)

    async def _answer_plugin_route(self, route: RouteMatch, path: str,
                                   content: bytes | None) -> dict[str, Any]:
        # runs on the asyncio loop, not on this plugin's actor: calling its own methods queues a job there
        answer = await route_answers.answer(self.plugin.manager, route, content)
        return {"url": path, "status": answer.status, "statusText": answer.status_text, "headers": answer.headers,
                "body": _payload(answer.body)}

    # ---- client.socket (the connection itself lives in client_socket.py) ----------------------------

    def socket_url(self, path: str) -> str:
        return self.sockets.url(str(path))

    def socket_open(self, sid: int, path: str, protocols: list[Any] | None = None) -> Any:
        return self.sockets.open(int(sid), str(path), [str(p) for p in protocols or []])

    def socket_send(self, sid: int, data: str, binary: bool) -> Any:
        return self.sockets.send(int(sid), str(data), bool(binary))

    def socket_ping(self, sid: int, data: str) -> Any:
        return self.sockets.ping(int(sid), str(data))

    def socket_pong(self, sid: int, data: str) -> Any:
        return self.sockets.pong(int(sid), str(data))

    def socket_close(self, sid: int, code: int, reason: str) -> Any:
        return self.sockets.close(int(sid), int(code), str(reason))


    # ---- client.event (the subscription itself lives in client_events.py) -------------------------------

    def event_open(self, sid: int, path: str) -> None:
        try:
            self.event_sources.open(int(sid), str(path))
        except EventStreamError as exc:
            raise HostOpError(str(exc)) from None

    def event_close(self, sid: int) -> None:
        self.event_sources.close(int(sid))

    # ---- server.private request.port (the wire end lives in rpc/; see private_ports.py) ----------------

    async def port_send(self, pid: int, data: str, binary: bool) -> None:
        await self._port_io(int(pid), lambda port: port.send(_unb64(data) if binary else str(data)))

    async def port_ping(self, pid: int, data: str) -> None:
        await self._port_io(int(pid), lambda port: port.ping(_utf8(str(data))))

    async def port_pong(self, pid: int, data: str) -> None:
        await self._port_io(int(pid), lambda port: port.pong(_utf8(str(data))))

    async def port_close(self, pid: int, code: int, reason: str) -> None:
        await self._port_io(int(pid), lambda port: port.close(int(code), str(reason)))

    async def _port_io(self, pid: int, operation: Callable[[WebSocketPort], Awaitable[None]]) -> None:
        try:
            await operation(self.ports.websocket(pid))
        except PortError as exc:
            raise HostOpError(str(exc)) from None

    def port_sse_send(self, pid: int, event: dict[str, Any]) -> None:
        port = self.ports.event_stream(int(pid))
        if port is not None:  # after the stream ended, events go nowhere (as in SiYuan)
            self.plugin.loop.call_soon_threadsafe(port.send_event, encode_event(event))

    def port_sse_close(self, pid: int) -> None:
        port = self.ports.event_stream(int(pid))
        if port is not None:
            self.plugin.loop.call_soon_threadsafe(port.end)


def _failed_later(exc: StorageError) -> concurrent.futures.Future[Any]:
    """A failed storage operation as a finished future: the plugin posts its rejection as a later job (an
    exception raised by the op would reject the Promise within the current job)."""
    failed: concurrent.futures.Future[Any] = concurrent.futures.Future()
    failed.set_exception(HostOpError(str(exc)))
    return failed


def _do_fetch(url: str, path: str, method: str, headers: dict[str, str], content: bytes | None) -> dict[str, Any]:
    import httpx

    try:
        with httpx.Client(timeout=_FETCH_TIMEOUT, follow_redirects=False, trust_env=False) as client:
            resp = client.request(method, url, headers=headers, content=content)
    except httpx.HTTPError as exc:
        raise HostOpError(f"{method} {path}: {exc}") from None
    joined: dict[str, str] = {}
    for key, value in resp.headers.multi_items():
        canon = "-".join(part.capitalize() for part in key.split("-"))
        joined[canon] = f"{joined[canon]}, {value}" if canon in joined else value
    return {
        "url": path,
        "status": resp.status_code,
        "statusText": f"{resp.status_code} {resp.reason_phrase}".strip(),
        "headers": joined,
        "body": _payload(resp.content),
    }
