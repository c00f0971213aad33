"""Every member of the `siyuan` global (spec §3): shapes, mutability, argument checks and exact error texts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.httpserver
import tornado.testing
import tornado.web
from kplug_testing import Host
from siyuan_probe import PROBE, run, started

from kplug_lab.host.runtime.api import PluginState


async def test_mutability_follows_the_spec_table(host: Host) -> None:
    d = host.plugin("probe", PROBE)
    (d / "i18n").mkdir()
    (d / "i18n" / "en.json").write_text('{"hello": "Hello"}')
    await host.start()
    got = await run(host, """
      const s = siyuan;
      const frozen = { siyuan: s, plugin: s.plugin, logger: s.logger, storage: s.storage, watcher: s.storage.watcher,
                       rpc: s.rpc, mcp: s.mcp, agent: s.agent, client: s.client, server: s.server,
                       private: s.server.private, secrets: s.secrets, vars: s.vars };
      const sealed = { lifecycle: s.plugin.lifecycle, event: s.event, http: s.server.private.http,
                       ws: s.server.private.ws, es: s.server.private.es };
      const writable = (o, k) => { const d = Object.getOwnPropertyDescriptor(o, k); return !!d && d.writable; };
      s.plugin.lifecycle.extra = 1;
      s.plugin.i18n.added = true;
      const emit = s.event.emit;
      s.event.emit = emit;
      return {
        frozen: Object.entries(frozen).filter(([, o]) => !Object.isFrozen(o)).map(([k]) => k),
        sealedNotFrozen: Object.entries(sealed).filter(([, o]) => !Object.isSealed(o) || Object.isFrozen(o))
                           .map(([k]) => k),
        slots: [writable(s.event, "handler"), writable(s.event, "emit"), writable(s.server.private.ws, "handler"),
                s.server.private.ws.handler, s.server.private.es.handler],
        lifecycle: Object.entries(s.plugin.lifecycle),
        extraSlot: "extra" in s.plugin.lifecycle,
        i18n: s.plugin.i18n, i18nFrozen: Object.isFrozen(s.plugin.i18n),
        binding: (() => {
          "use strict";
          try { globalThis.siyuan = {}; } catch (e) { return e.name; }
          return "assigned";
        })(),
        stillSame: globalThis.siyuan === s,
      };
    """)
    assert got["frozen"] == [] and got["sealedNotFrozen"] == []
    assert got["slots"] == [True, True, True, None, None]
    assert got["lifecycle"] == [["onload", None], ["onloaded", None], ["onrunning", None], ["onunload", None]]
    assert got["extraSlot"] is False
    assert got["i18n"] == {"hello": "Hello", "added": True} and got["i18nFrozen"] is False
    assert got["binding"] == "TypeError" and got["stillSame"]  # [better] §7 #24: the binding cannot be replaced


async def test_event_handler_receives_start_and_fs_notify_messages(host: Host) -> None:
    host.plugin("watch", """
      const got = [];
      siyuan.event.handler = function (msg) { got.push({ msg, thisIsEvent: this === siyuan.event }); };
      siyuan.rpc.bind("got", () => got);
      siyuan.rpc.bind("watch", async (p) => { await siyuan.storage.put(p + "/seed.txt", "0");
                                              await siyuan.storage.watcher.add(p); });
      siyuan.rpc.bind("unwatch", (p) => siyuan.storage.watcher.remove(p));
      siyuan.rpc.bind("put", (p, c) => siyuan.storage.put(p, c));
      siyuan.rpc.bind("rm", (p) => siyuan.storage.remove(p));
      siyuan.rpc.bind("errors", async () => {
        const out = {};
        for (const [k, p] of [["addNoPath", siyuan.storage.watcher.add()], ["addNum", siyuan.storage.watcher.add(1)],
                              ["addMissing", siyuan.storage.watcher.add("nope")],
                              ["addUp", siyuan.storage.watcher.add("../x")],
                              ["removeNoPath", siyuan.storage.watcher.remove()],
                              ["removeUnknown", siyuan.storage.watcher.remove("seen")]]) {
          try { await p; out[k] = "ok"; } catch (e) { out[k] = e.message; }
        }
        return out;
      });
    """)
    m = await host.start()

    async def messages() -> list[dict[str, Any]]:
        return await m.call("watch", "got")  # type: ignore[no-any-return]

    start = (await messages())[0]
    assert start["thisIsEvent"] and start["msg"]["type"] == "start" and start["msg"]["detail"] is None
    assert len(start["msg"]["id"]) == 36 and start["msg"]["id"][14] == "4"
    await m.call("watch", "watch", ["dir"])
    await m.call("watch", "put", ["dir/new.txt", "hello"])
    await m.call("watch", "rm", ["dir/seed.txt"])

    seen: list[dict[str, Any]] = []

    def notified() -> set[tuple[str, str]]:
        return {(g["msg"]["detail"]["operation"], g["msg"]["detail"]["path"]) for g in seen
                if g["msg"]["type"] == "fs-notify"}

    for _ in range(200):
        seen[:] = await messages()
        if {("CREATE", "dir/new.txt"), ("REMOVE", "dir/seed.txt")} <= notified():
            break
        await asyncio.sleep(0.05)
    assert {("CREATE", "dir/new.txt"), ("REMOVE", "dir/seed.txt")} <= notified()
    assert all(not p.startswith("/") and ".kplug-" not in p for _, p in notified())  # relative, no temporaries
    await m.call("watch", "unwatch", ["dir"])
    assert await m.call("watch", "errors") == {
        "addNoPath": "path required", "addNum": "path required",
        "addMissing": "failed to add storage path to watcher: no such file or directory",
        "addUp": "siyuan.storage: path traversal not allowed", "removeNoPath": "path required",
        "removeUnknown": "failed to remove storage path from watcher: can't remove non-existent watch",
    }


async def test_logger_has_five_levels_and_a_bounded_ring_buffer(host: Host) -> None:
    await started(host, log_buffer=20)
    got = await run(host, """
      const returned = ["trace", "debug", "info", "warn", "error"].map((l) => siyuan.logger[l](l + " line"));
      siyuan.logger.info(() => 1, 10n, Symbol("s"), true);
      return returned;
    """)
    assert got == [None] * 5  # synchronous, returns undefined (the d.ts says Promise<void>)
    assert host.manager is not None
    records = [(r.level, r.message) for r in host.manager.logs("probe", 0)]
    for level in ["trace", "debug", "info", "warn", "error"]:
        assert (level, f"{level} line") in records
    assert ("info", "null 10 Symbol(s) true") in records
    await run(host, "for (let i = 0; i < 100; i++) siyuan.logger.info('n' + i);")
    kept = host.manager.logs("probe", 0)
    assert len(kept) == 20 and [r.message for r in kept] == [f"n{i}" for i in range(80, 100)]
    assert [r.message for r in host.manager.logs("probe", 5)] == [f"n{i}" for i in range(95, 100)]


async def test_storage_coercion_binary_data_objects_and_list(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      await siyuan.storage.put("num", 42);
      await siyuan.storage.put("obj", { a: 1 });
      await siyuan.storage.put("ab", new Uint8Array([0xff, 0xfe, 0x41]).buffer);
      await siyuan.storage.put("buf", Buffer.from("bü"));
      await siyuan.storage.put("deep/er/file.json", '{"k": [1, 2]}');
      await siyuan.storage.put("lone", "a\ud800b");
      await siyuan.storage.remove(undefined);
      await siyuan.storage.put("undefined", "gone soon");
      await siyuan.storage.remove(undefined);
      const text = async (p) => (await siyuan.storage.get(p)).text();
      const bad = await siyuan.storage.get("ab");
      await Promise.all([
        rec("dir", siyuan.storage.get("deep")), rec("listFile", siyuan.storage.list("num")),
        rec("listMissing", siyuan.storage.list("nowhere")), rec("listNoArg", siyuan.storage.list()),
        rec("removeNoArg", siyuan.storage.remove()), rec("rootPut", siyuan.storage.put("/", "x")),
      ]);
      return {
        num: await text("num"), obj: await text("obj"), buf: await text("buf"), lone: await text("lone"),
        json: await (await siyuan.storage.get("deep/er/file.json")).json(),
        badText: await bad.text(), badBytes: Array.from(await bad.buffer()),
        badAb: Array.from(new Uint8Array(await bad.arrayBuffer())),
        bufferIsBuffer: (await bad.buffer()) instanceof Buffer,
        copies: await (async () => { const d = await siyuan.storage.get("num"); const a = await d.buffer(); a[0] = 0;
                                     return (await d.text()); })(),
        rootList: (await siyuan.storage.list("")).map((e) => e.name),
        sameRoot: JSON.stringify(await siyuan.storage.list(".")) === JSON.stringify(await siyuan.storage.list("/")),
        deepList: await siyuan.storage.list("deep/er"),
        undefinedGone: !(await siyuan.storage.list("/")).some((e) => e.name === "undefined"),
        results,
      };
    """)
    assert (got["num"], got["obj"], got["buf"], got["lone"]) == ("42", "[object Object]", "bü", "a\ufffdb")
    assert got["json"] == {"k": [1, 2]}
    assert got["badText"] == "\ufffd\ufffdA" and got["badBytes"] == got["badAb"] == [255, 254, 65]
    assert got["bufferIsBuffer"] and got["copies"] == "42"
    assert got["rootList"] == ["ab", "buf", "deep", "lone", "num", "obj"] and got["sameRoot"]
    [entry] = got["deepList"]
    assert entry["name"] == "file.json" and entry["isDir"] is False and entry["isSymlink"] is False
    assert isinstance(entry["updated"], int) and entry["updated"] > 1_600_000_000  # Unix seconds
    assert got["undefinedGone"]
    r = got["results"]
    assert r["dir"]["go"] and r["dir"]["msg"] == "read deep: is a directory"
    assert r["listFile"]["msg"].startswith("failed to read directory: ")
    assert r["listMissing"]["msg"].startswith("failed to read directory: ")
    assert r["listNoArg"]["msg"] == "path required" and r["removeNoArg"]["msg"] == "path required"
    assert r["rootPut"]["msg"].startswith("failed to write file: ")
    assert all("/tmp" not in (v.get("msg") or "") for v in r.values())  # [better] no host paths


