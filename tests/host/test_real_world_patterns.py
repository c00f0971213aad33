"""Patterns seen in kernel plugins written for SiYuan by other people, each reproduced in a few lines of our own.

Every test here is a regression test for an incompatibility found by running real plugins in the host: the
snippet shows the pattern, the assertions show the plugin reaching ``running`` and answering as in SiYuan.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kplug_testing import Host

from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.manager import PluginManager
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


async def test_a_proto_key_in_params_stays_a_key_in_results_and_in_structured_clones(host: Host) -> None:
    # plugins echo or deep-copy what clients send; "__proto__" must neither vanish nor become a prototype
    host.plugin("protokeys", """
        siyuan.rpc.bind("echo", (x) => x);
        siyuan.rpc.bind("cloned", (x) => {
            const copy = structuredClone(x);
            return { keys: Object.keys(copy), inherited: copy.isAdmin === true,
                     plain: Object.getPrototypeOf(copy) === Object.prototype };
        });
    """)
    m = await start(host)
    payload = {"__proto__": {"isAdmin": True}, "a": 1}
    assert await m.call("protokeys", "echo", [payload]) == payload
    assert await m.call("protokeys", "cloned", [payload]) == {"keys": ["__proto__", "a"], "inherited": False,
                                                                "plain": True}


async def test_class_based_plugin_with_fields_reloads_its_json_config_on_fs_notify(
        host: Host, kernel: FakeSiYuan) -> None:
    # the shape of bundled TypeScript plugins: class fields (`siyuan = siyuan`), hooks bound in the constructor,
    # a JSON config read with storage.get(...).json() (missing on first run), the device id from
    # /api/system/getConf, watcher.add(".") and a debounced reload when fs-notify names the config file
    host.plugin("classy", """
        new class {
            siyuan = siyuan;
            config = { online: false };
            device = "";
            seen = [];
            reload;
            constructor() {
                this.siyuan.event.handler = this.onEvent.bind(this);
                this.siyuan.plugin.lifecycle.onload = this.onload.bind(this);
            }
            async onload() {
                try { this.config = await (await this.siyuan.storage.get("config.json")).json(); }
                catch (e) { this.missing = String(e); }
                const conf = (await (await this.siyuan.client.fetch("/api/system/getConf",
                                                                    { method: "POST", body: "{}" })).json());
                this.device = conf.data?.conf?.system?.id ?? "";
                await this.siyuan.rpc.bind("save", async (cfg) => {
                    await this.siyuan.storage.put("config.json", JSON.stringify(cfg));
                }, "Save the config.");
                await this.siyuan.rpc.bind("state", () => ({ config: this.config, device: this.device,
                                                             missing: this.missing, seen: this.seen }));
                await this.siyuan.storage.watcher.add(".");
            }
            onEvent(e) {
                if (e.type !== "fs-notify") return;
                this.seen.push(e.detail.path);
                if (e.detail.path === "config.json") {
                    clearTimeout(this.reload);
                    this.reload = setTimeout(async () => {
                        this.config = await (await this.siyuan.storage.get("config.json")).json();
                    }, 20);
                }
            }
        }();
    """)
    m = await start(host, kernel)
    assert running(m, "classy"), error_of(m, "classy")
    first = await m.call("classy", "state")
    assert first["missing"] == "GoError: open config.json: no such file or directory"
    assert first["device"] and first["config"] == {"online": False}
    await m.call("classy", "save", [{"online": True}])
    for _ in range(200):
        state = await m.call("classy", "state")
        if state["config"] == {"online": True}:
            break
        await asyncio.sleep(0.02)
    assert state["config"] == {"online": True} and "config.json" in state["seen"]


async def test_a_plugin_probing_for_both_tool_apis_registers_through_the_first_it_finds(host: Host) -> None:
    # plugins written across API revisions feature-detect mcp.registerTool, then agent.registerCapability, and
    # pass the newer config members (effects, actionEffects, integer and enum schemas) to either
    host.plugin("both-apis", """
        const api = siyuan.mcp && typeof siyuan.mcp.registerTool === "function" ? "registerTool"
                  : siyuan.agent && typeof siyuan.agent.registerCapability === "function" ? "registerCapability"
                  : "none";
        siyuan.plugin.lifecycle.onload = async () => {
            const config = { title: "Count", description: "Count things",
                             inputSchema: { type: "object", additionalProperties: false, required: ["n"],
                                            properties: { n: { type: "integer", description: "how many" },
                                                          unit: { type: "string", enum: ["a", "b"] } } },
                             effects: { localRead: true } };
            const record = api === "registerTool"
                ? await siyuan.mcp.registerTool("count", config, ({ n }) => ({ doubled: n * 2 }))
                : await siyuan.agent.registerCapability("count", config, ({ n }) => ({ doubled: n * 2 }));
            await siyuan.rpc.bind("record", () => ({ api, name: record.name }));
        };
    """)
    m = await start(host)
    assert running(m, "both-apis"), error_of(m, "both-apis")
    got = await m.call("both-apis", "record")
    assert got == {"api": "registerTool", "name": "plugin__both_apis__count"}
    result = await m.invoke_tool(got["name"], {"n": 21})
    assert result == {"isError": False, "content": [{"type": "text", "text": '{"doubled": 42}'}]}


async def test_optional_chained_logger_calls_without_await_keep_their_order(host: Host) -> None:
    # `this.siyuan.logger?.info?.(...)` without await, then console.*: lines appear in call order
    host.plugin("chained", """
        siyuan.plugin.lifecycle.onload = async () => {
            siyuan.logger?.info?.("one");
            console.log("two %d", 2);
            void siyuan.logger.warn("three", { n: 3 });
        };
    """)
    m = await start(host)
    assert running(m, "chained")
    assert [line for line in host.logs("chained") if line in ("one", "two 2", 'three {"n":3}')] == \
        ["one", "two 2", 'three {"n":3}']
