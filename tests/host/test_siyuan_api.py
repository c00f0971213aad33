"""The `siyuan` global and the standard globals, run in the real sandbox (spec §3, §4)."""

from __future__ import annotations

import json
from typing import Any

from kplug_testing import Host
from siyuan_probe import PROBE, run, started


async def test_structure_frozen_sealed_and_order(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const lc = siyuan.plugin.lifecycle;
      return {
        keys: Object.keys(siyuan),
        frozen: Object.isFrozen(siyuan) && Object.isFrozen(siyuan.plugin) && Object.isFrozen(siyuan.storage)
                && Object.isFrozen(siyuan.rpc) && Object.isFrozen(siyuan.logger) && Object.isFrozen(siyuan.client),
        lcSealed: Object.isSealed(lc) && !Object.isFrozen(lc),
        lcSlots: Object.keys(lc),
        eventSealed: Object.isSealed(siyuan.event),
        slotsSealed: Object.isSealed(siyuan.server.private.http) && siyuan.server.private.http.handler === null,
        plugin: { name: siyuan.plugin.name, version: siyuan.plugin.version, displayName: siyuan.plugin.displayName,
                  platform: siyuan.plugin.platform, i18n: siyuan.plugin.i18n },
        shadow: (() => { try { globalThis.siyuan = 1; } catch (e) {} return typeof siyuan; })(),
      };
    """)
    assert got["keys"] == ["plugin", "event", "logger", "storage", "rpc", "mcp", "agent", "client", "server",
                           "secrets", "vars"]
    assert got["frozen"] and got["lcSealed"] and got["eventSealed"] and got["slotsSealed"]
    assert got["lcSlots"] == ["onload", "onloaded", "onrunning", "onunload"]
    assert got["plugin"] == {"name": "probe", "version": "2.3.4", "displayName": "Probe", "platform": "linux",
                             "i18n": None}
    assert got["shadow"] == "object"


async def test_storage_round_trip_list_remove_and_errors(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      await siyuan.storage.put("a/b.txt", "héllo");
      await siyuan.storage.put("bin.dat", new Uint8Array([0, 255, 1]));
      const d = await siyuan.storage.get("a/b.txt");
      const out = { text: await d.text(), again: await d.text(), buf: (await d.buffer()).toString("hex"),
                    ab: (await d.arrayBuffer()).byteLength,
                    bin: Array.from(new Uint8Array(await (await siyuan.storage.get("bin.dat")).arrayBuffer())),
                    list: (await siyuan.storage.list("/")).map((e) => [e.name, e.isDir, e.isSymlink,
                                                                       typeof e.updated]) };
      await siyuan.storage.remove("a");
      await siyuan.storage.remove("does-not-exist");
      await Promise.all([
        rec("missing", siyuan.storage.get("a/b.txt")),
        rec("noPath", siyuan.storage.get()),
        rec("noContent", siyuan.storage.put("x")),
        rec("up", siyuan.storage.get("../../etc/passwd")),
        rec("abs", siyuan.storage.put("/../../x", "y")),
        rec("root", siyuan.storage.remove("/")),
        rec("badJson", siyuan.storage.put("j", "{").then(() => siyuan.storage.get("j")).then((x) => x.json())),
      ]);
      out.results = results;
      return out;
    """)
    assert got["text"] == got["again"] == "héllo"
    assert got["buf"] == "68c3a96c6c6f" and got["ab"] == 6
    assert got["bin"] == [0, 255, 1]
    assert got["list"] == [["a", True, False, "number"], ["bin.dat", False, False, "number"]]
    r = got["results"]
    assert r["missing"]["go"] and "no such file or directory" in r["missing"]["msg"]
    assert "/tmp" not in r["missing"]["msg"]  # [better] no host paths
    assert r["noPath"]["msg"] == "path required" and r["noPath"]["name"] == "GoError"
    assert r["noContent"]["msg"] == "path and content required"
    assert r["up"]["msg"] == "siyuan.storage: path traversal not allowed"
    assert r["abs"]["ok"]  # a leading "/" is harmless: "/../../x" is "x" inside the root (spec §3.4)
    assert (host.manager.plugins["probe"].storage.root / "x").read_text() == "y"  # type: ignore[union-attr]
    assert r["root"]["msg"] == "cannot remove storage root"
    assert r["badJson"]["ok"] is False


