"""A JSON-RPC client for kplug_lab servers: blocking (:class:`Client`) and asyncio (:class:`AsyncClient`), over
HTTP (calls, notifications, batches) and WebSocket (the same, plus server-pushed notifications), for plugin
methods at SiYuan's routes and for the ``kplug.*`` admin API.

Errors come back as exceptions chosen by JSON-RPC code (see :mod:`kplug_lab.client._exceptions` for the tree)::

    from kplug_lab.client import Client, PluginNotLoadedError

    with Client("http://127.0.0.1:8765/", token) as c:
        c.call("hello", "greet", "Ada")          # 'Hello, Ada!'
        c.batch("hello").call("echo", 1).call("nope").send()   # [1, MethodNotFoundError(...)]
        with c.connect("counter") as ws:
            ws.call("increment")
            ws.next_notification(5)             # Notification(method='changed', params={...})
"""

from ._async import AsyncAdminSocket, AsyncBatch, AsyncClient, AsyncPluginSocket
from ._discovery import Connection, discover, from_env, from_jupyter
from ._exceptions import (
    AuthenticationFailed,
    CallFailed,
    ConnectionFailed,
    InvalidParamsError,
    InvalidRequest,
    MethodNotFoundError,
    ParseError,
    PluginNotLoadedError,
    PluginNotRunningError,
    ProtocolError,
    ResponseTimeout,
    RPCError,
    ServerError,
    TransportError,
)
from ._models import CallHistory, CallRecord, LogEntry, MethodStatus, Notification, PluginStatus
from ._sync import AdminSocket, Batch, Client, PluginSocket

__all__ = [
    "AdminSocket",
    "AsyncAdminSocket",
    "AsyncBatch",
    "AsyncClient",
    "AsyncPluginSocket",
    "AuthenticationFailed",
    "Batch",
    "CallFailed",
    "CallHistory",
    "CallRecord",
    "Client",
    "Connection",
    "ConnectionFailed",
    "InvalidParamsError",
    "InvalidRequest",
    "LogEntry",
    "MethodNotFoundError",
    "MethodStatus",
    "Notification",
    "ParseError",
    "PluginNotLoadedError",
    "PluginNotRunningError",
    "PluginSocket",
    "PluginStatus",
    "ProtocolError",
    "RPCError",
    "ResponseTimeout",
    "ServerError",
    "TransportError",
    "discover",
    "from_env",
    "from_jupyter",
]
