"""The main channel's push message as SiYuan sends it (spec §2.7)."""

from __future__ import annotations

import json

from kplug_lab.protocol.pushes import encode_push, kernel_plugin_state_push


def test_update_kernel_plugin_state_has_every_member_of_siyuans_envelope_in_order() -> None:
    text = encode_push(kernel_plugin_state_push("hello", 2))
    assert text == ('{"cmd": "updateKernelPluginState", "reqId": 0, "app": "", "sid": "", "pushMode": 0, '
                    '"callback": "", "code": 0, "msg": "", "data": {"name": "hello", "state": 2}}')
    assert json.loads(encode_push(kernel_plugin_state_push("ünï", -1)))["data"] == {"name": "ünï", "state": -1}