async def test_storage_symlink_out_of_the_root_is_refused(host: Host, tmp_path: Any) -> None:
    await started(host)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    storage_root = host.manager.plugins["probe"].storage.root  # type: ignore[union-attr]
    (storage_root / "link").symlink_to(secret)
    (storage_root / "dirlink").symlink_to(tmp_path)
    got = await run(host, """
      await Promise.all([rec("file", siyuan.storage.get("link")), rec("dir", siyuan.storage.get("dirlink/secret.txt")),
                         rec("write", siyuan.storage.put("dirlink/new.txt", "x"))]);
      return results;
    """)
    for key in ("file", "dir", "write"):
        assert got[key]["msg"] == "siyuan.storage: path traversal not allowed"
    assert not (tmp_path / "new.txt").exists()


async def test_rpc_params_mapping_results_and_errors(host: Host) -> None:
    host.plugin("m", """
      siyuan.rpc.bind("args", (...a) => ({ n: a.length, a }));
      siyuan.rpc.bind("date", () => new Date(0));
      siyuan.rpc.bind("bytes", () => new Uint8Array([1, 2, 3]));
      siyuan.rpc.bind("undef", () => ({ x: undefined, y: [undefined] }));
      siyuan.rpc.bind("big", () => 10n);
      siyuan.rpc.bind("boom", () => { throw new TypeError("bad input"); });
      siyuan.rpc.bind("reject", async () => { throw new Error("async bad"); });
      siyuan.rpc.bind("coded", () => { const e = new Error("teapot"); e.code = -32042; throw e; });
      siyuan.rpc.bind("nan", () => NaN);
      siyuan.rpc.bind("thisIsGlobal", function () { return this === globalThis; });
    """)
    m = await host.start()
    assert await m.call("m", "args") == {"n": 0, "a": []}
    assert await m.call("m", "args", [1, "b"]) == {"n": 2, "a": [1, "b"]}
    assert await m.call("m", "args", {"k": 1}) == {"n": 1, "a": [{"k": 1}]}
    assert await m.call("m", "date") == "1970-01-01T00:00:00.000Z"
    assert await m.call("m", "bytes") == "AQID"
    assert await m.call("m", "undef") == {"x": None, "y": [None]}
    assert await m.call("m", "big") == 10
    assert await m.call("m", "thisIsGlobal") is True
    for method, text, code in [("boom", 'error invoking method "boom": TypeError: bad input', -32603),
                               ("reject", 'error invoking method "reject": Error: async bad', -32603),
                               ("coded", "teapot", -32042), ("nan", "cannot encode NaN", -32603)]:
        try:
            await m.call("m", method)
        except Exception as exc:
            assert text in str(exc) and exc.code == code  # type: ignore[attr-defined]
        else:
            raise AssertionError(f"{method} should fail")


async def test_rpc_bind_argument_checks_and_broadcast(host: Host) -> None:
    await started(host)
    got: list[Any] = []
    host.manager.subscribe_broadcasts("probe", lambda m, p: got.append((m, p)))  # type: ignore[union-attr]
    r = await run(host, """
      await Promise.all([rec("b1", siyuan.rpc.bind("x")), rec("b2", siyuan.rpc.bind(1, () => 1)),
        rec("b3", siyuan.rpc.bind("x", 1)), rec("u1", siyuan.rpc.unbind()), rec("br", siyuan.rpc.broadcast()),
        rec("ok", siyuan.rpc.broadcast("tick", { n: 1 })), rec("none", siyuan.rpc.broadcast("bare")),
        rec("unbindUnknown", siyuan.rpc.unbind("never"))]);
      return results;
    """)
    assert r["b1"]["msg"] == "method name and function required"
    assert r["b2"]["msg"] == "first argument must be method name string"
    assert r["b3"]["msg"] == "second argument must be a function"
    assert r["u1"]["msg"] == "method name required"
    assert r["br"]["msg"] == "method required"
    assert r["ok"]["ok"] and r["unbindUnknown"]["ok"]
    assert got[0] == ("tick", {"n": 1}) and got[1][0] == "bare"