async def test_storage_symlink_inside_the_root_is_followed(host: Host) -> None:
    await started(host)
    assert host.manager is not None
    root = host.manager.plugins["probe"].storage.root
    (root / "real").mkdir()
    (root / "real" / "f.txt").write_text("inside")
    (root / "alias").symlink_to(root / "real")
    got = await run(host, """
      return [await (await siyuan.storage.get("alias/f.txt")).text(),
              (await siyuan.storage.list("/")).find((e) => e.name === "alias")];
    """)
    assert got[0] == "inside"
    assert got[1]["isSymlink"] is True and got[1]["isDir"] is False  # as SiYuan: a link to a folder is no folder


async def test_rpc_bind_descriptions_unbind_and_broadcast_params(host: Host) -> None:
    host.plugin("r", """
      let boundBeforeOnload = null;
      siyuan.rpc.bind("top", () => 1, "first", 2, { three: 3 });
      siyuan.plugin.lifecycle.onload = () => { boundBeforeOnload = true; };
      siyuan.rpc.bind("early", () => boundBeforeOnload);
      siyuan.rpc.bind("", () => "empty name");
      siyuan.rpc.bind("gone", () => 0);
      siyuan.rpc.unbind("gone");
      siyuan.rpc.bind("cast", async () => {
        await siyuan.rpc.broadcast("arr", [1, "two"]);
        await siyuan.rpc.broadcast("obj", { k: new Date(0) });
        await siyuan.rpc.broadcast("nul", null);
        await siyuan.rpc.broadcast("scalar", 5);
        await siyuan.rpc.broadcast("none");
        try { await siyuan.rpc.broadcast(7); } catch (e) { return e.message; }
      });
    """)
    m = await host.start()
    info = m.get_plugin("r")
    assert info is not None
    methods = {mi.name: mi.descriptions for mi in info.methods}
    assert methods["top"] == ["first", "2", "[object Object]"] and "" in methods and "gone" not in methods
    assert await m.call("r", "") == "empty name" and await m.call("r", "early") is True
    got: list[tuple[str, Any]] = []
    m.subscribe_broadcasts("r", lambda method, params: got.append((method, params)))
    assert await m.call("r", "cast") == "first argument must be method name string"
    from kplug_lab.host.runtime.api import NO_PARAMS

    assert got == [("arr", [1, "two"]), ("obj", {"k": "1970-01-01T00:00:00.000Z"}), ("nul", None),
                   ("scalar", 5), ("none", NO_PARAMS)]


