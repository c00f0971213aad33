"""``kplug_lab/types/kernel.d.ts``: a TypeScript plugin and every example plugin type-check against it with tsc
(npm's typescript, installed once into kplug_lab's npm cache)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from kplug_lab.notebook._npm import TYPESCRIPT, NpmUnavailable, npm_tool
from kplug_lab.types import KERNEL_DTS

REPO = Path(__file__).resolve().parents[2]

PLUGIN_TS = """\
interface Note { id: number; text: string }

const notes: Note[] = [];

siyuan.plugin.lifecycle.onload = async () => {
  const saved = await siyuan.storage.get("notes.json").then((d) => d.json<Note[]>(), () => []);
  notes.push(...saved);
  siyuan.logger.info("loaded", notes.length, "notes on", siyuan.plugin.platform);
};

siyuan.rpc.bind("add", async (text: string): Promise<Note> => {
  const note = { id: notes.length + 1, text };
  notes.push(note);
  await siyuan.storage.put("notes.json", JSON.stringify(notes));
  await siyuan.rpc.broadcast("added", note);
  return note;
}, "Adds a note");

siyuan.rpc.bind("version", async () => {
  const r = await siyuan.client.fetch("/api/system/version", { method: "POST" });
  return r.ok ? (await r.json<{ data: string }>()).data : r.statusText;
});

siyuan.server.private.http.handler = async (req) => ({
  statusCode: 200,
  headers: { "X-Count": [String(notes.length)] },
  body: { data: { type: "JSON", data: { path: req.context.path, notes } } },
});

if (typeof kplug !== "undefined") {
  const stop = kplug.queue("mail").consume(async (item: { to: string }, info) => {
    siyuan.logger.info("sending to", item.to, "attempt", info.attempts);
  });
  siyuan.plugin.lifecycle.onunload = async () => { await stop(); };
  void kplug.kv.transaction(async (tx) => {
    const n = (await tx.get<number>("starts")) ?? 0;
    tx.set("starts", n + 1);
    return n + 1;
  });
}

const timer = setInterval(() => console.log("%s notes", notes.length), 60_000);
clearInterval(timer);
const id: string = crypto.randomUUID();
const bytes: Buffer = Buffer.from(new TextEncoder().encode(id));
console.log(bytes.toString("hex"), new URL("/a?b=1", "http://x").searchParams.get("b"));

const upper = new TransformStream<string, string>({ transform(chunk, ctl) { ctl.enqueue(chunk.toUpperCase()); } });
void ReadableStream.from(["a", "b"]).pipeThrough(upper).getReader().read().then((r) => r.done || r.value.length);
const form = new FormData();
form.append("file", new File([new Blob(["hi"], { type: "text/plain" })], "hi.txt"));
void siyuan.storage.get("x").then((d) => d.blob()).then((b) => b.size);
void crypto.subtle.digest("SHA-256", new TextEncoder().encode("x")).then((h) => h.byteLength);
void crypto.subtle.importKey("raw", new Uint8Array(32), { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
  .then((key) => crypto.subtle.sign("HMAC", key, new Uint8Array([1])));
"""


@pytest.fixture(scope="module")
def tsc() -> Path:
    try:
        return npm_tool(*TYPESCRIPT)
    except NpmUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"typescript is not available: {exc}")


def check(tsc: Path, folder: Path, files: list[Path], **options: object) -> subprocess.CompletedProcess[str]:
    config = {"compilerOptions": {"noEmit": True, "strict": True, "lib": ["es2020"], "target": "es2020",
                                  "types": [], **options},
              "files": [str(KERNEL_DTS), *map(str, files)]}
    (folder / "tsconfig.json").write_text(json.dumps(config))
    return subprocess.run([str(tsc), "-p", str(folder / "tsconfig.json"), "--pretty", "false"], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def test_the_declarations_ship_in_the_package_and_tag_kplug_lab_only_members() -> None:
    text = KERNEL_DTS.read_text()
    assert KERNEL_DTS.parent.name == "types" and KERNEL_DTS.parent.parent.name == "kplug_lab"
    assert re.search(r"@kplugOnly \*/\s*declare namespace kplug", text)
    assert "declare namespace siyuan" in text and "const rpc" in text


def test_a_typescript_plugin_type_checks_and_misuse_is_reported_with_its_line(tsc: Path, tmp_path: Path) -> None:
    source = tmp_path / "kernel.ts"
    source.write_text(PLUGIN_TS)
    ok = check(tsc, tmp_path, [source])
    assert ok.returncode == 0, ok.stdout + ok.stderr

    source.write_text(PLUGIN_TS + 'siyuan.rpc.bind(42, () => 1);\nkplug.kv.set("k");\n')
    bad = check(tsc, tmp_path, [source])
    assert bad.returncode != 0
    lines = PLUGIN_TS.count("\n")
    assert f"kernel.ts({lines + 1},17): error TS2345" in bad.stdout
    assert f"kernel.ts({lines + 2}," in bad.stdout


@pytest.mark.parametrize("plugin", sorted(p.name for p in (REPO / "plugins").iterdir() if (p / "kernel.js").exists()))
def test_every_example_plugin_type_checks(tsc: Path, tmp_path: Path, plugin: str) -> None:
    # plugins split over files (todo) require their own .js and .json files, CommonJS style
    result = check(tsc, tmp_path, [REPO / "plugins" / plugin / "kernel.js"], allowJs=True, checkJs=True, strict=False,
                   module="commonjs", moduleResolution="node", resolveJsonModule=True)
    assert result.returncode == 0, result.stdout + result.stderr