async def test_logger_renders_like_siyuan_and_keeps_order(host: Host) -> None:
    await started(host)
    await run(host, """
      siyuan.logger.info("a", 1, null, undefined, {x: 1}, [1], new Error("e"), "multi\\nline");
      for (let i = 0; i < 50; i++) siyuan.logger.debug("n" + i);
      console.log("%s=%d %j %% %x", "k", "5", {a: 1}, "extra");
      return siyuan.logger.warn("w");
    """)
    logs = host.logs("probe")
    assert 'a 1 null undefined {"x":1} [1] {} multi' in logs and "line" in logs
    assert [x for x in logs if x.startswith("n")] == [f"n{i}" for i in range(50)]
    assert 'k=5 {"a":1} % %x extra' in logs


async def test_event_emit_runtime_loops_back_and_checks_arguments(host: Host) -> None:
    await started(host)
    r = await run(host, """
      const got = [];
      siyuan.event.handler = (m) => { got.push(m); };
      await Promise.all([rec("e1", siyuan.event.emit("runtime")), rec("e2", siyuan.event.emit("", 1))]);
      await siyuan.event.emit("runtime", { hi: 1 });
      await siyuan.event.emit("elsewhere", 2);
      await new Promise((res) => setTimeout(res, 10));
      return { got, results };
    """)
    assert r["got"] == [{"hi": 1}]
    assert r["results"]["e1"]["msg"] == "topic and event required"
    assert r["results"]["e2"]["msg"] == "topic required"


async def test_tools_both_generations_share_one_registry(host: Host) -> None:
    host.plugin("tools", """
      siyuan.plugin.lifecycle.onload = async () => {
        await siyuan.mcp.registerTool("add.nums", { description: "adds", inputSchema: { type: "object" } },
                                       ({ a, b }) => a + b);
        await siyuan.agent.registerCapability("greet", { description: "greets", inputSchema: { type: "object" } },
                                              async ({ who }) => "hi " + who);
      };
      siyuan.rpc.bind("errors", async () => {
        const out = [];
        for (const p of [siyuan.mcp.registerTool("x"), siyuan.mcp.registerTool("x", {}, () => 1),
                         siyuan.mcp.registerTool("x", { description: "d" }, () => 1)]) {
          try { await p; } catch (e) { out.push(e.message); }
        }
        return out;
      });
    """)
    m = await host.start()
    names = sorted(t["name"] for t in m.tools())
    assert names[0] == "plugin__tools__add_nums"
    assert names[1].startswith("plugin__tools__greet__") and len(names[1].split("__")[-1]) == 12
    assert json.loads((await m.invoke_tool("plugin__tools__add_nums", {"a": 2, "b": 3}))["content"][0]["text"]) == 5
    res = await m.invoke_tool(names[1], {"who": "ann"})
    assert res["content"][0]["text"] == '"hi ann"' and not res["isError"]
    assert await m.call("tools", "errors") == ["registerTool requires 3 arguments: name, config, handler",
                                               "config.description is required and must be a string",
                                               "config.inputSchema is required"]
    await m.unload("tools")
    assert m.tools() == []


async def test_secrets_and_vars_resolve_in_the_host(host: Host) -> None:
    host.plugin("probe", PROBE)
    await host.start(secrets={"API_KEY": "s3cret"}, vars={"HOST": "example.org"})
    got = await run(host, """
      return [siyuan.secrets.resolve("k={{secrets.API_KEY}} ${API_KEY} $API_KEY $NOPE"),
              siyuan.vars.resolve("https://{{vars.HOST}}/"), siyuan.secrets.resolve(42), siyuan.vars.resolve()];
    """)
    assert got == ["k=s3cret s3cret s3cret $NOPE", "https://example.org/", "", ""]


