"""Build the wasm guest (``kplug.wasm``): the project's C shim over QuickJS-NG, for wasm32-wasi.

No system compiler is needed: ``ziglang`` from PyPI compiles. The QuickJS-NG sources are not in the
repository: they come from the pinned PyPI sdist ``quickjs-ng==0.17.0.2``, checked against its sha256.

Run ``python -m kplug_lab.sandbox.guest.build [--force] [--out PATH]``. The hatch build hook calls
:func:`build` for wheels and editable installs. A stamp beside the output records the hash of every input,
so an unchanged tree does not rebuild. The build is reproducible: ``make reproducible`` builds twice from
scratch and compares the sha256 of both outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = ["GUEST_DIR", "QUICKJS_SDIST", "WASM_PATH", "build", "inputs_digest"]

GUEST_DIR = Path(__file__).resolve().parent
WASM_PATH = GUEST_DIR / "kplug.wasm"
SHIM = GUEST_DIR / "kplug.c"

QUICKJS_VERSION = "0.17.0.2"
QUICKJS_SDIST = f"quickjs_ng-{QUICKJS_VERSION}.tar.gz"
QUICKJS_SHA256 = "43d2e48272208721a7aaea8e3f02d4b9318f12ef20cc4f5421b59d9a470706ef"
QUICKJS_UNITS = ["libregexp.c", "libunicode.c", "dtoa.c"]  # quickjs.c is #included by the shim

# The C stack of the guest (QuickJS frames live there). QuickJS's own limit is set lower at runtime
# so deep recursion ends in a clean RangeError before this is exhausted.
C_STACK_SIZE = 4 * 1024 * 1024

CFLAGS = [
    "-target", "wasm32-wasi",
    "-O2",
    "-mexec-model=reactor",
    "-s",
    "-D_GNU_SOURCE",
    "-DNDEBUG",
    "-DCONFIG_VERSION=\"0.17.0\"",
    "-fno-sanitize=undefined",
    "-Wno-everything",
    f"-Wl,-z,stack-size={C_STACK_SIZE}",
]


def _log(msg: str) -> None:
    print(f"[kplug guest] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where the verified sdist is kept between builds (never inside the repository's tracked files)."""
    env = os.environ.get("KPLUG_BUILD_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kplug_lab" / "build"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_sdist() -> Path:
    """Return the path of the verified QuickJS-NG sdist, downloading it from PyPI when needed."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / QUICKJS_SDIST
    if target.exists() and _sha256(target) == QUICKJS_SHA256:
        return target
    _log(f"downloading quickjs-ng=={QUICKJS_VERSION} sdist from PyPI")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", tmp, f"quickjs-ng=={QUICKJS_VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / QUICKJS_SDIST
        if proc.returncode != 0 or not got.exists():
            raise RuntimeError(f"could not download quickjs-ng=={QUICKJS_VERSION}: {proc.stderr.strip()}")
        digest = _sha256(got)
        if digest != QUICKJS_SHA256:
            raise RuntimeError(f"{QUICKJS_SDIST}: sha256 {digest} does not match the pinned {QUICKJS_SHA256}")
        shutil.copyfile(got, target)
    return target


def _extract(sdist: Path, dest: Path) -> Path:
    prefix = f"quickjs_ng-{QUICKJS_VERSION}/upstream-quickjs/"
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(prefix) and "/" not in member.name[len(prefix):]:
                member.name = member.name[len(prefix):]
                tar.extract(member, dest, filter="data")
    return dest


# QuickJS reports "out of memory" by throwing `null` when it cannot even allocate the error object, which
# looks like a script's own `throw null`. One counted line in JS_ThrowOutOfMemory lets the shim tell the
# two apart. The patch must apply exactly once, so a changed upstream fails the build instead of drifting.
_OOM_ANCHOR = "        rt->in_out_of_memory = true;\n"
_OOM_PATCH = _OOM_ANCHOR + "        kp_oom_hits++;\n"


# JSON.parse reads numbers with libc's strtod. wasi-libc's (musl's) strtod computes in `long double`, which on
# wasm32 is a 128-bit float done in software: numbers made JSON.parse many times slower than native
# (docs/adr/0008-big-bundles-many-plugins.md). QuickJS-NG's own js_atod (dtoa.c, which the script parser uses
# for numeric literals) reads the same decimal syntax, sign included, and rounds correctly as strtod does.
_STRTOD_ANCHOR = "    s->token.u.num.val = js_float64(strtod((const char *)p_start, NULL));\n"
_STRTOD_PATCH = ("    { JSATODTempMem atod_mem;\n"
                 "      s->token.u.num.val = js_float64(js_atod((const char *)p_start, NULL, 10, 0, &atod_mem)); }\n")

_PATCHES = [("out-of-memory", _OOM_ANCHOR, _OOM_PATCH), ("JSON number", _STRTOD_ANCHOR, _STRTOD_PATCH)]


def _patch(src: Path) -> None:
    path = src / "quickjs.c"
    text = path.read_text()
    for what, anchor, patch in _PATCHES:
        if text.count(anchor) != 1:
            raise RuntimeError(f"quickjs.c: the {what} anchor was not found exactly once; update build.py")
        text = text.replace(anchor, patch)
    path.write_text(text)


def inputs_digest() -> str:
    h = hashlib.sha256()
    h.update(SHIM.read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(QUICKJS_SHA256.encode())
    return h.hexdigest()


def _stamp(out: Path) -> Path:
    return out.with_name(out.name + ".stamp")


def build(out: Path = WASM_PATH, force: bool = False) -> Path:
    """Build ``kplug.wasm`` at ``out`` unless it is up to date. Returns the output path."""
    digest = inputs_digest()
    stamp = _stamp(out)
    if not force and out.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return out
    sdist = fetch_sdist()
    with tempfile.TemporaryDirectory(prefix="kplug-guest-") as tmp:
        src = _extract(sdist, Path(tmp) / "quickjs")
        _patch(src)
        shim = src / "kplug.c"
        shutil.copyfile(SHIM, shim)
        result = Path(tmp) / "kplug.wasm"
        cmd = [sys.executable, "-m", "ziglang", "cc", *CFLAGS, "-I", ".", "-o", str(result),
               "kplug.c", *QUICKJS_UNITS]
        _log("compiling QuickJS-NG and the shim to wasm32-wasi (about a minute)")
        # Relative paths and a fixed working directory keep the output byte-for-byte reproducible.
        env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=str(Path(tmp) / "zig-cache"),
                   ZIG_LOCAL_CACHE_DIR=str(Path(tmp) / "zig-cache"))
        proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"guest compilation failed:\n{proc.stderr[-4000:]}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".tmp")
        shutil.copyfile(result, tmp_out)
        os.replace(tmp_out, out)
    stamp.write_text(digest + "\n")
    _log(f"built {out} ({out.stat().st_size // 1024} KiB, sha256 {_sha256(out)[:16]}...)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the stamp says up to date")
    parser.add_argument("--out", type=Path, default=WASM_PATH)
    parser.add_argument("--sha256", action="store_true", help="print the sha256 of the output")
    args = parser.parse_args(argv)
    out = build(args.out, force=args.force)
    if args.sha256:
        print(_sha256(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
