"""JSON-RPC 2.0 processing for the wire (spec §5.3/§5.4).

The processing itself is transport-independent and lives in :mod:`kplug_lab.host.jsonrpc`, because the host also
answers a plugin's own ``siyuan.client.fetch("/api/plugin/rpc/<name>")`` with it, and ``host/`` must not import
``rpc/``. This module keeps the names the wire layer (and benchmarks, and tests) have always used.
"""

from __future__ import annotations

from ..host.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    MESSAGES,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Caller,
    Limits,
    Request,
    error_response,
    process,
    start,
)

__all__ = [
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGES",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "Caller",
    "Limits",
    "Request",
    "error_response",
    "process",
    "start",
]
