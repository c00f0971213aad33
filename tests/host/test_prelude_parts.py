"""The prelude's files (kplug_lab/host/js/): all declared, each readable in one sitting, joined into a working
prelude."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

from kplug_lab.host import js
from kplug_lab.sandbox import VM

MAX_LINES = 300
JS_DIR = resources.files("kplug_lab.host.js")
JS_FILES = sorted(p.name for p in JS_DIR.iterdir() if p.name.endswith(".js"))

# what the host does in Plugin._boot before the scripts, with stand-ins for the host operations
BRIDGE = """
globalThis.__kplug_native = Object.freeze({
  call: globalThis.__kplug_native_call,
  callAsync: globalThis.__kplug_native_call_async,
});
"""


def _text(name: str) -> str:
    return JS_DIR.joinpath(name).read_text(encoding="utf-8")


@pytest.fixture
def booted() -> Iterator[tuple[VM, list[tuple[Any, ...]]]]:
    """A VM with the durable script and the joined prelude evaluated, ``__kplug.init`` done, and the sync ops it
    called recorded."""
    ops: list[tuple[Any, ...]] = []

    def call_sync(op: str, *args: Any) -> Any:
        ops.append((op, *args))
        return None

    with VM() as vm:
        vm.register("__kplug_native_call", call_sync)
        vm.register("__kplug_native_call_async", lambda op, *args: None, is_async=True)
        vm.eval(BRIDGE, "<bridge>", want_result=False)
        vm.eval(js.durable(), "<kplug durable.js>", want_result=False)
        vm.eval(js.prelude(), js.PRELUDE_FILENAME, want_result=False)
        vm.call("__kplug.init", {"name": "parts", "version": "1.0.0", "displayName": "Parts", "platform": "linux",
                                 "i18n": {}, "kplug": True})
        yield vm, ops


def test_every_js_file_is_the_durable_script_or_a_declared_part_once() -> None:
    assert len(set(js.PRELUDE_PARTS)) == len(js.PRELUDE_PARTS), "a part is declared twice"
    assert js.DURABLE not in js.PRELUDE_PARTS
    found = JS_FILES
    assert found == sorted([js.DURABLE, *js.PRELUDE_PARTS]), (
        "every .js file in kplug_lab/host/js/ must be listed in PRELUDE_PARTS (kplug_lab/host/js/__init__.py)")


@pytest.mark.parametrize("name", JS_FILES)
def test_no_js_file_is_over_300_lines(name: str) -> None:
    lines = _text(name).count("\n")
    assert lines <= MAX_LINES, f"kplug_lab/host/js/{name} has {lines} lines: split it by capability"


@pytest.mark.parametrize("name", js.PRELUDE_PARTS)
def test_each_part_is_complete_syntax_on_its_own(name: str) -> None:
    # a brace or a comment left open across a file boundary would otherwise show up as an error in another part
    with VM() as vm:
        vm.eval(f'(function (G) {{\n"use strict";\n{_text(name)}\n}});', f"<{name}>", want_result=False)


def test_joined_prelude_builds_the_globals_and_freezes_the_host_entry_points(
        booted: tuple[VM, list[tuple[Any, ...]]]) -> None:
    vm, ops = booted
    got = vm.eval("""({
      native: typeof __kplug_native,
      siyuan: Object.keys(siyuan).sort(),
      frozen: Object.isFrozen(siyuan) && Object.isFrozen(__kplug) && Object.isFrozen(siyuan.client),
      lifecycleSealed: Object.isSealed(siyuan.plugin.lifecycle) && !Object.isFrozen(siyuan.plugin.lifecycle),
      web: ["TextEncoder", "TextDecoder", "setTimeout", "structuredClone", "AbortController", "crypto", "Buffer",
            "URL", "URLSearchParams", "require", "GoError", "global", "kplug"]
           .filter((n) => typeof globalThis[n] === "undefined"),
      url: new URL("../b?q=1", "https://example.com/a/c").href,
      bytes: Buffer.from(new TextEncoder().encode("héllo")).toString("base64"),
      goError: (() => { try { require("fs"); } catch (e) { return e instanceof GoError && e.message; } })(),
    })""")
    assert got == {
        "native": "undefined",
        "siyuan": ["agent", "client", "event", "logger", "mcp", "plugin", "rpc", "secrets", "server", "storage",
                   "vars"],
        "frozen": True,
        "lifecycleSealed": True,
        "web": [],
        "url": "https://example.com/b?q=1",
        "bytes": "aMOpbGxv",
        "goError": "Invalid module: fs",
    }
    vm.eval('console.warn("%d parts", 21); siyuan.logger.info("x", {a: 1})', want_result=False)
    assert ("log", "warn", "21 parts") in ops
    assert ("log", "info", 'x {"a":1}') in ops


def test_a_prelude_line_in_a_stack_trace_is_found_in_its_file(booted: tuple[VM, list[tuple[Any, ...]]]) -> None:
    vm, _ = booted
    stack = vm.eval('try { new TextDecoder("latin1"); } catch (e) { e.stack; }')
    match = re.search(re.escape(js.PRELUDE_FILENAME) + r":(\d+)", stack)
    assert match, stack
    name, line = js.locate(int(match.group(1)))
    assert name == "text_decoder.js"
    assert "encoding is not supported" in _text(name).splitlines()[line - 1]


def test_locate_maps_each_part_first_line_and_refuses_lines_outside_the_parts() -> None:
    lines = js.prelude().splitlines()
    for name in js.PRELUDE_PARTS:
        header = lines.index(f"// ---- kplug_lab/host/js/{name} ----")
        assert js.locate(header + 2) == (name, 1)
        with pytest.raises(ValueError, match="in none of its parts"):
            js.locate(header + 1)
    with pytest.raises(ValueError):
        js.locate(len(lines))
