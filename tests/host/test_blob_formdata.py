"""Blob, File and FormData in a real plugin VM, and the data objects' ``bytes()`` / ``blob()``.

Conformance: cases ported (assertions, not files) from the web-platform-tests: FileAPI/blob/{Blob-constructor,
Blob-slice,Blob-text,Blob-array-buffer,Blob-bytes,Blob-stream}.any.js, FileAPI/file/File-constructor.any.js,
xhr/formdata/{append,set,get,has,delete,foreach,iteration,constructor}.any.js.
"""

from __future__ import annotations

from kplug_testing import Host
from siyuan_probe import run, started


async def test_blob_parts_type_size_and_reading(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const buf = new Uint8Array([1, 2, 3, 4]);
      const inner = new Blob(["in"]);
      const b = new Blob(["h\\u00e9", buf.buffer, buf.subarray(1, 3), new Uint16Array([0x4141]), inner, 7],
        { type: "Text/HTML; charset=UTF-8" });
      buf[1] = 99;  // parts are copied at construction
      return {
        size: b.size, type: b.type,
        bytes: Array.from(await b.bytes()),
        ab: (await b.arrayBuffer()).byteLength,
        text: await new Blob(["\\ufeffbom ", "\\ud800x"]).text(),
        empty: [new Blob().size, new Blob().type, new Blob([]).size, await new Blob().text()],
        badType: [new Blob([], { type: "a\\u00e9" }).type, new Blob([], { type: "\\x19x" }).type],
        endings: [await new Blob(["a\\r\\nb\\rc"], { endings: "native" }).text(), await new Blob(["a\\r\\n"]).text()],
        errors: [() => new Blob("str"), () => new Blob(7), () => new Blob([], { endings: "other" })]
          .map((f) => { try { f(); return "no error"; } catch (e) { return e.name; } }),
        proto: [String(b), b instanceof Blob, typeof Blob.prototype.stream],
      };
    """)
    assert got["size"] == 3 + 4 + 2 + 2 + 2 + 1 and got["type"] == "text/html; charset=utf-8"
    assert got["bytes"] == [104, 195, 169, 1, 2, 3, 4, 2, 3, 0x41, 0x41, 105, 110, 55]
    assert got["ab"] == 14
    assert got["text"] == "bom \ufffdx"
    assert got["empty"] == [0, "", 0, ""]
    assert got["badType"] == ["", ""]
    assert got["endings"] == ["a\nb\nc", "a\r\n"]
    assert got["errors"] == ["TypeError", "TypeError", "TypeError"]
    assert got["proto"] == ["[object Blob]", True, "function"]


async def test_blob_slice_with_negative_indices_and_stream(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const b = new Blob(["abcdefghij"], { type: "text/plain" });
      const t = (x) => x.text();
      const big = new Blob([new Uint8Array(150000).fill(7)]);
      let total = 0, chunks = 0, allUint8 = true;
      for await (const c of big.stream()) { total += c.byteLength; chunks++;
        allUint8 = allUint8 && c instanceof Uint8Array; }
      return {
        slices: await Promise.all([b.slice(), b.slice(2), b.slice(-3), b.slice(2, -2), b.slice(-100, 3), b.slice(5, 2),
                                   b.slice(8, 100), b.slice(1, 4).slice(1)].map(t)),
        types: [b.slice().type, b.slice(0, 1, "Image/PNG").type, b.slice(0, 1, "bad\\u0100").type],
        sizes: [b.slice(-3).size, b.slice(5, 2).size],
        stream: [total, chunks > 1, allUint8],
      };
    """)
    assert got["slices"] == ["abcdefghij", "cdefghij", "hij", "cdefgh", "abc", "", "ij", "cd"]
    assert got["types"] == ["", "image/png", ""]
    assert got["sizes"] == [3, 0]
    assert got["stream"] == [150000, True, True]


