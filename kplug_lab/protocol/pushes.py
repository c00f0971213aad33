"""SiYuan's push messages on the kernel's main WebSocket channel (``/ws?...&type=main``), as data.

Only the one kplug_lab sends: ``updateKernelPluginState`` (spec §2.7), pushed on every state change of a kernel
plugin. SiYuan's frontend sets the plugin's ``kernel.state.code`` from it, and its kernel client reopens its RPC
WebSocket when the code becomes 2, ``running`` (spec §5.8): without these pushes a client never reconnects
after a reload.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAIN_CHANNEL", "UPDATE_KERNEL_PLUGIN_STATE", "encode_push", "kernel_plugin_state_push"]

#: the ``type`` query parameter of a ``/ws`` session that receives these pushes
MAIN_CHANNEL = "main"
UPDATE_KERNEL_PLUGIN_STATE = "updateKernelPluginState"


def kernel_plugin_state_push(name: str, state: int) -> dict[str, Any]:
    """The push for plugin ``name`` entering ``state`` (its code, spec §2.1), every member as SiYuan sends it
    (``kernel/util/result.go``'s member order)."""
    return {"cmd": UPDATE_KERNEL_PLUGIN_STATE, "reqId": 0, "app": "", "sid": "", "pushMode": 0, "callback": "",
            "code": 0, "msg": "", "data": {"name": name, "state": int(state)}}


def encode_push(message: dict[str, Any]) -> str:
    """One text frame of the main channel."""
    return json.dumps(message, ensure_ascii=False)
