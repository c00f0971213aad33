"""What a script can reach: nothing but what the host registers. No file system, environment, network or
module loading; errors name the script's file and line."""

from __future__ import annotations

import time

import pytest

from kplug_lab.errors import JSError
from kplug_lab.sandbox import VM
from kplug_lab.sandbox._engine import get_module

AMBIENT = ["require", "process", "module", "exports", "std", "os", "scriptArgs", "print", "__loadScript",
           "fetch", "XMLHttpRequest", "WebSocket", "WebAssembly", "Deno", "Bun", "importScripts", "setTimeout"]


def test_no_ambient_globals_exist(vm: VM) -> None:
    types = vm.eval(f"{AMBIENT!r}.map((name) => typeof globalThis[name])")
    assert dict(zip(AMBIENT, types, strict=True)) == {name: "undefined" for name in AMBIENT}


@pytest.mark.parametrize("code", [
    "require('fs')", "process.env", "std.loadFile('/etc/passwd')", "os.exec(['ls'])",
    "fetch('http://127.0.0.1/')", "new XMLHttpRequest()", "std.getenv('HOME')",
])
def test_reaching_for_ambient_authority_is_a_reference_error(vm: VM, code: str) -> None:
    with pytest.raises(JSError) as info:
        vm.eval(code)
    assert info.value.name == "ReferenceError"
    assert vm.eval("1 + 1") == 2


def test_a_static_import_is_a_syntax_error(vm: VM) -> None:
    with pytest.raises(JSError) as info:
        vm.eval("import fs from 'fs';", "plugin/kernel.js")
    assert info.value.name == "SyntaxError"


async def test_dynamic_import_is_refused_cleanly(vm: VM) -> None:
    vm.eval("async function load(spec) { try { await import(spec); return 'loaded'; }"
            " catch (e) { return [e.name, e.message]; } }")
    for spec in ["fs", "std", "/etc/passwd", "./kernel.js", "data:text/javascript,export default 1"]:
        name, message = await vm.acall("load", spec)
        assert name == "ReferenceError" and message.startswith("could not load module"), (spec, message)
    assert vm.eval("typeof __kplug_console") == "undefined"  # the console hook is not left behind


def test_the_guest_imports_only_the_host_call_and_wasi_stubs() -> None:
    imports = {(i.module, i.name) for i in get_module().imports}
    wasi = {name for module, name in imports if module == "wasi_snapshot_preview1"}
    assert imports - {("wasi_snapshot_preview1", n) for n in wasi} == {("kplug", "host_call")}
    # no path_open, environ_get, sock_*, proc_exec...: libc's file and environment calls cannot even link
    assert wasi <= {"clock_time_get", "fd_write", "fd_close", "fd_seek", "fd_fdstat_get"}


def test_syntax_errors_name_file_and_line(vm: VM) -> None:
    with pytest.raises(JSError) as info:
        vm.eval("const ok = 1;\nconst broken = ;\n", "plugin/kernel.js")
    assert info.value.name == "SyntaxError" and "plugin/kernel.js:2" in info.value.stack


def test_runtime_errors_name_file_and_line(vm: VM) -> None:
    vm.eval("function boom() {\n  return undefinedName + 1;\n}\n", "plugins/hello/kernel.js")
    with pytest.raises(JSError) as info:
        vm.call("boom")
    assert info.value.name == "ReferenceError"
    assert "plugins/hello/kernel.js:2" in info.value.stack and "boom" in info.value.stack


def test_thrown_non_errors_keep_their_value(vm: VM) -> None:
    with pytest.raises(JSError) as info:
        vm.eval("throw { code: 7 }")
    assert info.value.value == {"code": 7}
    with pytest.raises(JSError, match="plain text"):
        vm.eval("throw 'plain text'")


def test_clock_random_and_console() -> None:
    lines: list[tuple[str, str]] = []
    a, b = VM(console=lambda lvl, text: lines.append((lvl, text))), VM()
    try:
        assert abs(a.eval("Date.now()") / 1000 - time.time()) < 5
        assert a.eval("Math.random()") != b.eval("Math.random()")
        a.eval("console.log('hi', 1); console.error('bad')")
        assert lines == [("info", "hi 1"), ("error", "bad")]
    finally:
        a.close()
        b.close()
