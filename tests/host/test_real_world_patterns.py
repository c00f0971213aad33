"""Patterns seen in kernel plugins written for SiYuan by other people, each reproduced in a few lines of our own.

Every test here is a regression test for an incompatibility found by running real plugins in the host: the
snippet shows the pattern, the assertions show the plugin reaching ``running`` and answering as in SiYuan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kplug_testing import Host

from kplug_lab.host.api import PluginState
from kplug_lab.host.manager import PluginManager
from kplug_lab.testing import FakeSiYuan


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[FakeSiYuan]:
    async with FakeSiYuan(tmp_path / "workspace") as k:
        yield k


async def start(host: Host, kernel: FakeSiYuan | None = None, **config: object) -> PluginManager:
    if kernel is not None:
        config.setdefault("siyuan_url", kernel.url)
        config.setdefault("siyuan_token", kernel.token)
    return await host.start(**config)


def running(manager: PluginManager, name: str) -> bool:
    info = manager.get_plugin(name)
    return info is not None and info.state == PluginState.RUNNING


def error_of(manager: PluginManager, name: str) -> str:
    info = manager.get_plugin(name)
    return "" if info is None else f"{info.state.label}: {info.error}"


@pytest.mark.parametrize("declaration", [
    "const siyuan = globalThis.siyuan;",
    "let siyuan = globalThis.siyuan;",
    "var siyuan = globalThis.siyuan;",
    '"use strict"; var siyuan = globalThis.siyuan;',
])
async def test_a_bundle_that_redeclares_siyuan_at_top_level_still_runs(host: Host, declaration: str) -> None:
    # tsc/esbuild output of `const siyuan = (globalThis as any).siyuan;` in a plain script (ES5 targets turn it
    # into a strict-mode `var`); goja's global is an ordinary property, so SiYuan accepts all four
    host.plugin("redeclares", declaration + """
        class Kernel {
            constructor() { this.siyuan = siyuan; siyuan.plugin.lifecycle.onload = this.onload.bind(this); }
            async onload() { await this.siyuan.rpc.bind("who", () => this.siyuan.plugin.name); }
        }
        new Kernel();
    """)
    m = await start(host)
    assert running(m, "redeclares"), error_of(m, "redeclares")
    assert await m.call("redeclares", "who") == "redeclares"


async def test_the_siyuan_binding_still_cannot_be_replaced_by_another_object(host: Host) -> None:
    host.plugin("replaces", """
        "use strict";
        let thrown = "";
        try { globalThis.siyuan = { fake: true }; } catch (e) { thrown = e.name; }
        siyuan.rpc.bind("state", () => ({ thrown, fake: Boolean(globalThis.siyuan.fake) }));
    """)
    m = await start(host)
    assert await m.call("replaces", "state") == {"thrown": "TypeError", "fake": False}
