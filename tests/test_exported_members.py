"""The public API, pinned: a name added to or dropped from a public module's ``__all__`` is a decision, made here."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "kplug_lab.sandbox": {"BytecodeCache", "CPUTimeout", "JSError", "MAX_MEMORY_LIMIT", "MAX_STACK_LIMIT",
                          "OutOfMemory", "SandboxError", "VM", "VMCrashed", "ValueConversionError", "check_limits",
                          "engine_build", "live_vm_count", "on_wasm_thread"},
    "kplug_lab.errors": {"CPUTimeout", "CallTimeout", "DurableError", "DurableOpError", "EventStreamError",
                         "GuestBuildError", "HostOpError", "InvalidParams", "JSError", "KplugError", "ManifestError",
                         "MethodNotFound", "OutOfMemory", "PluginCallError", "PluginError", "PluginNotLoaded",
                         "PluginNotRunning", "PortError", "RPCError", "SandboxError", "SocketError", "StorageError",
                         "VMCrashed", "ValueConversionError"},
    "kplug_lab.client": {"AdminSocket", "AsyncAdminSocket", "AsyncBatch", "AsyncClient", "AsyncPluginSocket",
                         "AuthenticationFailed", "Batch", "CallFailed", "CallHistory", "CallRecord", "Client",
                         "Connection", "ConnectionFailed", "InvalidParamsError", "InvalidRequest", "LogEntry",
                         "MethodNotFoundError", "MethodStatus", "Notification", "ParseError", "PluginNotLoadedError",
                         "PluginNotRunningError", "PluginSocket", "PluginStatus", "ProtocolError", "RPCError",
                         "ResponseTimeout", "ServerError", "TransportError", "discover", "from_env", "from_jupyter"},
    "kplug_lab.testing": {"FakeSiYuan", "ReceivedRequest", "RecordedRequest", "RecordingEndpoint"},
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_members_are_exactly_the_pinned_ones_and_all_importable(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == PUBLIC[module]
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def test_every_client_error_is_also_a_kplug_error() -> None:
    from kplug_lab import client, errors

    for name in client.__all__:
        obj = getattr(client, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.KplugError), name
