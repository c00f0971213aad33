"""``%kplug dev PATH`` and ``%%kplug plugin NAME --ts``: plugins written in TypeScript (or bundled JavaScript), built
with esbuild into a ``kernel.js`` with a source map, loaded into the server, rebuilt and reloaded on every save.

A failed build changes nothing on the server: the running copy keeps answering, and the errors (file, line, the
source excerpt) are shown. Stack positions the host reports in the built ``<name>/kernel.js`` are mapped back to
the TypeScript sources with the build's source map (:class:`SourceMap`), in the errors of ``%kplug call``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..client import CallHistory, Client
from ..errors import KplugError
from ._npm import ESBUILD, npm_tool

__all__ = ["BuildError", "BuildFailed", "DevProject", "SourceMap", "build_cell", "map_positions"]

ENTRIES = ("src/kernel.ts", "src/kernel.js", "kernel.ts", "src/index.ts")
_SKIP_PARTS = {"node_modules", ".kplug-dev", ".git", "dist", "__pycache__"}
_SOURCE_SUFFIXES = (".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".json")


# ---- source maps ---------------------------------------------------------------------------------------------

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _vlq(segment: str) -> list[int]:
    values, shift, value = [], 0, 0
    for char in segment:
        digit = _B64[char]
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        shift, value = 0, 0
    return values


@dataclass
class SourceMap:
    """A version 3 source map, decoded: per generated line, (generated column, source, line, column), 0-based."""

    sources: list[str]
    lines: list[list[tuple[int, int, int, int]]]

    @classmethod
    def parse(cls, data: dict[str, Any], base: Path) -> SourceMap:
        root = data.get("sourceRoot") or ""
        sources = [str((base / root / s).resolve()) for s in data.get("sources", [])]
        lines: list[list[tuple[int, int, int, int]]] = []
        src = src_line = src_col = 0
        for text in str(data.get("mappings", "")).split(";"):
            col = 0
            row: list[tuple[int, int, int, int]] = []
            for segment in text.split(","):
                if not segment:
                    continue
                v = _vlq(segment)
                col += v[0]
                if len(v) >= 4:
                    src, src_line, src_col = src + v[1], src_line + v[2], src_col + v[3]
                    row.append((col, src, src_line, src_col))
            lines.append(row)
        return cls(sources, lines)

    @classmethod
    def load(cls, path: Path) -> SourceMap:
        return cls.parse(json.loads(path.read_text()), path.parent)

    def lookup(self, line: int, column: int) -> tuple[str, int, int] | None:
        """The source position of 1-based generated ``line``:``column``, 1-based; None when unmapped."""
        if not 1 <= line <= len(self.lines):
            return None
        best = None
        for seg in self.lines[line - 1]:
            if seg[0] <= column - 1:
                best = seg
            else:
                break
        if best is None:
            best = self.lines[line - 1][0] if self.lines[line - 1] else None
        if best is None:
            return None
        return self.sources[best[1]], best[2] + 1, best[3] + 1


def map_positions(text: str, plugin: str, sourcemap: SourceMap, root: Path) -> str:
    """``<plugin>/kernel.js:L:C`` in ``text`` replaced with the source file (relative to ``root``) and position."""
    def replace(m: re.Match[str]) -> str:
        found = sourcemap.lookup(int(m.group(1)), int(m.group(2)))
        if found is None:
            return m.group(0)
        source, line, column = found
        try:
            shown = os.path.relpath(source, root)
        except ValueError:
            shown = source
        return f"{shown}:{line}:{column}"

    return re.sub(re.escape(plugin) + r"/kernel\.js:(\d+):(\d+)", replace, text)


# ---- building ------------------------------------------------------------------------------------------------

@dataclass
class BuildError:
    file: str
    line: int
    column: int
    message: str
    excerpt: str  # esbuild's rendering: the source line and a caret

    def text(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}\n{self.excerpt}".rstrip()


class BuildFailed(KplugError):
    """The build did not produce a kernel.js; the server still runs the previous one."""

    def __init__(self, errors: list[BuildError], output: str) -> None:
        self.errors = errors
        self.output = output
        super().__init__(self.text())

    def text(self) -> str:
        if not self.errors:
            return f"build failed:\n{self.output.strip()}"
        return "build failed:\n" + "\n\n".join(e.text() for e in self.errors)

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31mBuildFailed\x1b[0m: {self.text()}"]


_ERROR_HEAD = re.compile(r"^\s*\S?\s*\[ERROR\]\s*(.*)$")
_LOCATION = re.compile(r"^\s+(\S.*?):(\d+):(\d+):\s*$")


def parse_esbuild_errors(output: str) -> list[BuildError]:
    """esbuild's plain-text error report: ``✘ [ERROR] message``, then ``file:line:col:`` and the excerpt."""
    errors: list[BuildError] = []
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        head = _ERROR_HEAD.match(lines[i])
        if head is None:
            i += 1
            continue
        message, i = head.group(1).strip(), i + 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        where = _LOCATION.match(lines[i]) if i < len(lines) else None
        if where is None:
            errors.append(BuildError("", 0, 0, message, ""))
            continue
        excerpt = []
        i += 1
        while i < len(lines) and lines[i].strip() and not _ERROR_HEAD.match(lines[i]):
            excerpt.append(lines[i])
            i += 1
        errors.append(BuildError(where.group(1), int(where.group(2)), int(where.group(3)), message,
                                 "\n".join(excerpt)))
    return errors


