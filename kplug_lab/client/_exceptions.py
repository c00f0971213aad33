"""Errors raised by the client: JSON-RPC errors by code, and failures to get any answer at all.

::

    KplugError (kplug_lab.errors)
    ├── RPCError                                 a JSON-RPC error response: code, message, data
    │   ├── ParseError              -32700        the server could not parse the request
    │   ├── InvalidRequest          -32600        not a valid JSON-RPC request (or too large, too big a batch)
    │   ├── MethodNotFoundError     -32601        also a kplug_lab.errors.MethodNotFound
    │   ├── InvalidParamsError      -32602        also a kplug_lab.errors.InvalidParams
    │   ├── CallFailed              -32603        the method threw, rejected or timed out; also a PluginCallError
    │   ├── PluginNotLoadedError    -32001        also a kplug_lab.errors.PluginNotLoaded
    │   ├── PluginNotRunningError   -32002        also a kplug_lab.errors.PluginNotRunning
    │   └── ServerError             any other code
    └── TransportError                           no JSON-RPC answer at all
        ├── ConnectionFailed                     the server cannot be reached, or went away mid-call
        ├── ResponseTimeout                      no answer within the client's timeout (the call may still run)
        ├── AuthenticationFailed                 HTTP 401/403: wrong token, or a call-only token on the admin API
        └── ProtocolError                        the answer is not JSON-RPC

The host-side classes are bases too, so ``except kplug_lab.errors.PluginNotLoaded`` catches the error whether
the plugin host raised it in-process or a server answered it over the wire.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    InvalidParams,
    KplugError,
    MethodNotFound,
    PluginCallError,
    PluginNotLoaded,
    PluginNotRunning,
    RPCError,
)

__all__ = [
    "AuthenticationFailed",
    "CallFailed",
    "ConnectionFailed",
    "InvalidParamsError",
    "InvalidRequest",
    "MethodNotFoundError",
    "ParseError",
    "PluginNotLoadedError",
    "PluginNotRunningError",
    "ProtocolError",
    "RPCError",
    "ResponseTimeout",
    "ServerError",
    "TransportError",
    "error_from_response",
]


class _ShortTraceback:
    """In a notebook, show ``Name: message`` instead of a traceback through the client's internals.

    IPython calls ``_render_traceback_`` when an exception has it; the error is still an ordinary exception.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class _ClientRPCError(_ShortTraceback, RPCError):
    """An ``RPCError`` that also knows which call failed (``target`` is ``plugin.method``, or ``kplug.<x>``)."""

    def __init__(self, code: int, message: str, data: Any = None, target: str = "") -> None:
        super().__init__(code, message, data)
        self.target = target
        if target:
            self.args = (f"{target}: {self.args[0]}",)


class ParseError(_ClientRPCError):
    pass


class InvalidRequest(_ClientRPCError):
    pass


class MethodNotFoundError(_ClientRPCError, MethodNotFound):
    pass


class InvalidParamsError(_ClientRPCError, InvalidParams):
    pass


class CallFailed(_ClientRPCError, PluginCallError):
    pass


class PluginNotLoadedError(_ClientRPCError, PluginNotLoaded):
    pass


class PluginNotRunningError(_ClientRPCError, PluginNotRunning):
    pass


class ServerError(_ClientRPCError):
    pass


_BY_CODE: dict[int, type[_ClientRPCError]] = {
    -32700: ParseError,
    -32600: InvalidRequest,
    -32601: MethodNotFoundError,
    -32602: InvalidParamsError,
    -32603: CallFailed,
    -32001: PluginNotLoadedError,
    -32002: PluginNotRunningError,
}


def error_from_response(error: Any, target: str = "") -> RPCError:
    """The exception for the ``error`` member of a JSON-RPC response."""
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return ServerError(-32603, f"malformed JSON-RPC error object: {error!r}", None, target)
    code: int = error["code"]
    cls = _BY_CODE.get(code, ServerError)
    return cls(code, str(error.get("message", "")), error.get("data"), target)


class TransportError(_ShortTraceback, KplugError):
    """No JSON-RPC answer was received. ``code`` is -32000, the start of JSON-RPC's server-error range."""

    code = -32000


class ConnectionFailed(TransportError, ConnectionError):
    pass


class ResponseTimeout(TransportError, TimeoutError):
    pass


class AuthenticationFailed(TransportError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ProtocolError(TransportError):
    pass
