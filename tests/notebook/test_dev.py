"""``%kplug dev`` on a TypeScript plugin project (two source files and an npm dependency), and ``%%kplug plugin
--ts``: build, load, rebuild on save, build errors with file and line while the old copy keeps answering, and
stack positions mapped to the .ts lines."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from kplug_lab.client import CallFailed
from kplug_lab.notebook._dev import BuildFailed, DevView, SourceMap, parse_esbuild_errors
from kplug_lab.notebook._npm import ESBUILD, NpmUnavailable, npm_tool

GREET_TS = """\
export interface Person { name: string }

export function greet(who: Person, word = "Hello"): string {
  return `${word}, ${who.name}!`;
}

export function explode(reason: string): never {
  throw new Error(`exploded: ${reason}`);
}
"""
EXPLODE_LINE = 8

KERNEL_TS = """\
import ms from "ms";
import { explode, greet, type Person } from "./greet";

const people: Person[] = [];

siyuan.rpc.bind("hello", (name: string) => greet({ name }), "Greets someone");
siyuan.rpc.bind("span", (millis: number) => ms(millis), "A duration in words");
siyuan.rpc.bind("fail", () => explode("on purpose"));
siyuan.rpc.bind("count", () => people.length);
"""


@pytest.fixture(scope="module")
def esbuild() -> Path:
    try:
        return npm_tool(*ESBUILD)
    except NpmUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"esbuild is not available: {exc}")


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "plugin.json").write_text(json.dumps({"name": "ts-dev", "version": "0.1.0", "kernels": ["all"]}))
    (root / "package.json").write_text(json.dumps({"name": "ts-dev", "private": True,
                                                   "dependencies": {"ms": "2.1.3"}}))
    (root / "src" / "greet.ts").write_text(GREET_TS)
    (root / "src" / "kernel.ts").write_text(KERNEL_TS)
    return root


def call(ip: InteractiveShell, line: str) -> object:
    return ip.run_line_magic("kplug", f"call {line}").value


def test_dev_builds_reloads_on_save_keeps_old_copy_on_errors_and_maps_stacks(
        connected: InteractiveShell, esbuild: Path, tmp_path: Path) -> None:
    root = project(tmp_path / "ts-dev")
    view = connected.run_line_magic("kplug", f"dev {root}")
    try:
        assert isinstance(view, DevView) and "built ts-dev" in view.text() and "watching" in view.text()
        assert call(connected, 'ts-dev.hello "Ada"') == "Hello, Ada!"
        assert call(connected, "ts-dev.span 60000") == "1m"  # the npm dependency, bundled

        with pytest.raises(CallFailed) as failed:
            connected.run_line_magic("kplug", "call ts-dev.fail")
        assert f"src/greet.ts:{EXPLODE_LINE}:" in str(failed.value)
        assert "exploded: on purpose" in str(failed.value)

        dev = view.project
        builds = len(dev.builds)
        (root / "src" / "greet.ts").write_text(GREET_TS.replace('word = "Hello"', 'word = "Hi"'))
        eventually(lambda: len(dev.builds) > builds and dev.builds[-1].ok, "the rebuild")
        assert call(connected, 'ts-dev.hello "Ada"') == "Hi, Ada!"

        builds = len(dev.builds)
        (root / "src" / "greet.ts").write_text(GREET_TS.replace("return `${word}", "return = `${word}"))
        eventually(lambda: len(dev.builds) > builds, "the failed build")
        record = dev.builds[-1]
        assert not record.ok
        [error] = record.errors
        assert (error.file, error.line) == ("src/greet.ts", 4)
        assert "return = `${word}" in error.excerpt
        assert "failed; the running copy keeps running" in view.text() and "src/greet.ts:4:" in view.text()
        assert call(connected, 'ts-dev.hello "Ada"') == "Hi, Ada!"  # the old version still answers
    finally:
        assert connected.run_line_magic("kplug", "dev --stop").text() == "stopped watching ts-dev"


def test_a_first_build_that_fails_raises_with_file_line_and_excerpt(
        connected: InteractiveShell, esbuild: Path, tmp_path: Path) -> None:
    root = project(tmp_path / "broken")
    (root / "src" / "kernel.ts").write_text("const x: number = ;\n")
    with pytest.raises(BuildFailed) as failed:
        connected.run_line_magic("kplug", f"dev {root} --no-watch")
    [error] = failed.value.errors
    assert (error.file, error.line, error.column) == ("src/kernel.ts", 1, 18)
    assert "const x: number = ;" in error.excerpt and "src/kernel.ts:1:18" in str(failed.value)


def test_typescript_cells_compile_and_name_their_lines(connected: InteractiveShell, esbuild: Path) -> None:
    cell = """\
interface Item { text: string; done: boolean }
const items: Item[] = [];
siyuan.rpc.bind("add", (text: string): number => items.push({ text, done: false }));
siyuan.rpc.bind("check", (i: number): Item => {
  if (!items[i]) throw new RangeError(`no item ${i}`);
  return { ...items[i], done: true };
});
"""
    view = connected.run_cell_magic("kplug", "plugin tscell --ts", cell)
    assert view.plugin.state == "running"
    assert call(connected, 'tscell.add "milk"') == 1
    assert call(connected, "tscell.check 0") == {"text": "milk", "done": True}
    with pytest.raises(CallFailed, match=r"tscell\.ts:5:"):
        connected.run_line_magic("kplug", "call tscell.check 7")
    with pytest.raises(BuildFailed, match=r"tscell\.ts:1:"):
        connected.run_cell_magic("kplug", "plugin tscell --ts", "const = 1;\n")
    assert call(connected, 'tscell.add "eggs"') == 2  # the running copy was left alone


def test_source_maps_are_decoded() -> None:
    # "AAAA;AACA,IAAI": line 1 col 0 -> src 0 line 0 col 0; line 2 col 0 -> line 1 col 0, col 4 -> line 1 col 4
    sm = SourceMap.parse({"version": 3, "sources": ["a.ts"], "mappings": "AAAA;AACA,IAAI"}, Path("/p"))
    assert sm.lookup(1, 1) == ("/p/a.ts", 1, 1)
    assert sm.lookup(2, 7) == ("/p/a.ts", 2, 5)
    assert sm.lookup(9, 1) is None


def test_esbuild_reports_are_parsed() -> None:
    report = ('✘ [ERROR] Expected ";" but found "x"\n\n    src/a.ts:3:10:\n      3 │ let a = 1 x\n'
              "        ╵           ^\n\n1 error\n")
    [error] = parse_esbuild_errors(report)
    assert (error.file, error.line, error.column, error.message) == ("src/a.ts", 3, 10, 'Expected ";" but found "x"')
    assert "let a = 1 x" in error.excerpt