async def test_mcp_and_agent_registry_records_errors_and_invocation(host: Host) -> None:
    host.plugin("t", """
      siyuan.rpc.bind("setup", async () => {
        const tool = await siyuan.mcp.registerTool("echo", { title: "Echo", description: "echoes", readOnly: true,
          inputSchema: { type: "object", properties: { x: { type: "number", minimum: 0 } } } }, (a) => a);
        const cap = await siyuan.agent.registerCapability("cap", { description: "d", inputSchema: {},
          effects: { localRead: true } }, () => null);
        await siyuan.mcp.registerTool("boom", { description: "b", inputSchema: {} }, () => { throw new Error("bad"); });
        await siyuan.mcp.registerTool("nan", { description: "n", inputSchema: {} }, () => NaN);
        await siyuan.mcp.registerTool("temp", { description: "t", inputSchema: {} }, () => 1);
        await siyuan.mcp.unregisterTool("temp");
        await siyuan.mcp.unregisterTool("never-registered");
        const errors = [];
        for (const p of [siyuan.mcp.registerTool(1, {}, () => 1), siyuan.mcp.registerTool("x", null, () => 1),
                         siyuan.mcp.registerTool("x", {}, 1),
                         siyuan.mcp.registerTool("x", { description: "d", inputSchema: {}, readOnly: "yes" }, () => 1),
                         siyuan.mcp.unregisterTool(), siyuan.mcp.unregisterTool(1),
                         siyuan.agent.registerCapability("x", {}), siyuan.agent.unregisterCapability()]) {
          try { await p; errors.push("ok"); } catch (e) { errors.push(e.message); }
        }
        return { tool, cap, errors };
      });
      siyuan.rpc.bind("dropCap", () => siyuan.agent.unregisterCapability("cap"));
    """)
    m = await host.start()
    got = await m.call("t", "setup")
    assert got["tool"] == {"name": "plugin__t__echo", "title": "Echo", "description": "echoes", "readOnly": True,
                           "inputSchema": {"type": "object", "properties": {"x": {"type": "number", "minimum": 0}}},
                           "outputSchema": None}
    cap = got["cap"]
    assert cap["name"].startswith("plugin__t__cap__") and len(cap["name"]) == len("plugin__t__cap__") + 12
    assert cap["description"] == "d" and cap["effects"] == {"localRead": True} and cap["id"]
    assert got["errors"] == ["first argument must be a tool name string", "second argument must be a config object",
                             "third argument must be a handler function", "config.readOnly must be a boolean",
                             "unregisterTool requires 1 argument: name", "first argument must be a tool name string",
                             "registerCapability requires 3 arguments: name, config, handler",
                             "unregisterCapability requires 1 argument: name"]
    names = {t["name"] for t in m.tools()}
    assert names == {"plugin__t__echo", cap["name"], "plugin__t__boom", "plugin__t__nan"}

    def text(res: dict[str, Any]) -> tuple[bool, str]:
        return res["isError"], res["content"][0]["text"]

    assert text(await m.invoke_tool("plugin__t__echo", {"x": 1})) == (False, '{"x": 1}')
    assert text(await m.invoke_tool(cap["name"], {})) == (False, "null")
    ok, msg = text(await m.invoke_tool("plugin__t__boom", {}))
    assert ok and msg.startswith("error invoking MCP tool handler: Error: bad")
    ok, msg = text(await m.invoke_tool("plugin__t__nan", {}))
    assert ok and msg.startswith("error marshaling MCP tool result: ")
    await m.call("t", "dropCap")
    assert cap["name"] not in {t["name"] for t in m.tools()}
    await m.unload("t")
    assert m.tools() == []


