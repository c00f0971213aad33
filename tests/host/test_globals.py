"""The standard globals of kernel.js (spec §4), with their argument checks and error texts, in the real sandbox."""

from __future__ import annotations

from kplug_testing import Host, wait_for
from siyuan_probe import run, started


async def test_console_format_specifiers_and_levels(host: Host) -> None:
    await started(host)
    await run(host, """
      console.log("%s|%d|%j|%%|%o", "s", "42", { a: [1] }, "unused");
      console.log("%s and %s", "only one");
      console.log("no specifiers", 1, true, null);
      console.info("info line");
      console.debug("debug line");
      console.warn("warn %d", 7);
      console.error("two\\nlines");
      console.log(5, "x");
    """)
    assert host.manager is not None
    records = [(r.level, r.message) for r in host.manager.logs("probe", 0)]
    assert ("info", 's|42|{"a":[1]}|%|%o unused') in records
    assert ("info", "only one and %s") in records
    assert ("info", "no specifiers 1 true null") in records
    assert ("info", "info line") in records
    assert ("info", "debug line") in records  # goja_nodejs: console.debug writes at INFO
    assert ("warn", "warn 7") in records
    assert ("error", "two") in records and ("error", "lines") in records
    assert ("info", "5 x") in records


async def test_timers_immediates_microtasks_and_their_handles(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const order = [];
      const t1 = setTimeout((a, b) => order.push("timeout:" + a + b), 5, "x", "y");
      const cancelled = setTimeout(() => order.push("cancelled"), 1);
      clearTimeout(cancelled);
      const imm = setImmediate((a) => order.push("immediate:" + a), "i");
      const immCancelled = setImmediate(() => order.push("immCancelled"));
      clearImmediate(immCancelled);
      queueMicrotask(() => order.push("microtask"));
      let n = 0;
      const iv = setInterval(() => { if (++n === 3) clearInterval(iv); }, 0);
      const thisInCallback = await new Promise((r) => setTimeout(function () { "use strict"; r(this); }, 0));
      await new Promise((r) => setTimeout(r, 40));
      return {
        order, n, thisInCallback: thisInCallback === undefined,
        handles: [typeof t1, typeof imm, setTimeout("not a function", 1), setInterval(null), setImmediate(1)],
        clearJunk: [clearTimeout(undefined), clearInterval({}), clearImmediate(42)],
      };
    """)
    assert got["order"] == ["microtask", "immediate:i", "timeout:xy"]
    assert got["n"] == 3 and got["thisInCallback"]
    assert got["handles"] == ["object", "object", None, None, None]
    assert got["clearJunk"] == [None, None, None]


async def test_url_and_search_params(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      const p = new URLSearchParams("a=1&b=2&a=3&sp=x+y&enc=%C3%A9");
      p.append("c", "d&e");
      p.delete("b");
      const sorted = new URLSearchParams({ z: "1", a: "2" }); sorted.sort();
      const u = new URL("http://example.org/p?q=1");
      u.searchParams.set("q", "2"); u.hash = "h"; u.pathname = "/x y";
      return {
        all: p.getAll("a"), sp: p.get("sp"), enc: p.get("enc"), missing: p.get("nope"), has: p.has("c"),
        str: p.toString(), entries: [...p].length, sorted: sorted.toString(), href: u.href,
        fromPairs: new URLSearchParams([["k", "v"]]).toString(),
        canParse: [URL.canParse("x:"), URL.canParse("nope")],
        ws: new URL("ws://h:80/a").href, port: new URL("http://h:8080/").port,
        err: (() => { try { new URL("/relative"); } catch (e) { return e.name; } })(),
      };
    """)
    assert got["all"] == ["1", "3"] and got["sp"] == "x y" and got["enc"] == "é" and got["missing"] is None
    assert got["has"] and got["str"] == "a=1&a=3&sp=x+y&enc=%C3%A9&c=d%26e" and got["entries"] == 5
    assert got["sorted"] == "a=2&z=1" and got["fromPairs"] == "k=v"
    assert got["href"] == "http://example.org/x%20y?q=2#h"
    assert got["canParse"] == [True, False] and got["ws"] == "ws://h/a" and got["port"] == "8080"
    assert got["err"] == "TypeError"


