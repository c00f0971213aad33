"""``require`` of a plugin's own files (changes §1): relative to the requiring file, CommonJS semantics (cache,
cycles with partial exports, ``module.exports``/``exports``, ``__filename``/``__dirname``, ``.js``/``.json``,
``index.js`` of folders, extension resolution, ``node_modules`` inside the folder), and nothing outside the
plugin's folder: absolute ids, ``..`` escapes and symlinks pointing out are "module not found" as in SiYuan."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kplug_testing import Host

from kplug_lab.host.ops.modules import MAX_MODULE_BYTES

KERNEL = """
const results = {};
const attempt = (id) => { try { require(id); return "loaded"; } catch (e) { return `${e.name}: ${e.message}`; } };
const a = require("./lib/a");
results.cycle = [a.name, a.sawB, require("./lib/b.js").sawPartialA];
results.same = require("./lib/a.js") === a && require("./lib/../lib/a") === a;
results.json = require("./data/config.json");
results.jsonNoExt = require("./data/config").answer;
results.index = require("./lib/nested").where;
results.deep = require("./lib/nested/deeper/leaf.js").chain;
results.names = require("./lib/names");
results.thisIsExports = require("./lib/this");
results.pkg = require("helper").fromPackage;
results.builtin = typeof require("url").URL;
results.escapes = ["../outside/secret", "./lib/../../outside/secret.js", "/etc/hostname", "./link-out/secret",
                   "./missing", "fs", "node:./lib/a"].map(attempt);
results.broken = [attempt("./lib/throws"), attempt("./lib/throws")];
results.badJson = attempt("./data/bad.json");
siyuan.rpc.bind("results", () => results);
"""

FILES = {
    "lib/a.js": """
      exports.name = "a";
      const b = require("./b");
      exports.sawB = b.name;
    """,
    "lib/b.js": """
      const a = require("./a.js");  // a is still loading: its exports so far
      module.exports = { name: "b", sawPartialA: a.name === "a" && a.sawB === undefined };
    """,
    "data/config.json": json.dumps({"answer": 42, "list": [1, 2]}),
    "data/bad.json": "{ not json",
    "lib/nested/index.js": 'module.exports = { where: "index of " + require("path-free") };',
    "lib/nested/node_modules/path-free/index.js": 'module.exports = "nested";',
    "lib/nested/deeper/leaf.js": 'exports.chain = require("../../a").name + require("../index.js").where;',
    "lib/names.js": "module.exports = { file: __filename, dir: __dirname, id: module.id, loaded: module.loaded };",
    "lib/this.js": "this.viaThis = true; module.exports = exports === this && this.viaThis;",
    "lib/throws.js": 'throw new Error("module failed");',
    "node_modules/helper/package.json": json.dumps({"main": "main.js"}),
    "node_modules/helper/main.js": 'exports.fromPackage = "main of helper";',
}


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


async def test_a_multi_file_plugin_loads_with_commonjs_semantics_and_cannot_leave_its_folder(host: Host,
                                                                                              tmp_path: Path) -> None:
    outside = tmp_path / "plugins" / "outside"
    write_files(outside, {"secret.js": "module.exports = 'secret';"})
    d = host.plugin("multi", KERNEL)
    write_files(d, FILES)
    os.symlink(outside, d / "link-out")
    m = await host.start()
    got = await m.call("multi", "results")
    assert got["cycle"] == ["a", "b", True]
    assert got["same"] is True
    assert got["json"] == {"answer": 42, "list": [1, 2]} and got["jsonNoExt"] == 42
    assert got["index"] == "index of nested"
    assert got["deep"] == "aindex of nested"
    assert got["names"] == {"file": "multi/lib/names.js", "dir": "multi/lib", "id": "multi/lib/names.js",
                            "loaded": False}
    assert got["thisIsExports"] is True
    assert got["pkg"] == "main of helper"
    assert got["builtin"] == "function"
    # outside the folder, missing, or not a built-in: all the same "module not found"
    assert got["escapes"] == [
        "GoError: Invalid module: ../outside/secret", "GoError: Invalid module: ./lib/../../outside/secret.js",
        "GoError: Invalid module: /etc/hostname", "GoError: Invalid module: ./link-out/secret",
        "GoError: Invalid module: ./missing", "GoError: Invalid module: fs", "GoError: Invalid module: node:./lib/a",
    ]
    assert got["broken"] == ["Error: module failed", "Error: module failed"]  # not cached half-loaded
    assert got["badJson"].startswith("SyntaxError: multi/data/bad.json: ")


async def test_a_module_file_above_the_size_bound_is_refused(host: Host) -> None:
    d = host.plugin("big", """
      siyuan.rpc.bind("load", () => { try { require("./big"); return "loaded"; } catch (e) { return e.message; } });
    """)
    with open(d / "big.js", "wb") as f:
        f.truncate(MAX_MODULE_BYTES + 1)
    m = await host.start()
    assert "larger than" in await m.call("big", "load")