async def test_standard_globals_work(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      const u = new URL("https://user:pw@Example.COM:443/a/./b/../c?x=1&y=two#frag");
      u.searchParams.append("z", "3 4");
      const rel = new URL("../d?q", "http://h/a/b/c");
      const enc = new TextEncoder().encode("a€😀");
      const ac = new AbortController(); ac.abort();
      const timed = AbortSignal.timeout(5);
      await new Promise((r) => setTimeout(r, 30));
      const clone = structuredClone({ d: new Date(5), m: new Map([[1, { s: new Set([2]) }]]) });
      const cyc = { }; cyc.self = cyc;
      const b = Buffer.from("héllo");
      let immediate = 0; setImmediate(() => { immediate++; });
      let intervals = 0; const h = setInterval(() => { if (++intervals === 3) clearInterval(h); }, 1);
      await new Promise((r) => setTimeout(r, 40));
      return {
        href: u.href, host: u.host, path: u.pathname, search: u.search, origin: u.origin, rel: rel.href,
        bad: (() => { try { new URL("nope"); } catch (e) { return e instanceof TypeError; } })(),
        enc: Array.from(enc), dec: new TextDecoder().decode(enc),
        replacement: new TextDecoder().decode(new Uint8Array([0x61, 0xff, 0x62])),
        fatal: (() => { try { new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])); }
                        catch (e) { return e.name; } })(),
        b64: btoa("hi"), unb64: atob("aGk="),
        aborted: ac.signal.aborted, reason: ac.signal.reason.name, timedOut: timed.aborted && timed.reason.name,
        clone: [clone.d instanceof Date, clone.d.getTime(), clone.m.get(1).s.has(2)],
        cyc: structuredClone(cyc).self !== cyc,
        fn: (() => { try { structuredClone(() => 1); } catch (e) { return e.name; } })(),
        uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()),
        rnd: crypto.getRandomValues(new Uint8Array(16)).some((x) => x !== 0),
        buf: [b.length, b.toString("hex"), b.toString("base64"), Buffer.from("aGk", "base64url").toString(),
              Buffer.concat([Buffer.from([1]), Buffer.from([2, 3])]).readUInt16BE(1), Buffer.isBuffer(b),
              b instanceof Uint8Array],
        goError: [new GoError("x") instanceof Error, GoError("y").name, GoError("y") instanceof GoError],
        require: [typeof require("util").format === "function", require("node:buffer").Buffer === Buffer,
                  (() => { try { require("fs"); } catch (e) { return e.name + ": " + e.message; } })()],
        perf: typeof performance.now(), micro: typeof queueMicrotask, immediate, intervals,
      };
    """)
    assert got["href"] == "https://user:pw@example.com/a/c?x=1&y=two&z=3+4#frag"
    assert (got["host"], got["path"], got["origin"]) == ("example.com", "/a/c", "https://example.com")
    assert got["rel"] == "http://h/a/d?q" and got["bad"] is True
    assert got["enc"] == [97, 226, 130, 172, 240, 159, 152, 128] and got["dec"] == "a€😀"
    assert got["replacement"] == "a\ufffdb" and got["fatal"] == "TypeError"
    assert (got["b64"], got["unb64"]) == ("aGk=", "hi")
    assert got["aborted"] and got["reason"] == "AbortError" and got["timedOut"] == "TimeoutError"
    assert got["clone"] == [True, 5, True] and got["cyc"] and got["fn"] == "DataCloneError"
    assert got["uuid"] and got["rnd"]
    assert got["buf"] == [6, "68c3a96c6c6f", "aMOpbGxv", "hi", 0x0203, True, True]
    assert got["goError"] == [True, "GoError", True]
    assert got["require"] == [True, True, "GoError: Invalid module: fs"]
    assert got["perf"] == "number" and got["micro"] == "function"
    assert got["immediate"] == 1 and got["intervals"] == 3


async def test_private_http_handler_request_and_response(host: Host) -> None:
    host.plugin("web", """
      siyuan.server.private.http.handler = async function (req) {
        const body = await req.request.body.data.json();
        return { statusCode: 201, headers: { "X-A": ["1", "2"] },
                 body: { data: { type: "JSON", data: { path: req.context.path, got: body, m: req.request.method,
                                                        isSlot: this === siyuan.server.private.http } } } };
      };
    """)
    m = await host.start()
    import base64

    res = await m.http_request("web", "http", {"url": {}, "context": {"path": "/x"}, "port": None,
                                               "request": {"method": "POST", "body": {
                                                   "form": None, "dataBase64": base64.b64encode(b'{"a":1}').decode()}}})
    assert res["statusCode"] == 201 and res["headers"] == {"X-A": ["1", "2"]}
    assert res["body"]["data"]["data"] == {"path": "/x", "got": {"a": 1}, "m": "POST", "isSlot": True}