async def test_text_encoding_base64_and_structured_clone(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      const dest = new Uint8Array(4);
      const into = new TextEncoder().encodeInto("aé€", dest);
      return {
        encoding: [new TextEncoder().encoding, new TextDecoder().encoding],
        into: [into.read, into.written, Array.from(dest)],
        bom: new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69])),
        keepBom: new TextDecoder("utf-8", { ignoreBOM: true }).decode(new Uint8Array([0xef, 0xbb, 0xbf])).length,
        fromBuffer: new TextDecoder().decode(new Uint8Array([0x68, 0x69]).buffer),
        label: (() => { try { new TextDecoder("latin2"); } catch (e) { return e.name + ": " + e.message; } })(),
        notBytes: (() => { try { new TextDecoder().decode("str"); } catch (e) { return e.name; } })(),
        b64: [btoa(""), btoa("\xff\x00"), atob(" aGk= ")],
        btoaWide: (() => { try { btoa("€"); } catch (e) { return e.name; } })(),
        clone: (() => {
          const src = { list: [1, { deep: true }], bytes: new Uint8Array([1, 2]), re: /a/gi, n: null };
          const c = structuredClone(src);
          c.list[1].deep = false; c.bytes[0] = 9;
          return [src.list[1].deep, src.bytes[0], c.re.flags, c.n];
        })(),
        symbol: (() => { try { structuredClone(Symbol("s")); } catch (e) { return e.name; } })(),
      };
    """)
    assert got["encoding"] == ["utf-8", "utf-8"]
    assert got["into"] == [2, 3, [97, 195, 169, 0]]  # whole characters only
    assert got["bom"] == "hi" and got["keepBom"] == 1 and got["fromBuffer"] == "hi"
    assert got["label"] == 'RangeError: The "latin2" encoding is not supported'
    assert got["notBytes"] == "TypeError"
    assert got["b64"] == ["", "/wA=", "hi"] and got["btoaWide"] in ("InvalidCharacterError", "TypeError")
    assert got["clone"] == [True, 1, "gi", None] and got["symbol"] == "DataCloneError"


async def test_abort_controller_crypto_and_performance(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      const ac = new AbortController();
      const seen = [];
      ac.signal.addEventListener("abort", (e) => seen.push("listener:" + e.type), { once: true });
      ac.signal.onabort = () => seen.push("onabort");
      const before = ac.signal.aborted;
      ac.abort("why"); ac.abort("again");
      const any = AbortSignal.any([new AbortController().signal, AbortSignal.abort("first")]);
      const t0 = performance.now();
      const uuids = new Set(Array.from({ length: 50 }, () => crypto.randomUUID()));
      return {
        before, seen, reason: ac.signal.reason, anyReason: any.reason,
        throwIf: (() => { try { ac.signal.throwIfAborted(); } catch (e) { return e; } })(),
        uuids: uuids.size,
        ints: crypto.getRandomValues(new Uint32Array(4)).length,
        same: (() => { const a = new Uint8Array(8); return crypto.getRandomValues(a) === a; })(),
        float: (() => { try { crypto.getRandomValues(new Float64Array(2)); } catch (e) { return e.name; } })(),
        quota: (() => { try { crypto.getRandomValues(new Uint8Array(65537)); } catch (e) { return e.name; } })(),
        monotonic: performance.now() >= t0,
      };
    """)
    assert got["before"] is False and got["seen"] == ["onabort", "listener:abort"]
    assert got["reason"] == "why" and got["anyReason"] == "first" and got["throwIf"] == "why"
    assert got["uuids"] == 50 and got["ints"] == 4 and got["same"]
    assert got["float"] == "TypeMismatchError" and got["quota"] == "QuotaExceededError" and got["monotonic"]


