"""The compiled-code cache: a script's QuickJS bytecode on disk, so unchanged code is not parsed again.

An entry is keyed by the sha256 of (engine build, file name, source): another guest build, another name (which
stack traces show) or one changed byte is another entry, so a changed script compiles once and an unchanged one
never again. The folder keeps the :data:`VERSIONS_KEPT` most recently used entries of each file name (a
plugin's kernel.js rebuilt a hundred times in development leaves two entries, not a hundred).

Bytecode is code, and QuickJS's ``JS_ReadObject`` trusts it completely (crafted bytes corrupt the VM). So:

* the cache lives in a folder of the host's private data, created ``0700``; it is used only while that folder is
  a real directory owned by this user that no one else may enter;
* an entry is read only if it is a regular file (not followed through a symlink) owned by this user with no
  permission for anyone else (checked on the open descriptor), and written atomically (``0600``, then renamed);
* every entry carries an HMAC-SHA256 over its key and bytes, with a per-host secret kept ``0600`` beside the
  entries (``key``): a tampered, truncated or foreign entry fails the check and is compiled again (and
  rewritten), never evaluated.

A cache that cannot be used (a folder owned by someone else, a read-only disk) costs compile time only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

from ..errors import OutOfMemory
from ._engine import engine_build
from ._vm import VM

__all__ = ["BytecodeCache"]

log = logging.getLogger("kplug_lab.sandbox")

_MAGIC = b"KPLUGBC1"
_TAG = 32  # HMAC-SHA256
_SECRET = "key"
_SECRET_BYTES = 32
_SUFFIX = ".qbc"
_MAX_ENTRY = 512 * 1024 * 1024  # no sane script compiles to more; a larger file is not read at all
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: entries kept per file name: the newest and the one before (switching between two versions stays cached)
VERSIONS_KEPT = 2


def _name_tag(filename: str) -> str:
    return hashlib.sha256(filename.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _private(st: os.stat_result) -> bool:
    """Owned by this user, and no permission at all for group or others."""
    uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
    return st.st_uid == uid and not (st.st_mode & 0o077)


class BytecodeCache:
    """Compiled scripts in ``directory`` (created ``0700`` when missing). Thread-safe; share one per folder
    (:meth:`for_directory`).

    ``hits``, ``misses`` and ``rejected`` (entries that failed the ownership, mode or integrity checks) count
    what :meth:`eval` did, for tests and the benchmark.
    """

    _shared: dict[Path, BytecodeCache] = {}
    _shared_lock = threading.Lock()

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        self._lock = threading.Lock()
        self._secret: bytes | None = None
        self._usable: bool | None = None  # None: not checked yet

    @classmethod
    def for_directory(cls, directory: Path) -> BytecodeCache:
        """The process-wide cache of ``directory``."""
        key = Path(os.path.abspath(directory))
        with cls._shared_lock:
            cache = cls._shared.get(key)
            if cache is None:
                cache = cls._shared[key] = cls(key)
            return cache

    # ---- the one operation ------------------------------------------------------------------------------

    def eval(self, vm: VM, code: str, filename: str, *, want_result: bool = False) -> tuple[Any, bool]:
        """Evaluate ``code`` as ``filename`` in ``vm``: from the cache if a valid entry exists, else compiled
        (and the entry written). Returns (completion value, whether it came from the cache).

        A syntax or runtime error of the script is raised as by :meth:`VM.eval`, cached or not.
        """
        key = self.key(code, filename)
        bytecode = self._load(key, filename)
        if bytecode is not None:
            with self._lock:
                self.hits += 1
            return vm.eval_bytecode(bytecode, want_result=want_result), True
        try:
            bytecode = vm.compile(code, filename)
        except OutOfMemory:  # the bytecode is written inside the VM's heap: near its limit, evaluate as before
            return vm.eval(code, filename, want_result=want_result), False
        with self._lock:
            self.misses += 1
        self._store(key, filename, bytecode)
        return vm.run_compiled(want_result=want_result), False

    def key(self, code: str, filename: str) -> str:
        h = hashlib.sha256()
        for part in (engine_build().encode(), filename.encode("utf-8", "surrogatepass"),
                     code.encode("utf-8", "surrogatepass")):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()

    def entry_path(self, code: str, filename: str) -> Path:
        """Where the entry of ``code`` as ``filename`` is (or would be) kept."""
        return self._path(self.key(code, filename), filename)

    def _path(self, key: str, filename: str) -> Path:
        """``<name tag>-<key>.qbc``: the tag (from the file name alone) groups the versions of one file."""
        return self.directory / f"{_name_tag(filename)}-{key}{_SUFFIX}"

    def _prune(self, filename: str, written: Path) -> None:
        """Keep the entry just ``written`` and the most recently used others of ``filename`` (by modification
        time, which a hit updates), :data:`VERSIONS_KEPT` in all; remove the rest."""
        entries = []
        for path in self.directory.glob(f"{_name_tag(filename)}-*{_SUFFIX}"):
            try:
                if path != written:
                    entries.append((path.lstat().st_mtime_ns, path))
            except OSError:
                continue
        for _, path in sorted(entries, reverse=True)[VERSIONS_KEPT - 1:]:
            try:
                path.unlink()
            except OSError:
                pass

    # ---- the folder and the secret ---------------------------------------------------------------------

    def _ready(self) -> bytes | None:
        """The secret, once the folder has been checked (or made); ``None`` if the cache cannot be used."""
        with self._lock:
            if self._usable is None:
                self._usable = False
                try:
                    self._secret = self._open_folder()
                    self._usable = self._secret is not None
                except OSError as exc:
                    log.warning("compiled-code cache %s unusable: %s", self.directory, exc)
            return self._secret if self._usable else None

    def _open_folder(self) -> bytes | None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(self.directory)
        if not stat.S_ISDIR(st.st_mode) or not _private(st):
            log.warning("compiled-code cache %s not used: it must be a directory of this user with mode 0700",
                        self.directory)
            return None
        for old in self.directory.glob(f"*{_SUFFIX}"):  # entries named before versions were grouped: unreachable
            if "-" not in old.name:
                try:
                    old.unlink()
                except OSError:
                    pass
        return self._read_secret() or self._make_secret()

    def _read_secret(self) -> bytes | None:
        path = self.directory / _SECRET
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or not _private(st) or st.st_size != _SECRET_BYTES:
                raise OSError(f"{path}: not a private {_SECRET_BYTES}-byte file of this user")
            data = os.read(fd, _SECRET_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) != _SECRET_BYTES:
            raise OSError(f"{path}: short read")
        return data

    def _make_secret(self) -> bytes | None:
        path = self.directory / _SECRET
        tmp = self.directory / f".{_SECRET}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
        try:
            os.write(fd, os.urandom(_SECRET_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a secret another process made first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return self._read_secret()

    # ---- entries -----------------------------------------------------------------------------------------

    def _tag(self, secret: bytes, key: str, payload: bytes) -> bytes:
        return hmac.new(secret, _MAGIC + key.encode() + payload, hashlib.sha256).digest()

    def _reject(self, key: str, why: str) -> None:
        with self._lock:
            self.rejected += 1
        log.warning("compiled-code cache entry %s ignored: %s", key[:16], why)

    def _load(self, key: str, filename: str) -> bytes | None:
        secret = self._ready()
        if secret is None:
            return None
        path = self._path(key, filename)
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a symlink (ELOOP), a permission problem
            self._reject(key, str(exc))
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._reject(key, "not a regular file")
                return None
            if not _private(st):
                self._reject(key, "owned by another user or open to others")
                return None
            if st.st_size > _MAX_ENTRY:
                self._reject(key, "too large")
                return None
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        except OSError as exc:
            self._reject(key, str(exc))
            return None
        finally:
            os.close(fd)
        head = len(_MAGIC) + _TAG
        if len(data) <= head or not data.startswith(_MAGIC):
            self._reject(key, "not a cache entry")
            return None
        tag, payload = data[len(_MAGIC):head], data[head:]
        if not hmac.compare_digest(tag, self._tag(secret, key, payload)):
            self._reject(key, "integrity check failed")
            return None
        try:
            os.utime(path)  # used now: the version kept longest by _prune
        except OSError:
            pass
        return payload

    def _store(self, key: str, filename: str, payload: bytes) -> None:
        secret = self._ready()
        if secret is None:
            return
        path = self._path(key, filename)
        tmp = self.directory / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(os.dup(fd), "wb") as f:
                    f.write(_MAGIC + self._tag(secret, key, payload) + payload)
            finally:
                os.close(fd)
            os.replace(tmp, path)  # a torn or stale entry fails the integrity check, so no fsync is needed
            self._prune(filename, path)
        except OSError as exc:
            log.debug("compiled-code cache entry %s not written: %s", key[:16], exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass
