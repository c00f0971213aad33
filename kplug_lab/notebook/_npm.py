"""npm tools the workbench needs (esbuild to bundle a plugin project, typescript to type-check one), installed on
first use into a cache folder kplug_lab owns, one folder per package and version, with the system's ``npm``.

Not a dependency resolver: one pinned package per folder, installed once, then only its ``node_modules/.bin`` entry
is used. ``KPLUG_LAB_NPM_CACHE`` overrides the folder (tests point it at a shared one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import KplugError

__all__ = ["ESBUILD", "TYPESCRIPT", "NpmUnavailable", "cache_dir", "npm_tool"]

#: the pinned versions: a new one is a decision (and a new cache folder)
ESBUILD = ("esbuild", "0.28.2", "esbuild")
TYPESCRIPT = ("typescript", "5.9.3", "tsc")

_lock = threading.Lock()


class NpmUnavailable(KplugError, RuntimeError):
    """npm is not installed, or the package could not be installed (the message says which and what to do)."""


def cache_dir() -> Path:
    configured = os.environ.get("KPLUG_LAB_NPM_CACHE")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("kplug_lab")) / "npm"


def npm_tool(package: str, version: str, binary: str, *, progress: Callable[[str], None] | None = None) -> Path:
    """The path of ``binary`` from ``package@version``, installing it first if this cache lacks it. ``progress``
    is told what happens (it is printed in the notebook)."""
    folder = cache_dir() / f"{package}-{version}"
    tool = folder / "node_modules" / ".bin" / binary
    with _lock:
        if tool.exists():
            return tool
        npm = shutil.which("npm")
        if npm is None:
            raise NpmUnavailable(f"{package} comes from npm, and npm is not installed on this machine: install Node.js "
                                 "(on Debian: apt-get install nodejs npm), then run this again")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"name": "kplug-lab-tool", "private": true}\n')
        say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
        say(f"installing {package}@{version} from npm into {folder} (once) ...")
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"{package}@{version}"],
                              cwd=folder, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not tool.exists():
            raise NpmUnavailable(f"npm install {package}@{version} failed in {folder}: "
                                 f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        say(f"installed {package}@{version}")
        return tool
