"""The portability report and SiYuan-strict mode: kplug_lab's own globals (absent in SiYuan, changes §1 and §5)
are reported per plugin when touched, and absent under ``siyuan_strict`` (``kplug serve --siyuan-strict``, the
``KplugLabApp.siyuan_strict`` trait)."""

from __future__ import annotations

import json

import pytest
from kplug_testing import Host

from kplug_lab.host.ops.portability import KPLUG_ONLY
from kplug_lab.host.runtime.api import PluginState

# each kplug-only name, and how a plugin touches it
TOUCHES = {
    "structuredClone": "structuredClone({ a: 1 })",
    "atob": "atob('aGk=')",
    "btoa": "btoa('hi')",
    "queueMicrotask": "queueMicrotask(() => {})",
    "performance": "performance.now()",
    "DOMException": "new DOMException('x')",
    "Event": "new Event('x')",
    "EventTarget": "new EventTarget()",
    "global": "global.Math",
    "kplug": "typeof kplug.kv",
    "siyuan.mcp": "siyuan.mcp.registerTool",
    "siyuan.plugin.lifecycle.onloaded": "siyuan.plugin.lifecycle.onloaded = () => {}",
}

PROBE = """
const present = (path) => {
  const parts = path.split(".");
  let obj = globalThis;
  for (const p of parts) {
    if (obj === null || obj === undefined || !(p in obj)) return false;
    obj = obj[p];
  }
  return true;
};
siyuan.rpc.bind("present", (names) => names.filter(present));
siyuan.rpc.bind("siyuanOwn", () => [typeof siyuan.agent.registerCapability, typeof AbortController,
                                    typeof TextEncoder, typeof require, typeof Buffer, typeof URL, typeof crypto,
                                    typeof setTimeout, typeof console.log, typeof GoError]);
siyuan.rpc.bind("abort", () => { const c = new AbortController(); c.abort(); return c.signal.reason.name; });
siyuan.rpc.bind("stream", async () => {
  const chunks = [];
  for await (const chunk of ReadableStream.from(["a", "b"]).pipeThrough(new TransformStream())) chunks.push(chunk);
  return chunks.join("") + (await new Blob(["c"]).text());
});
"""


def test_the_lists_agree() -> None:
    assert set(TOUCHES) == set(KPLUG_ONLY)


async def test_strict_mode_hides_every_kplug_only_global(host: Host) -> None:
    host.plugin("strict", PROBE)
    m = await host.start(siyuan_strict=True)
    assert host.state("strict") == PluginState.RUNNING
    assert await m.call("strict", "present", [list(KPLUG_ONLY)]) == []
    # everything SiYuan gives stays, and the prelude's own uses of the hidden natives still work
    assert await m.call("strict", "siyuanOwn") == ["function"] * 4 + ["function", "function", "object", "function",
                                                                     "function", "function"]
    assert await m.call("strict", "abort") == "AbortError"
    assert await m.call("strict", "stream") == "abc"


async def test_without_strict_mode_they_are_there(host: Host) -> None:
    host.plugin("lax", PROBE)
    m = await host.start()
    assert await m.call("lax", "present", [list(KPLUG_ONLY)]) == list(KPLUG_ONLY)


@pytest.mark.parametrize("strict", [False, True])
async def test_the_portability_report_names_each_global_a_plugin_touched(host: Host, strict: bool) -> None:
    body = "\n".join(f"try {{ {code}; }} catch (e) {{}}" for code in TOUCHES.values())
    host.plugin("user", body + "\nsiyuan.rpc.bind('ok', () => true);")
    host.plugin("clean", PROBE)
    m = await host.start(siyuan_strict=strict)
    user, clean = m.get_plugin("user"), m.get_plugin("clean")
    assert user is not None and clean is not None
    assert user.kplug_only == ([] if strict else list(TOUCHES))  # in the order the plugin touched them
    assert await m.call("user", "ok") is True
    assert await m.call("clean", "stream") == "abc" and await m.call("clean", "abort") == "AbortError"
    clean = m.get_plugin("clean")
    assert clean is not None and clean.kplug_only == []  # the prelude's own use of them is not the plugin's


async def test_the_admin_api_and_the_magic_show_the_report(host: Host) -> None:
    from kplug_lab.client import PluginStatus
    from kplug_lab.notebook._display import PluginView
    from kplug_lab.rpc.handlers import _info_dict

    host.plugin("old", "siyuan.plugin.lifecycle.onloaded = () => structuredClone(1);")
    m = await host.start()
    info = m.get_plugin("old")
    assert info is not None
    wire = json.loads(json.dumps(_info_dict(info)))
    assert wire["kplugOnly"] == ["siyuan.plugin.lifecycle.onloaded", "structuredClone"]
    text = PluginView(PluginStatus.from_json(wire)).text()
    assert "  ! not in SiYuan (kplug_lab only): siyuan.plugin.lifecycle.onloaded, structuredClone" in text