async def test_file_name_last_modified_and_required_arguments(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const before = Date.now();
      const f = new File(["xy"], "n\\u00e4me.txt", { type: "Text/Plain" });
      return {
        f: [f.name, f.size, f.type, f.lastModified >= before, f instanceof Blob, String(f)],
        dated: new File([], "a", { lastModified: 42 }).lastModified,
        missing: (() => { try { new File(["x"]); } catch (e) { return e.name; } })(),
        text: await f.text(),
      };
    """)
    assert got["f"] == ["näme.txt", 2, "text/plain", True, True, "[object File]"]
    assert got["dated"] == 42 and got["missing"] == "TypeError" and got["text"] == "xy"


async def test_form_data_entries_order_and_blob_values_become_files(host: Host) -> None:
    await started(host)
    got = await run(host, """
      const fd = new FormData();
      fd.append("a", "1");
      fd.append("b", new Blob(["blob"], { type: "text/plain" }));
      fd.append("c", new File(["f"], "orig.txt", { lastModified: 5 }));
      fd.append("d", new File(["g"], "orig.txt"), "renamed.txt");
      fd.append("a", 2);
      fd.append("e", new Blob(["x"]), "given.bin");
      const desc = (v) => (typeof v === "string" ? v : `${v.constructor.name}:${v.name}:${v.type}:${v.size}`);
      const out = {
        entries: [...fd].map(([k, v]) => [k, desc(v)]),
        get: [fd.get("a"), fd.get("missing"), fd.getAll("a"), fd.getAll("missing"), fd.has("b"), fd.has("z")],
        keys: [...fd.keys()], values: [...fd.values()].map(desc),
        lastModified: fd.get("c").lastModified,
      };
      fd.set("a", "only");
      out.afterSet = [...fd.keys()];
      out.setValue = fd.getAll("a");
      fd.set("new", "n");
      fd.delete("b");
      out.afterDelete = [...fd.keys()];
      const seen = [];
      fd.forEach(function (value, key, form) { seen.push([key, this.tag, form === fd]); }, { tag: "t" });
      out.forEach = seen.length === fd.getAll("a").length + 4 && seen.every((s) => s[1] === "t" && s[2]);
      const it = fd.entries();
      it.next();
      fd.append("late", "x");
      const rest = []; for (let r = it.next(); !r.done; r = it.next()) rest.push(r.value[0]);
      out.liveIteration = rest;
      out.iteratorTag = Object.prototype.toString.call(fd.keys());
      out.errors = [() => fd.append("x", "y", "name"), () => fd.append("only-one"), () => new FormData({}),
        () => fd.get()]
        .map((f) => { try { f(); return "no error"; } catch (e) { return e.name; } });
      out.usv = new FormData().get.call((() => { const x = new FormData(); x.append("\\ud800", "\\udc00"); return x;
        })(), "\\ufffd");
      out.tag = String(fd);
      return out;
    """)
    assert got["entries"] == [["a", "1"], ["b", "File:blob:text/plain:4"], ["c", "File:orig.txt::1"],
                              ["d", "File:renamed.txt::1"], ["a", "2"], ["e", "File:given.bin::1"]]
    assert got["get"] == ["1", None, ["1", "2"], [], True, False]
    assert got["keys"] == ["a", "b", "c", "d", "a", "e"]
    assert got["lastModified"] == 5
    assert got["afterSet"] == ["a", "b", "c", "d", "e"] and got["setValue"] == ["only"]
    assert got["afterDelete"] == ["a", "c", "d", "e", "new"]
    assert got["forEach"] is True
    assert got["liveIteration"] == ["c", "d", "e", "new", "late"]
    assert got["iteratorTag"] == "[object FormData Iterator]"
    assert got["errors"] == ["TypeError", "TypeError", "TypeError", "TypeError"]
    assert got["usv"] == "\ufffd"
    assert got["tag"] == "[object FormData]"


async def test_storage_data_object_gains_bytes_and_blob(host: Host) -> None:
    await started(host)
    got = await run(host, """
      await siyuan.storage.put("bin.dat", new Uint8Array([0, 255, 65]));
      await siyuan.storage.put("t.txt", "h\\u00e9");
      const bin = await siyuan.storage.get("bin.dat"), txt = await siyuan.storage.get("t.txt");
      const bytes = await bin.bytes();
      bytes[0] = 9;  // a copy each call
      const blob = await txt.blob();
      return {
        bytes: [bytes instanceof Uint8Array, Array.from(await bin.bytes()), Array.from(await txt.bytes())],
        blob: [blob instanceof Blob, blob.type, blob.size, await blob.text(),
          Array.from(await (await bin.blob()).bytes())],
      };
    """)
    assert got["bytes"] == [True, [0, 255, 65], [104, 195, 169]]
    assert got["blob"] == [True, "", 3, "hé", [0, 255, 65]]
