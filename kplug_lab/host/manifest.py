"""Finding plugins: SiYuan workspaces and plain plugin folders, manifests, enablement, i18n (spec §1)."""

from __future__ import annotations

import json
import os
import platform as _platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ManifestError

__all__ = [
    "PluginSource",
    "discover",
    "discover_directory",
    "discover_workspace",
    "platform_id",
    "read_petals",
    "read_plugin",
    "write_petals",
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

    def read_code(self) -> str:
        try:
            return self.kernel_js.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{self.kernel_js}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise ManifestError(f"{self.kernel_js}: cannot be read: {exc.strerror}") from None


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
        value = json.loads((folder / chosen).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warnings.append(f"{folder / chosen}: invalid JSON ({exc}); i18n is empty")
        return {}
    if not isinstance(value, dict):
        warnings.append(f"{folder / chosen}: must hold a JSON object; i18n is empty")
        return {}
    return value


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing (every plugin folder needs a plugin.json)") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path}: must hold a JSON object, got {type(manifest).__name__}")
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


def write_petals(workspace: Path, petals: list[dict[str, Any]]) -> None:
    """Write petals.json atomically, tab-indented as SiYuan does."""
    path = petals_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(petals, f, indent="\t", ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def discover_workspace(workspace: Path, *, lang: str = "en", platform: str | None = None,
                       ) -> tuple[list[PluginSource], list[ManifestError]]:
    """Plugins of a SiYuan workspace (``<ws>/data/plugins``), enablement from petals.json.

    A broken plugin is reported in the error list and never stops the others.
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
    known = {s.name for s in sources} | {e_name for e_name in _names_with_manifest(plugins_dir)}
    kept = [p for p in petals if p["name"] in known]
    if kept != petals or not petals_path(workspace).exists():
        try:
            write_petals(workspace, kept)
        except OSError as exc:
            errors.append(ManifestError(f"{petals_path(workspace)}: cannot be written: {exc.strerror}"))
    return sources, errors


def _names_with_manifest(plugins_dir: Path) -> list[str]:
    if not plugins_dir.is_dir():
        return []
    return [d.name for d in plugins_dir.iterdir() if (d / "plugin.json").is_file()]


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
