"""``siyuan.agent`` as SiYuan now (changes §2.6): model-facing names from SHA-256 (at most 64 characters), names
and descriptions trimmed, empty ones refused with SiYuan's texts, the record it returns, the handler's error texts."""

from __future__ import annotations

import hashlib
from typing import Any

from kplug_testing import Host

from kplug_lab.host.ops.tools import agent_name


def expected_name(plugin: str, capability: str, head: str) -> str:
    digest = hashlib.sha256((plugin + "\0" + capability).encode()).hexdigest()[:12]
    return f"{head}__{digest}"


def test_the_model_facing_name_is_sha256_based_and_at_most_64_characters() -> None:
    assert agent_name("notes", "search") == expected_name("notes", "search", "plugin__notes__search")
    assert agent_name("my-plugin", "find.all") == expected_name("my-plugin", "find.all", "plugin__my_plugin__find_all")
    long = agent_name("p" * 40, "c" * 40)
    assert len(long) == 64 and long.startswith("plugin__" + "p" * 20 + "__" + "c" * 20 + "__")
    assert agent_name("p" * 5, "c" * 60).startswith("plugin__ppppp__" + "c" * 35 + "__")
    assert long.endswith(hashlib.sha256(("p" * 40 + "\0" + "c" * 40).encode()).hexdigest()[:12])


async def test_register_capability_trims_checks_and_returns_siyuans_record(host: Host) -> None:
    host.plugin("agentp", """
      siyuan.rpc.bind("setup", async () => {
        const cap = await siyuan.agent.registerCapability("  search  ", { title: " Search ", description: " finds ",
          inputSchema: { type: "object" }, effects: { localRead: true, other: 1 },
          actionEffects: { write: { localWrite: true } } }, () => { throw new Error("no index"); });
        const errors = [];
        for (const p of [siyuan.agent.registerCapability("   ", { description: "d", inputSchema: {} }, () => 1),
                         siyuan.agent.registerCapability(7, { description: "d", inputSchema: {} }, () => 1),
                         siyuan.agent.registerCapability("x", { description: "  ", inputSchema: {} }, () => 1),
                         siyuan.agent.registerCapability("x", { inputSchema: {} }, () => 1),
                         siyuan.agent.registerCapability("x", { description: "d" }, () => 1),
                         siyuan.agent.registerCapability("x", { description: "d", inputSchema: {},
                                                                 actionEffects: { " ": {} } }, () => 1),
                         siyuan.agent.unregisterCapability(" ")]) {
          try { await p; errors.push("ok"); } catch (e) { errors.push(e.message); }
        }
        return { cap, errors };
      });
      siyuan.rpc.bind("drop", () => siyuan.agent.unregisterCapability(" search "));
    """)
    m = await host.start()
    got: dict[str, Any] = await m.call("agentp", "setup")
    cap = got["cap"]
    assert cap["name"] == agent_name("agentp", "search")
    assert {k: cap[k] for k in ("title", "description", "effects", "actionEffects", "inputSchema", "outputSchema")} \
        == {"title": "Search", "description": "finds", "effects": {"localRead": True},
            "actionEffects": {"write": {"localWrite": True}}, "inputSchema": {"type": "object"}, "outputSchema": None}
    assert set(cap) == {"id", "name", "title", "description", "effects", "actionEffects", "inputSchema",
                        "outputSchema"}
    assert got["errors"] == ["capability name must not be empty", "first argument must be a tool name string",
                             "config.description must not be empty",
                             "config.description is required and must be a string", "config.inputSchema is required",
                             "config.actionEffects: action name must not be empty",
                             "capability name must not be empty"]
    res = await m.invoke_tool(cap["name"], {})
    assert res["isError"] and res["content"][0]["text"].startswith("error invoking Agent capability handler: "
                                                                   "Error: no index")
    await m.call("agentp", "drop")
    assert m.tools() == []