def _esbuild(args: list[str], cwd: Path, progress: Callable[[str], None] | None) -> subprocess.CompletedProcess[str]:
    tool = npm_tool(*ESBUILD, progress=progress)
    return subprocess.run([str(tool), *args, "--log-level=error", "--color=false"], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the new kernel.js and its map into ``out_dir`` (each replaced at once, the map first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    os.replace(tmp / "kernel.js.map", out_dir / "kernel.js.map")
    os.replace(tmp / "kernel.js", out_dir / "kernel.js")


def build_bundle(entry: Path, project: Path, out_dir: Path, progress: Callable[[str], None] | None = None) -> None:
    """Bundle ``entry`` and its imports (npm packages included) into ``out_dir/kernel.js`` + ``kernel.js.map``,
    as one classic script (an IIFE, ES2020); raises :class:`BuildFailed`."""
    with tempfile.TemporaryDirectory(prefix="kplug-build-", dir=out_dir.parent) as tmp:
        proc = _esbuild([str(entry.relative_to(project)), "--bundle", "--format=iife", "--platform=neutral",
                         "--main-fields=module,main", "--target=es2020", "--sourcemap", "--sources-content=false",
                         f"--outfile={Path(tmp) / 'kernel.js'}"], project, progress)
        if proc.returncode != 0:
            raise BuildFailed(parse_esbuild_errors(proc.stderr), proc.stderr)
        _publish(Path(tmp), out_dir)


def build_cell(source: str, name: str, src_dir: Path, out_dir: Path,
               progress: Callable[[str], None] | None = None) -> None:
    """A ``%%kplug plugin --ts`` cell: ``src_dir/<name>.ts`` compiled (types stripped, not bundled, so its top-level
    names stay globals for ``%%kplug eval``) to ``out_dir/kernel.js`` with a source map."""
    src_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (src_dir / f"{name}.ts").write_text(source)
    with tempfile.TemporaryDirectory(prefix="kplug-build-", dir=out_dir.parent) as tmp:
        proc = _esbuild([f"{name}.ts", "--target=es2020", "--sourcemap", "--sources-content=false",
                         f"--outfile={Path(tmp) / 'kernel.js'}"], src_dir, progress)
        if proc.returncode != 0:
            raise BuildFailed(parse_esbuild_errors(proc.stderr), proc.stderr)
        _publish(Path(tmp), out_dir)


# ---- a plugin project ----------------------------------------------------------------------------------------

@dataclass
class BuildRecord:
    ok: bool
    seconds: float
    errors: list[BuildError] = field(default_factory=list)
    output: str = ""
    state: str | None = None  # the plugin's state after the reload


class DevProject:
    """A plugin project under development: ``plugin.json`` and an entry (``src/kernel.ts``, ...), with or without
    its own ``package.json``. The built plugin folder is ``PATH/.kplug-dev/<name>`` (the server loads it)."""

    def __init__(self, client: Client, path: Path, *, progress: Callable[[str], None] | None = None) -> None:
        self.path = path.resolve()
        manifest = self.path / "plugin.json"
        if not manifest.is_file():
            raise KplugError(f"%kplug dev: {self.path} has no plugin.json: a plugin project has plugin.json and "
                             f"one of {', '.join(ENTRIES)}")
        try:
            self.manifest = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise KplugError(f"%kplug dev: {manifest} is not valid JSON: {exc}") from None
        self.name = str(self.manifest.get("name") or self.path.name)
        self.package = self._package()
        entry = next((self.path / e for e in ENTRIES if (self.path / e).is_file()), None)
        script = (self.package.get("kplug") or {}).get("build") if self.package else None
        if entry is None and script is None:
            raise KplugError(f"%kplug dev: no kernel entry in {self.path}: expected one of {', '.join(ENTRIES)} "
                             '(or "kplug": {"build": SCRIPT, "out": FILE} in package.json)')
        self.entry = entry
        self.script = script
        self.out_dir = self.path / ".kplug-dev" / self.name
        self.progress = progress
        self.client = Client(client.url, client.endpoint.token, timeout=client.timeout, history=CallHistory(1))
        self.builds: list[BuildRecord] = []
        self.sourcemap: SourceMap | None = None
        self.loaded = False
        self.listeners: list[Callable[[BuildRecord], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _package(self) -> dict[str, Any]:
        file = self.path / "package.json"
        if not file.is_file():
            return {}
        try:
            return dict(json.loads(file.read_text()))
        except (json.JSONDecodeError, TypeError, ValueError):
            return {}

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def install_dependencies(self) -> None:
        """``npm install`` in the project when it declares dependencies and has no node_modules yet."""
        deps = {**(self.package.get("dependencies") or {}), **(self.package.get("devDependencies") or {})}
        if not deps or (self.path / "node_modules").is_dir():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise KplugError(f"%kplug dev: {self.path}/package.json has dependencies and npm is not installed")
        self._say(f"npm install in {self.path} ({len(deps)} dependencies) ...")
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=self.path,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise KplugError(f"%kplug dev: npm install failed in {self.path}: {proc.stderr.strip()[-2000:]}")

    def _build(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.script is not None:  # the project's own build, as its package.json says
            npm = shutil.which("npm") or "npm"
            proc = subprocess.run([npm, "run", "--silent", str(self.script)], cwd=self.path, capture_output=True,
                                  text=True, timeout=600)
            if proc.returncode != 0:
                raise BuildFailed(parse_esbuild_errors(proc.stderr + proc.stdout), proc.stderr + proc.stdout)
            out = self.path / str((self.package.get("kplug") or {}).get("out", "kernel.js"))
            shutil.copyfile(out, self.out_dir / "kernel.js")
            if out.with_name(out.name + ".map").is_file():
                shutil.copyfile(out.with_name(out.name + ".map"), self.out_dir / "kernel.js.map")
        else:
            assert self.entry is not None
            build_bundle(self.entry, self.path, self.out_dir, self._say)
        manifest = dict(self.manifest, name=self.name)
        (self.out_dir / "plugin.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for extra in ("i18n", "icon.png", "README.md"):
            src = self.path / extra
            if src.is_dir():
                shutil.copytree(src, self.out_dir / extra, dirs_exist_ok=True)
            elif src.is_file():
                shutil.copyfile(src, self.out_dir / extra)

    def build_and_load(self) -> BuildRecord:
        """Build; on success load (first time) or reload the plugin. A failed build leaves the server as it is."""
        with self._lock:
            started = time.perf_counter()
            try:
                self._build()
            except BuildFailed as exc:
                record = BuildRecord(False, time.perf_counter() - started, exc.errors, exc.output)
            else:
                map_file = self.out_dir / "kernel.js.map"
                self.sourcemap = SourceMap.load(map_file) if map_file.is_file() else None
                status = self.client.load(str(self.out_dir)) if not self.loaded else self.client.reload(self.name)
                self.loaded = True
                record = BuildRecord(True, time.perf_counter() - started, state=status.state)
            self.builds.append(record)
        for listener in list(self.listeners):
            listener(record)
        return record

    def map(self, text: str) -> str:
        return map_positions(text, self.name, self.sourcemap, self.path) if self.sourcemap else text

    # ---- watching ----------------------------------------------------------------------------------------------

    def _relevant(self, _change: Any, path: str) -> bool:
        p = Path(path)
        try:
            parts = p.relative_to(self.path).parts
        except ValueError:
            return False
        return not (_SKIP_PARTS & set(parts)) and not any(x.startswith(".") for x in parts) \
            and p.suffix in _SOURCE_SUFFIXES

    def watch(self) -> None:
        """Rebuild and reload on every saved change, on a background thread, until :meth:`stop`."""
        if self._thread is not None:
            return
        ready = threading.Event()

        def run() -> None:
            from watchfiles import watch

            ready.set()
            for _changes in watch(self.path, watch_filter=self._relevant, stop_event=self._stop, debounce=200,
                                  step=50, rust_timeout=500, yield_on_timeout=False, raise_interrupt=False):
                if self._stop.is_set():
                    return
                try:
                    self.build_and_load()
                except KplugError as exc:  # the server refused the load: shown like a build failure
                    record = BuildRecord(False, 0.0, [], f"{type(exc).__name__}: {exc}")
                    self.builds.append(record)
                    for listener in list(self.listeners):
                        listener(record)

        self._thread = threading.Thread(target=run, daemon=True, name=f"kplug-dev-{self.name}")
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.client.close()


# ---- the notebook view ---------------------------------------------------------------------------------------

def record_text(project: DevProject, record: BuildRecord) -> str:
    when = time.strftime("%H:%M:%S")
    if record.ok:
        return (f"{when} built {project.name} from {project.path} in {record.seconds * 1000:.0f} ms: "
                f"{'loaded' if len(project.builds) == 1 else 'reloaded'} ({record.state})")
    body = "\n\n".join(e.text() for e in record.errors) or record.output.strip()
    return f"{when} build of {project.name} failed; the running copy keeps running:\n{body}"


class DevView:
    """What ``%kplug dev`` shows: the last build's outcome, updated in place on each rebuild."""

    def __init__(self, project: DevProject) -> None:
        import ipywidgets as widgets

        self.project = project
        self.html = widgets.HTML()
        self.widget = widgets.VBox([self.html])
        self._last = ""
        project.listeners.append(self._on_build)
        if project.builds:
            self._on_build(project.builds[-1])

    def _on_build(self, record: BuildRecord) -> None:
        self._last = record_text(self.project, record)
        colour = "#080" if record.ok else "#b00"
        self.html.value = f'<pre style="color:{colour};white-space:pre-wrap">{html.escape(self._last)}</pre>'

    def text(self) -> str:
        watching = "watching for changes" if self.project._thread is not None else "not watching"
        return f"{self._last}\n({watching}; %kplug dev --stop ends it)"

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = self.text()
        return bundle
