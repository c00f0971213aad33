"""The plugin host: runs each plugin's ``kernel.js`` in its own sandboxed VM and gives it SiYuan's ``siyuan`` API.

Two rooms, one rule (data flows down, nothing imports upward):

* ``runtime/``: what a plugin *is* to the host. :class:`PluginManager` (discovery, start/stop, restart, hot
  reload; the :class:`HostAPI` that ``rpc/``, ``server/`` and ``notebook/`` talk to), ``plugin.py`` (one plugin's
  VM, lifecycle and calls), ``actor.py`` (its one thread), ``config.py``, ``manifest.py`` (``plugin.json``),
  ``context.py`` (the narrow :class:`~kplug_lab.host.runtime.context.PluginContext` operations see).
* ``ops/``: what a plugin *can do*, one module per capability (storage, timers, rpc, tools, fetch,
  client_events, client_socket, private_ports, durable, ...), each written against the plugin context, never the
  manager. ``ops/names.py`` lists every operation the JavaScript (``js/*.js``) calls through ``__kplug_native``.

Beside them, what the host does for the wire without serving any: ``calls.py`` runs the calls of a parsed JSON-RPC
body on the loop, ``route_answers.py`` answers SiYuan's plugin routes (for ``rpc/`` and for a plugin's own
``siyuan.client.fetch``); the parsing and the route table are ``kplug_lab.protocol``. ``api.py`` and
``private_ports.py`` here only re-export :mod:`.runtime.api` under the paths ``rpc/`` still imports.
``durable/`` (the durable store and the host lock) and ``sandbox/`` (the VM) sit below; the wire is above.
"""

from .runtime.api import NO_PARAMS, HostAPI, LogRecord, MethodInfo, PluginInfo, PluginState, Unsubscribe
from .runtime.config import HostConfig
from .runtime.manager import PluginManager

__all__ = [
    "NO_PARAMS",
    "HostAPI",
    "HostConfig",
    "LogRecord",
    "MethodInfo",
    "PluginInfo",
    "PluginManager",
    "PluginState",
    "Unsubscribe",
]
