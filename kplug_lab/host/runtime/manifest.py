"""Finding plugins: SiYuan workspaces and plain plugin folders, manifests, enablement, i18n (spec §1)."""

from __future__ import annotations

import hashlib
import json
import os
import platform as _platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ManifestError

__all__ = [
    "PluginSource",
    "discover",
    "discover_directory",
    "discover_workspace",
    "platform_id",
    "read_petals",
    "read_plugin",
]


@dataclass
class PluginSource:
    """Everything the host needs to start one plugin, read from its folder."""

    name: str
    directory: Path
    storage_dir: Path
    manifest: dict[str, Any]
    kernel_js: Path
    version: str = ""
    display_name: str = ""
    i18n: dict[str, Any] | None = None
    enabled: bool = True
    compatible: bool = True
    warnings: list[str] = field(default_factory=list)
    #: SHA-256 (hex) of the kernel.js bytes :meth:`read_code` last read (hot reload compares it)
    code_sha256: str = ""

    def read_code(self) -> str:
        """kernel.js as text. Bytes that are not UTF-8 (a GBK or Latin-1 file) become U+FFFD, as goja decodes
        them in SiYuan, and a warning naming the first one is added to ``warnings``."""
        try:
            with self.kernel_js.open("rb") as f:
                data = f.read(MAX_KERNEL_JS_BYTES + 1)
        except OSError as exc:
            raise ManifestError(f"{self.kernel_js}: cannot be read: {exc.strerror}") from None
        if len(data) > MAX_KERNEL_JS_BYTES:
            raise ManifestError(f"{self.kernel_js}: larger than {MAX_KERNEL_JS_BYTES // (1024 * 1024)} MiB; "
                                "a kernel.js that big would not fit the plugin's memory limit anyway")
        self.code_sha256 = hashlib.sha256(data).hexdigest()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.warnings.append(f"{self.kernel_js}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                 "invalid bytes read as U+FFFD, save the file as UTF-8")
            return data.decode("utf-8", errors="replace")


def platform_id() -> str:
    """SiYuan's platform id (§1.2): the container name where one is set, else the OS."""
    container = os.environ.get("SIYUAN_CONTAINER", "").strip()
    if container and container != "std":
        return container
    system = _platform.system().lower()
    return {"windows": "windows", "darwin": "darwin"}.get(system, "linux")


def _legacy(lang: str) -> str:
    return lang.replace("-", "_")


def _display_name(manifest: dict[str, Any], lang: str) -> str:
    names = manifest.get("displayName")
    if isinstance(names, dict):
        for key in (lang, _legacy(lang), "default", "en", "en_US"):
            value = names.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    name = manifest.get("name")
    return name if isinstance(name, str) else ""


def _select_i18n(directory: Path, lang: str, warnings: list[str]) -> dict[str, Any] | None:
    folder = directory / "i18n"
    if not folder.is_dir():
        return None
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix == ".json")
    if not files:
        return None
    chosen = None
    seen: set[str] = set()
    for candidate in (f"{lang}.json", f"{_legacy(lang)}.json", "en.json", "en_US.json", "zh-CN.json", "zh_CN.json"):
        if candidate in seen:
            continue
        seen.add(candidate)
        if candidate in files:
            chosen = candidate
            break
    chosen = chosen or files[0]
    try:
        value = _read_json_file(folder / chosen, MAX_I18N_BYTES)
    except OSError as exc:
        warnings.append(f"{folder / chosen}: cannot be read ({exc.strerror}); i18n is empty")
        return {}
    except ManifestError as exc:
        warnings.append(f"{exc}; i18n is empty")
        return {}
    if not isinstance(value, dict):
        warnings.append(f"{folder / chosen}: must hold a JSON object; i18n is empty")
        return {}
    return value


#: plugin.json files in the wild are a few KiB; anything this large is a mistake or an attack on the host
MAX_MANIFEST_BYTES = 1024 * 1024
#: the largest i18n file read into ``siyuan.plugin.i18n``
MAX_I18N_BYTES = 8 * 1024 * 1024
#: the largest kernel.js read (bundled real-world ones are a few hundred KiB)
MAX_KERNEL_JS_BYTES = 16 * 1024 * 1024
_COMMENT_LINE = re.compile(r"^\s*(//|/\*)", re.MULTILINE)
_JSON_TYPE = {"NoneType": "null", "list": "an array", "str": "a string", "int": "a number", "float": "a number",
              "bool": "a boolean"}


