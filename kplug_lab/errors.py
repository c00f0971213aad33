"""Every error kplug_lab raises, in one hierarchy.

::

    KplugError
    ├── SandboxError                    the wasm/QuickJS engine (kplug_lab.sandbox)
    │   ├── JSError                     a JS exception escaped: name, message, stack
    │   ├── CPUTimeout                  a call ran past its CPU budget; the VM is still usable
    │   ├── OutOfMemory                 the VM hit its memory limit; the VM is still usable
    │   ├── VMCrashed                   a wasm trap or the epoch backstop killed the VM; it stays dead
    │   ├── GuestBuildError             the wasm guest could not be built or found
    │   └── ValueConversionError        a value cannot cross the boundary (too deep, not JSON-able)
    ├── ManifestError                   a plugin.json (or plugin folder) is unusable; says file and field
    ├── PluginError                     something about one plugin (kplug_lab.host)
    │   ├── PluginNotLoaded             -32001
    │   ├── PluginNotRunning            -32002
    │   ├── MethodNotFound              -32601
    │   ├── InvalidParams               -32602
    │   ├── PluginCallError             -32603 (the method threw or rejected)
    │   └── CallTimeout                 -32603 (the call exceeded its timeout)
    ├── HostOpError                     a host operation a plugin's JS called failed; str() is what the JS sees
    │   ├── StorageError                siyuan.storage: a path left the root, the quota is full, the disk failed
    │   ├── DurableOpError              kplug.queue / kv / schedule: refused or failed for one plugin
    │   ├── EventStreamError            siyuan.client.event: the subscription could not be made
    │   ├── SocketError                 siyuan.client.socket: dial, send or close failed
    │   └── PortError                   server.private request.port: the connection is gone
    ├── DurableError                    the durable store refused a name, value or schedule (kplug_lab.durable)
    ├── ResponseError                   a plugin's private-route response cannot be served (kplug_lab.protocol)
    ├── RPCError                        a JSON-RPC error as seen by a client (kplug_lab.client; subclasses there)
    ├── TransportError                  no JSON-RPC answer reached the client (kplug_lab.client; subclasses there)
    └── BlockError                      the fake SiYuan kernel refused a block operation (kplug_lab.testing)

Catch ``KplugError`` for anything kplug_lab raises; ``PluginError`` for what a call to a plugin can answer;
``HostOpError`` in code that runs host operations (a plugin only ever sees its message). Each host-side error
carries the JSON-RPC ``code`` it is answered with, so the wire layer maps errors by attribute, never by matching
message text. ``TransportError`` and the client's ``RPCError`` subclasses live in :mod:`kplug_lab.client`
(beside the code that raises them), ``ResponseError`` in :mod:`kplug_lab.protocol.private` and ``BlockError`` in
:mod:`kplug_lab.testing`; all derive from this tree.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CPUTimeout",
    "CallTimeout",
    "DurableError",
    "DurableOpError",
    "EventStreamError",
    "GuestBuildError",
    "HostOpError",
    "InvalidParams",
    "JSError",
    "KplugError",
    "ManifestError",
    "MethodNotFound",
    "OutOfMemory",
    "PluginCallError",
    "PluginError",
    "PluginNotLoaded",
    "PluginNotRunning",
    "PortError",
    "RPCError",
    "SandboxError",
    "SocketError",
    "StorageError",
    "VMCrashed",
    "ValueConversionError",
]

INTERNAL_ERROR = -32603


class KplugError(Exception):
    """Base class of every kplug_lab error."""

    code: int = INTERNAL_ERROR

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class SandboxError(KplugError):
    pass


class JSError(SandboxError):
    """A JavaScript exception that escaped an eval or call.

    ``name`` and ``message`` are the error's own (``TypeError``, ``"x is not a function"``); ``stack`` is the
    QuickJS stack trace, whose frames name the script's file name and line.
    """

    def __init__(self, name: str, message: str, stack: str = "", value: Any = None) -> None:
        self.name = name
        self.message = message
        self.stack = stack
        self.value = value
        super().__init__(f"{name}: {message}" if name else message)


class CPUTimeout(SandboxError):
    """The call used more CPU time than allowed and was interrupted; the VM survives."""


class OutOfMemory(SandboxError):
    """The VM reached its memory limit; the allocation failed, the VM survives."""


class VMCrashed(SandboxError):
    """The VM trapped (or was killed by the epoch backstop). It is dead: every later use raises this."""


class GuestBuildError(SandboxError):
    pass


class ValueConversionError(SandboxError, ValueError):
    """A value cannot cross the Python/JS boundary (not JSON-compatible, or nested too deeply)."""


class ManifestError(KplugError, ValueError):
    """A plugin's folder or ``plugin.json`` cannot be used. The message names the file and the field."""


class PluginError(KplugError):
    pass


class PluginNotLoaded(PluginError):
    code = -32001


class PluginNotRunning(PluginError):
    code = -32002


class MethodNotFound(PluginError):
    code = -32601


class InvalidParams(PluginError):
    code = -32602


class PluginCallError(PluginError):
    """The plugin's method threw or rejected. ``str(err)`` is the detail shown to clients."""


class CallTimeout(PluginError):
    pass


class HostOpError(KplugError):
    """A host operation a plugin called failed. ``str(err)`` is the message its JavaScript sees (the Promise's
    rejection, or the error a synchronous call throws); it never names host paths."""


class StorageError(HostOpError):
    """A ``siyuan.storage`` operation failed; ``str()`` is SiYuan's rejection text, paths relative to the root."""


class DurableOpError(HostOpError):
    """A ``kplug`` durable operation (queue, key-value, schedule) was refused or failed for one plugin."""


class EventStreamError(HostOpError):
    """A ``siyuan.client.event`` subscription could not be made (the path would leave the kernel, ...)."""


class SocketError(HostOpError):
    """A ``siyuan.client.socket`` operation failed (dial, send on a closed connection, ...)."""


class PortError(HostOpError):
    """A ``request.port`` operation of ``siyuan.server.private`` failed: the connection is gone."""


class DurableError(KplugError):
    """The durable store refused a queue or key name, a value (not JSON, too large) or a schedule."""


class BlockError(KplugError):
    """The fake SiYuan kernel (:mod:`kplug_lab.testing`) refused a block operation; the message is its ``msg``."""


class RPCError(KplugError):
    """A JSON-RPC error response, raised by :mod:`kplug_lab.client`."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"[{code}] {message}" + (f": {data}" if data is not None else ""))