async def test_buffer_subset_encodings_and_read_write_family(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      const b = Buffer.alloc(32);
      const ends = [
        b.writeInt8(-2, 0), b.writeUInt8(250, 1), b.writeInt16LE(-300, 2), b.writeInt16BE(-300, 4),
        b.writeUInt16LE(65000, 6), b.writeUInt16BE(65000, 8), b.writeInt32LE(-70000, 10), b.writeInt32BE(-70000, 14),
        b.writeUInt32LE(4000000000, 18), b.writeUInt32BE(4000000000, 22), b.writeFloatLE(1.5, 26),
      ];
      const reads = [b.readInt8(0), b.readUInt8(1), b.readInt16LE(2), b.readInt16BE(4), b.readUInt16LE(6),
                     b.readUInt16BE(8), b.readInt32LE(10), b.readInt32BE(14), b.readUInt32LE(18), b.readUInt32BE(22),
                     b.readFloatLE(26)];
      const d = Buffer.alloc(24);
      d.writeDoubleBE(-0.25, 0); d.writeBigInt64LE(-5n, 8); d.writeBigUInt64BE(2n ** 63n, 16);
      const s = Buffer.from("héllo wörld");
      const w = Buffer.alloc(6);
      return {
        ends, reads, wide: [d.readDoubleBE(0), String(d.readBigInt64LE(8)), String(d.readBigUInt64BE(16)),
                            b.readFloatBE(26) !== 1.5, d.readDoubleLE(0) !== -0.25],
        enc: [s.toString("utf-8"), s.toString("hex").slice(0, 6), Buffer.from("68c3a9", "hex").toString(),
              s.toString("base64"), Buffer.from(s.toString("base64"), "base64").equals(s),
              Buffer.from([251, 255]).toString("base64Url"), Buffer.from("-_8", "base64Url").toString("hex"),
              s.toString("utf8", 0, 1)],
        write: [w.write("abcdefgh"), w.toString(), w.write("zz", 4), w.toString()],
        statics: [Buffer.poolSize, Buffer.concat([Buffer.from("ab"), Buffer.from("cd")], 3).toString(),
                  Buffer.from(new Uint8Array([7, 8]).buffer).length, Buffer.alloc(3, 1).join(","),
                  Buffer.from([1, 2]).equals(Buffer.from([1, 3]))],
        range: (() => { try { b.readInt32LE(30); } catch (e) { return e.name; } })(),
        badEnc: (() => { try { Buffer.from("x", "klingon"); } catch (e) { return e.name; } })(),
        json: JSON.stringify(Buffer.from([1])),
      };
    """)
    assert got["ends"] == [1, 2, 4, 6, 8, 10, 14, 18, 22, 26, 30]
    assert got["reads"] == [-2, 250, -300, -300, 65000, 65000, -70000, -70000, 4000000000, 4000000000, 1.5]
    assert got["wide"] == [-0.25, "-5", str(2**63), True, True]
    assert got["enc"] == ["héllo wörld", "68c3a9", "hé", "aMOpbGxvIHfDtnJsZA==", True, "-_8", "fbff", "h"]
    assert got["write"] == [6, "abcdef", 2, "abcdzz"]
    assert got["statics"] == [8192, "abc", 2, "1,1,1", False]
    assert got["range"] == "RangeError" and got["badEnc"] == "TypeError"
    assert got["json"] == '{"type":"Buffer","data":[1]}'


async def test_go_error_require_and_typeof_probes(host: Host) -> None:
    await started(host)
    got = await run(host, r"""
      const plain = GoError("called");
      const made = new GoError("made");
      const modules = ["console", "node:console", "util", "node:util", "url", "node:url", "buffer", "node:buffer"];
      return {
        goError: [plain instanceof GoError, plain instanceof Error, plain.name, plain.message, made.message,
                  Object.getPrototypeOf(GoError.prototype) === Error.prototype, String(made)],
        rejection: await siyuan.storage.get(1).catch((e) => [e instanceof GoError, e.value.error(), e.message]),
        modules: modules.map((m) => typeof require(m)),
        same: [require("console") === console, require("node:url").URL === URL,
               require("buffer").Buffer === Buffer, require("url").URLSearchParams === URLSearchParams,
               require("util").format("%s=%d", "a", 1), typeof require("url").domainToASCII],
        cached: require("util") === require("node:util"),
        invalid: ["fs", "path", "process", "node:fs", "./local.js", "/etc/passwd"].map((id) => {
          try { require(id); return "loaded"; } catch (e) { return e.name + ": " + e.message; }
        }),
        probes: Object.fromEntries(["structuredClone", "AbortController", "AbortSignal", "TextEncoder", "TextDecoder",
          "crypto", "queueMicrotask", "atob", "btoa", "URL", "URLSearchParams", "Buffer", "GoError", "require",
          "performance", "setImmediate", "console", "siyuan", "fetch", "process", "WebSocket", "EventSource",
          "module", "exports", "__kplug_native", "__kplug_native_call"].map((n) => [n, eval("typeof " + n)])),
      };
    """)
    assert got["goError"] == [True, True, "GoError", "called", "made", True, "GoError: made"]
    assert got["rejection"] == [True, "path required", "path required"]
    assert got["modules"] == ["object"] * 8
    assert got["same"] == [True, True, True, True, "a=1", "function"] and got["cached"]
    assert got["invalid"] == [f"GoError: Invalid module: {m}"
                              for m in ["fs", "path", "process", "node:fs", "./local.js", "/etc/passwd"]]
    probes = got["probes"]
    for name in ["structuredClone", "AbortController", "AbortSignal", "TextEncoder", "TextDecoder", "queueMicrotask",
                 "atob", "btoa", "URL", "URLSearchParams", "Buffer", "GoError", "require", "setImmediate"]:
        assert probes[name] == "function", name
    for name in ["crypto", "performance", "console", "siyuan"]:
        assert probes[name] == "object", name
    # not provided (spec §4): plugins that probe for these take their fallback path; the host's bridge is gone
    for name in ["fetch", "process", "WebSocket", "EventSource", "module", "exports", "__kplug_native",
                 "__kplug_native_call"]:
        assert probes[name] == "undefined", name


async def test_uncaught_timer_errors_are_logged_and_timers_keep_running(host: Host) -> None:
    await started(host)
    await run(host, """
      globalThis.ticks = 0;
      setTimeout(() => { throw new Error("timer boom"); }, 0);
      const iv = setInterval(() => { if (++globalThis.ticks === 3) clearInterval(iv); }, 1);
    """)
    await wait_for(lambda: any("timer boom" in m for m in host.logs("probe")), what="logged timer error")
    assert await run(host, "await new Promise((r) => setTimeout(r, 30)); return globalThis.ticks;") == 3