class _Kernel(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_header("X-Multi", "a")
        self.add_header("X-Multi", "b")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"method": self.request.method, "uri": self.request.uri,
                                "token": self.request.headers.get("X-Auth-Token"),
                                "custom": self.request.headers.get("X-Custom"),
                                "type": self.request.headers.get("Content-Type"),
                                "body": self.request.body.decode("utf-8", "replace")}))


@pytest.fixture
async def kernel() -> AsyncIterator[str]:
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/.*", _Kernel)]))
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}"
    server.stop()


async def test_client_fetch_reaches_only_the_kernel_with_the_plugin_token(host: Host, kernel: str) -> None:
    await started(host, siyuan_url=kernel, siyuan_token="tok")
    got = await run(host, r"""
      const r = await siyuan.client.fetch("/api/x?q=1", {
        method: "POST", headers: { "X-Custom": 5, "X-Auth-Token": "forged" }, body: '{"a":1}' });
      const get = await siyuan.client.fetch("/api/y", { body: "dropped for GET" });
      const bin = await siyuan.client.fetch("/api/z", { method: "PUT", body: new Uint8Array([104, 105]).buffer });
      await Promise.all([
        rec("fetchNone", siyuan.client.fetch()), rec("fetchNum", siyuan.client.fetch(1)),
        rec("fetchRel", siyuan.client.fetch("api/x")), rec("fetchUrl", siyuan.client.fetch("http://10.0.0.1/")),
        rec("socketNone", siyuan.client.socket()), rec("socketRel", siyuan.client.socket("ws")),
        rec("eventNone", siyuan.client.event()), rec("eventRel", siyuan.client.event("es")),
      ]);
      return { r: { url: r.url, ok: r.ok, status: r.status, statusText: r.statusText, multi: r.headers["X-Multi"],
                    json: await r.json(),
                    again: await r.text().then(() => "read twice", (e) => `${e.name}: ${e.message}`) },
               get: (await get.json()), bin: (await bin.json()).body, results };
    """)
    r = got["r"]
    assert (r["url"], r["ok"], r["status"], r["statusText"], r["multi"]) == ("/api/x?q=1", True, 200, "200 OK", "a, b")
    assert r["json"]["method"] == "POST" and r["json"]["uri"] == "/api/x?q=1" and r["json"]["body"] == '{"a":1}'
    assert r["json"]["token"] == "tok" and r["json"]["custom"] == "5"
    assert r["again"] == "TypeError: body stream already read"  # SiYuan v3.8: a fetch body is read once
    assert got["get"]["method"] == "GET" and got["get"]["body"] == "" and got["bin"] == "hi"
    res = got["results"]
    assert res["fetchNone"]["msg"] == res["fetchNum"]["msg"] == "path required" and res["fetchNone"]["go"]
    assert res["fetchRel"]["msg"] == res["fetchUrl"]["msg"] == "path must start with /"
    assert res["socketNone"]["msg"] == res["eventNone"]["msg"] == "path required"
    assert res["socketRel"]["msg"] == res["eventRel"]["msg"] == "path must start with /"


async def test_private_slots_without_a_handler_fail_with_siyuans_texts(host: Host) -> None:
    host.plugin("web", "siyuan.server.private.ws.handler = 42;")
    m = await host.start()
    request = {"url": {}, "context": {"path": "/"}, "port": None, "request": {"method": "GET", "body": {}}}
    for slot, text in [("http", "siyuan.server[private][http].handler is not set"),
                       ("ws", "siyuan.server[private][ws].handler is not a function")]:
        with pytest.raises(Exception, match=text.replace("[", r"\[").replace("]", r"\]")):
            await m.http_request("web", slot, request)
    assert host.state("web") == PluginState.RUNNING
