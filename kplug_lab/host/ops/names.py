"""Every host operation a plugin's JavaScript can call, written once.

The guest reaches the host through two functions on ``__kplug_native`` (``host/js/*.js``): ``call(op, ...args)``
runs a synchronous operation and returns its value (or throws its error); ``callAsync(op, ...args)`` returns a
Promise that settles in a later job. :class:`kplug_lab.host.ops.dispatch.HostOps` builds its dispatch from these
tables and refuses to start if a capability module implements another set; ``tests/host/test_op_names.py``
checks that the JavaScript files call exactly these names, each the right way.
"""

from __future__ import annotations

__all__ = ["ASYNC_OPS", "SYNC_OPS"]

#: op name -> the capability module under ``host/ops/`` that implements it
SYNC_OPS: dict[str, str] = {
    "log": "basics",
    "random_bytes": "basics",
    "crypto_key_drop": "crypto",
    "resolve": "secrets",
    "timer_set": "timers",
    "timer_clear": "timers",
    "rpc_bind": "rpc",
    "rpc_unbind": "rpc",
    "tool_register": "tools",
    "tool_unregister": "tools",
    "socket_url": "client_socket",
    "portability_touch": "portability",
    "module_resolve": "modules",
    "module_read": "modules",
    "event_open": "client_events",
    "event_close": "client_events",
    "port_sse_send": "private_ports",
    "port_sse_close": "private_ports",
}

ASYNC_OPS: dict[str, str] = {
    "storage_get": "storage",
    "storage_put": "storage",
    "storage_remove": "storage",
    "storage_list": "storage",
    "watcher_add": "storage",
    "watcher_remove": "storage",
    "rpc_broadcast": "rpc",
    "fetch_open": "fetch",
    "fetch_read": "fetch",
    "fetch_cancel": "fetch",
    "socket_open": "client_socket",
    "socket_send": "client_socket",
    "socket_ping": "client_socket",
    "socket_pong": "client_socket",
    "socket_close": "client_socket",
    "port_send": "private_ports",
    "port_ping": "private_ports",
    "port_pong": "private_ports",
    "port_close": "private_ports",
    "dq_push": "durable",
    "dq_take": "durable",
    "dq_ack": "durable",
    "dq_fail": "durable",
    "dq_size": "durable",
    "dq_wake": "durable",
    "kv_get": "durable",
    "kv_list": "durable",
    "kv_commit": "durable",
    "sched_next": "durable",
    "sched_done": "durable",
    "crypto_digest": "crypto",
    "crypto_encrypt": "crypto",
    "crypto_decrypt": "crypto",
    "crypto_sign": "crypto",
    "crypto_verify": "crypto",
    "crypto_generate_key": "crypto",
    "crypto_derive_bits": "crypto",
    "crypto_derive_key": "crypto",
    "crypto_import_key": "crypto",
    "crypto_export_key": "crypto",
    "crypto_wrap_key": "crypto",
    "crypto_unwrap_key": "crypto",
}
