"""A plugin's kernel.js through the compiled-code cache: reloads of unchanged code use it, changed code does not."""

from __future__ import annotations

import pytest
from kplug_testing import Host

from kplug_lab.errors import PluginCallError
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.sandbox import BytecodeCache

CODE = """
const started = Date.now();
siyuan.rpc.bind("hello", (who) => `hello ${who} v1`);
siyuan.rpc.bind("fail", () => { throw new Error("failed here"); });
"""


async def test_reload_of_unchanged_code_uses_the_cache_and_changed_code_compiles(host: Host) -> None:
    host.plugin("greeter", CODE)
    m = await host.start()
    first = m.get_plugin("greeter")
    assert first is not None and first.state == PluginState.RUNNING and not first.compiled_from_cache
    assert await m.call("greeter", "hello", ["a"]) == "hello a v1"
    assert len(list((host.data / "bytecode").glob("*.qbc"))) == 1  # kernel.js (the host's own scripts: in memory)

    again = await m.reload("greeter")
    assert again.state == PluginState.RUNNING and again.compiled_from_cache
    assert await m.call("greeter", "hello", ["b"]) == "hello b v1"

    host.plugin("greeter", CODE.replace("v1", "v2"))
    changed = await m.reload("greeter")
    assert changed.state == PluginState.RUNNING and not changed.compiled_from_cache
    assert await m.call("greeter", "hello", ["c"]) == "hello c v2"
    assert (await m.reload("greeter")).compiled_from_cache


async def test_errors_of_cached_code_still_name_kernel_js_lines(host: Host) -> None:
    host.plugin("thrower", CODE)
    m = await host.start()
    await m.reload("thrower")
    assert m.get_plugin("thrower").compiled_from_cache  # type: ignore[union-attr]
    with pytest.raises(PluginCallError) as err:
        await m.call("thrower", "fail", [])
    assert "failed here" in str(err.value)


async def test_a_tampered_entry_is_rebuilt_and_the_plugin_runs(host: Host) -> None:
    host.plugin("victim", CODE)
    m = await host.start()
    entry = BytecodeCache.for_directory(host.data / "bytecode").entry_path(CODE, "victim/kernel.js")
    entry.write_bytes(entry.read_bytes()[:-8] + b"\xff" * 8)
    info = await m.reload("victim")
    assert info.state == PluginState.RUNNING and not info.compiled_from_cache
    assert await m.call("victim", "hello", ["d"]) == "hello d v1"
    assert (await m.reload("victim")).compiled_from_cache


async def test_a_reload_reads_only_kernel_js_from_the_cache(host: Host) -> None:
    host.plugin("one", CODE)
    m = await host.start()
    cache = BytecodeCache.for_directory(host.data / "bytecode")
    hits, misses = cache.hits, cache.misses
    await m.reload("one")
    assert (cache.hits, cache.misses) == (hits + 1, misses)  # the prelude and durable.js come from memory


async def test_the_cache_can_be_switched_off(host: Host) -> None:
    host.plugin("plain", CODE)
    m = await host.start(bytecode_cache=False)
    assert not (await m.reload("plain")).compiled_from_cache
    assert not (host.data / "bytecode").exists()