def _read_json_file(path: Path, limit: int) -> Any:
    """Parse a small JSON file written by hand: a UTF-8 BOM (Windows editors add one) is accepted; size and
    nesting are bounded so a hostile file gives a clear error instead of exhausting the host."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ManifestError(f"{path}: larger than {limit // 1024} KiB; not read")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    if not text.strip():
        raise ManifestError(f"{path}: is empty; it must hold a JSON object")
    try:
        return json.loads(text)
    except RecursionError:
        raise ManifestError(f"{path}: invalid JSON: nested too deeply") from None
    except ValueError as exc:
        hint = " (JSON allows no comments)" if _COMMENT_LINE.search(text) else ""
        raise ManifestError(f"{path}: invalid JSON: {exc}{hint}") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = _read_json_file(path, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing (every plugin folder needs a plugin.json)") from None
    except IsADirectoryError:
        raise ManifestError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read: {exc.strerror}") from None
    if not isinstance(manifest, dict):
        got = _JSON_TYPE.get(type(manifest).__name__, type(manifest).__name__)
        raise ManifestError(f"{path}: must hold a JSON object, got {got}")
    return manifest


def _check_kernels(path: Path, manifest: dict[str, Any], platform: str) -> bool:
    """True when the kernel part may run here; raises for a malformed field."""
    kernels = manifest.get("kernels")
    if kernels is None:
        return False
    if not isinstance(kernels, list) or not all(isinstance(k, str) for k in kernels):
        raise ManifestError(
            f'{path}: "kernels" must be a list of platform names such as ["all"], got {json.dumps(kernels)}'
        )
    return bool(kernels) and ("all" in kernels or platform in kernels)


def read_plugin(directory: Path, storage_dir: Path, *, lang: str = "en", platform: str | None = None,
                require_index_js: bool = False) -> PluginSource:
    """Read one plugin folder. Raises :class:`ManifestError` naming the file and field at fault."""
    directory = Path(directory)
    platform = platform or platform_id()
    manifest_path = directory / "plugin.json"
    manifest = _read_manifest(manifest_path)
    name = directory.name
    declared = manifest.get("name")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError(f'{manifest_path}: "name" must be a string, got {json.dumps(declared)}')
    version = manifest.get("version", "")
    if not isinstance(version, str):
        raise ManifestError(f'{manifest_path}: "version" must be a string, got {json.dumps(version)}')
    compatible = _check_kernels(manifest_path, manifest, platform)
    kernel_js = directory / "kernel.js"
    if kernel_js.is_dir():
        raise ManifestError(f"{kernel_js}: is a directory; the kernel part of a plugin must be a file kernel.js")
    if not kernel_js.is_file():
        raise ManifestError(f"{directory}: no kernel.js (the kernel part of a plugin lives in kernel.js)")
    if require_index_js and not (directory / "index.js").is_file():
        raise ManifestError(f"{directory}: no index.js (SiYuan loads kernel.js only beside an index.js)")
    warnings: list[str] = []
    if declared and declared != name:
        warnings.append(f'{manifest_path}: "name" is {declared!r} but the folder is {name!r}; the folder wins')
    return PluginSource(
        name=name,
        directory=directory,
        storage_dir=Path(storage_dir),
        manifest=manifest,
        kernel_js=kernel_js,
        version=version,
        display_name=_display_name(manifest, lang),
        i18n=_select_i18n(directory, lang, warnings),
        compatible=compatible,
        warnings=warnings,
    )


def petals_path(workspace: Path) -> Path:
    return workspace / "data" / "storage" / "petal" / "petals.json"


def read_petals(workspace: Path) -> list[dict[str, Any]]:
    path = petals_path(workspace)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: invalid JSON: {exc}") from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(f"{path}: must hold a JSON array of {{name, enabled}} objects")
    return [p for p in value if isinstance(p, dict) and isinstance(p.get("name"), str)]


def discover_workspace(workspace: Path, *, lang: str = "en", platform: str | None = None,
                       ) -> tuple[list[PluginSource], list[ManifestError]]:
    """Plugins of a SiYuan workspace (``<ws>/data/plugins``), enablement from petals.json.

    petals.json is SiYuan's file: it is read, never written (SiYuan creates it, purges entries without a
    ``plugin.json`` and rewrites it; kplug_lab only ignores such entries). A broken plugin is reported in the
    error list and never stops the others.
    """
    workspace = Path(workspace)
    plugins_dir = workspace / "data" / "plugins"
    storage_root = workspace / "data" / "storage" / "petal"
    errors: list[ManifestError] = []
    try:
        petals = read_petals(workspace)
    except ManifestError as exc:
        errors.append(exc)
        petals = []
    enabled = {p["name"]: bool(p.get("enabled")) for p in petals}
    sources = []
    for directory in sorted(plugins_dir.iterdir()) if plugins_dir.is_dir() else []:
        if not directory.is_dir() or directory.name.startswith("."):
            continue
        try:
            src = read_plugin(directory, storage_root / directory.name, lang=lang, platform=platform)
        except ManifestError as exc:
            errors.append(exc)
            continue
        src.enabled = enabled.get(src.name, False)
        sources.append(src)
    return sources, errors


def discover_directory(plugins_dir: Path, data_dir: Path, *, lang: str = "en", platform: str | None = None,
                       ) -> tuple[list[PluginSource], list[ManifestError]]:
    """Plugins of a plain folder: each subfolder with ``plugin.json`` and ``kernel.js`` is enabled; storage
    lives in ``<data_dir>/storage/<name>``."""
    plugins_dir = Path(plugins_dir)
    errors: list[ManifestError] = []
    sources = []
    if not plugins_dir.is_dir():
        return [], [ManifestError(f"{plugins_dir}: not a directory")]
    for directory in sorted(plugins_dir.iterdir()):
        if not directory.is_dir() or directory.name.startswith((".", "_")):
            continue
        if not (directory / "plugin.json").exists() and not (directory / "kernel.js").exists():
            continue
        try:
            sources.append(read_plugin(directory, Path(data_dir) / "storage" / directory.name, lang=lang,
                                       platform=platform))
        except ManifestError as exc:
            errors.append(exc)
    return sources, errors


def discover(*, workspace: Path | None = None, plugins_dir: Path | None = None, data_dir: Path | None = None,
             lang: str = "en") -> tuple[list[PluginSource], list[ManifestError]]:
    if workspace is not None:
        return discover_workspace(workspace, lang=lang)
    if plugins_dir is None:
        return [], []
    return discover_directory(plugins_dir, data_dir or plugins_dir.parent / ".kplug-data", lang=lang)
