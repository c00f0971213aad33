"""Where kplug_lab keeps its own files, and the one-time move out of SiYuan's synced tree.

SiYuan syncs and snapshots ``<workspace>/data/`` only; ``conf/``, ``temp/``, ``history/`` and ``repo/`` stay on
the device. A live SQLite database (the durable store and its write-ahead log) copied while it is written can
arrive torn on another device, and two devices would overwrite each other's copy, which is why SiYuan keeps
its own databases in ``temp/``. kplug_lab does the same: its state (durable store, ``host.json``, the
generated token) lives in ``<workspace>/temp/kplug/`` (:data:`WORKSPACE_DATA`). It moves with the workspace on
this device and is never synced. Only plugin storage (``data/storage/petal/<name>/``) stays in ``data/``, where
SiYuan keeps it.

Earlier versions kept the store in ``<workspace>/data/storage/kplug/`` (:data:`LEGACY_WORKSPACE_DATA`).
:func:`migrate_legacy_store` moves it once; the caller must own the workspace (hold its
:class:`~kplug_lab.durable.lock.HostLock`), so no host has the old store open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

__all__ = ["CHOICES_FILE", "LEGACY_WORKSPACE_DATA", "STORE_FILE", "TOKEN_FILE", "WORKSPACE_DATA", "default_data_dir",
           "legacy_data_dir", "migrate_legacy_store", "persistent_token", "read_enablement_choices"]

log = logging.getLogger("kplug_lab.durable")

#: kplug_lab's own folder inside a SiYuan workspace: beside SiYuan's databases, outside the synced ``data/``
WORKSPACE_DATA = Path("temp") / "kplug"
#: where kplug_lab kept its state before: inside ``data/``, so synced (migrated by :func:`migrate_legacy_store`)
LEGACY_WORKSPACE_DATA = Path("data") / "storage" / "kplug"
#: the durable store's file name; SQLite adds ``-wal`` and ``-shm`` beside it
STORE_FILE = "durable.sqlite3"
#: kplug_lab's own enablement choices, ``{"enabled": {"<plugin>": true|false}}``: they win over SiYuan's
#: ``petals.json`` for this host only (so a plugin switched off in SiYuan can run sandboxed here)
CHOICES_FILE = "plugins.json"
#: the generated admin token of ``kplug serve`` (mode 0600), reused on every restart
TOKEN_FILE = "token"
#: moved before the main file, so an interrupted move is finished by the next start (see the function)
_SIDECARS = (STORE_FILE + "-wal", STORE_FILE + "-shm")


def default_data_dir(*, workspace: Path | None = None, plugins_dir: Path | None = None) -> Path:
    """kplug_lab's own folder: ``<workspace>/temp/kplug`` for a SiYuan workspace, else ``.kplug-data`` beside
    a plain plugins folder."""
    if workspace is not None:
        return Path(workspace) / WORKSPACE_DATA
    return (Path(plugins_dir) if plugins_dir is not None else Path(".")).resolve().parent / ".kplug-data"


def legacy_data_dir(workspace: Path) -> Path:
    return Path(workspace) / LEGACY_WORKSPACE_DATA


def migrate_legacy_store(old: Path, new: Path) -> bool:
    """Move the durable store (the database, its WAL and shared-memory files) from ``old`` to ``new``, once.

    True when a store was moved. Nothing happens when ``old`` holds no store, or when ``new`` already holds one
    (then both are kept, with a warning: merging two stores is the user's call). The side files move first and
    the database last, so a move cut short (power loss) leaves either the whole store in ``old`` or the database
    still there with its WAL already in ``new``: the next call finishes it. The WAL is never separated from its
    database by a successful call. A stale ``host.json`` and the compiled-code cache (``bytecode/``) left by an
    old host are dropped, and ``old`` is removed when empty. Call only while holding the workspace's host lock.
    """
    old, new = Path(old), Path(new)
    if old.resolve() == new.resolve() or not (old / STORE_FILE).is_file():
        return False
    if (new / STORE_FILE).exists():
        log.warning("two durable stores: %s (from an earlier kplug_lab, in SiYuan's synced data/) and %s; "
                    "using %s and leaving the old one untouched", old / STORE_FILE, new / STORE_FILE, new)
        return False
    new.mkdir(parents=True, exist_ok=True)
    for name in (*_SIDECARS, STORE_FILE):
        if (old / name).exists():
            _move(old / name, new / name)
    with contextlib.suppress(OSError):
        (old / "host.json").unlink()
    # the compiled-code cache an old host kept beside its store: a cache, rebuilt on demand in the new place
    shutil.rmtree(old / "bytecode", ignore_errors=True)
    with contextlib.suppress(OSError):
        old.rmdir()
    log.warning("moved the durable store out of SiYuan's synced tree: %s -> %s", old, new)
    return True


def persistent_token(data_dir: Path) -> str:
    """The admin token kept in ``<data_dir>/token``, created (48 hex digits, mode 0600, readable by this user
    only) on first use, so a restarted server keeps the token its clients were configured with.

    Two hosts starting at once agree on one token: the file is written beside and linked into place, which
    fails when the other was first; then that one's token is read.
    """
    import secrets

    path = Path(data_dir) / TOKEN_FILE
    existing = _read_token(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        token = _read_token(path) or token
    except OSError:  # a file system without hard links
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return token


def read_enablement_choices(data_dir: Path) -> dict[str, bool]:
    """The ``enabled`` map of ``<data_dir>/plugins.json`` (kplug_lab's own file; SiYuan's ``petals.json`` is
    never written). Missing file: no choices. ValueError says what is wrong with a file that is there."""
    path = Path(data_dir) / CHOICES_FILE
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON: {exc}") from None
    enabled = value.get("enabled") if isinstance(value, dict) else None
    if not isinstance(enabled, dict) or not all(isinstance(v, bool) for v in enabled.values()):
        raise ValueError(f'{path}: must be {{"enabled": {{"<plugin name>": true or false, ...}}}}')
    return dict(enabled)


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError:  # another file system (temp/ mounted elsewhere): copy, make it durable, then drop the source
        tmp = dst.with_name(f".{dst.name}.moving")
        shutil.copy2(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
        src.unlink()

