"""JSON-RPC 2.0 processing for the wire (spec §5.3/§5.4).

The processing itself is transport-independent and lives in :mod:`kplug_lab.host.jsonrpc`, because the host also
answers a plugin's own ``siyuan.client.fetch("/api/plugin/rpc/<name>")`` with it, and ``host/`` must not import
``rpc/``. This module keeps the names the wire layer (and benchmarks, and tests) have always used.
"""

from __future__ import annotations

from ..host import jsonrpc as _jsonrpc
from ..host.jsonrpc import *  # noqa: F403 - the re-export is the point

__all__ = list(_jsonrpc.__all__)
