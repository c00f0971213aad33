"""``siyuan.storage`` (spec §3.4): a plugin's private storage folder, confined and crash-safe, and its watches.

Every path is cleaned lexically, joined to the root, and then resolved (symlinks followed) and checked
again, so neither ``../`` nor an absolute path nor a symlink can leave the root. Writes are atomic: a
temporary file in the same folder, fsync, rename; a crash leaves the old or the new
content, never a torn or empty file. Error messages name paths relative to the root, never host paths.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import posixpath
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import HostOpError, StorageError
from ..runtime.context import Capability, Op
from .encoding import payload, unb64, utf8

__all__ = ["TRAVERSAL", "Storage", "StorageError", "StorageOps", "confined"]

TRAVERSAL = "siyuan.storage: path traversal not allowed"
_TMP_PREFIX = ".kplug-"
_TMP_SEQ = itertools.count()
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class Storage:
    def __init__(self, root: Path, *, quota_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = Path(os.path.realpath(self.root))
        self._root = str(self._real_root)
        self._root_prefix = self._root.rstrip("/") + "/"
        self.quota_bytes = quota_bytes
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Temporary files a killed writer left behind: never visible content, so drop them at start."""
        for dirpath, _dirs, files in os.walk(self._real_root):
            for name in files:
                if name.startswith(_TMP_PREFIX) and name.endswith(".tmp"):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                    except OSError:
                        pass

    def resolve(self, path: str) -> Path:
        """The absolute path for ``path``, or :class:`StorageError` if it would leave the root."""
        return Path(self._resolve(path))

    def _resolve(self, path: str) -> str:
        """:meth:`resolve` as a string: get and put are on the hot path, and build no ``Path`` objects
        (docs/adr/0003-host-benchmark.md)."""
        if "\0" in path:
            raise StorageError(TRAVERSAL)
        found = confined(self._root, path)
        if found is None:
            raise StorageError(TRAVERSAL)
        return found

    def relative(self, absolute: Path) -> str:
        try:
            return str(Path(absolute).relative_to(self._real_root))
        except ValueError:
            return Path(absolute).name

    def get(self, path: str) -> bytes:
        target = self._resolve(path)
        try:
            with open(target, "rb", buffering=0) as f:
                return f.readall()
        except FileNotFoundError:
            raise StorageError(f"open {self._show(path)}: no such file or directory") from None
        except IsADirectoryError:
            raise StorageError(f"read {self._show(path)}: is a directory") from None
        except OSError as exc:
            raise StorageError(f"open {self._show(path)}: {exc.strerror}") from None

    def put(self, path: str, data: bytes) -> None:
        """Replace the file at ``path`` with ``data`` atomically, creating missing parent folders."""
        target = self._resolve(path)
        if target == self._root:
            raise StorageError(f"failed to write file: open {self._show(path)}: is a directory")
        if self.quota_bytes is not None and self.usage() + len(data) > self.quota_bytes:
            raise StorageError(f"failed to write file: storage quota of {self.quota_bytes} bytes exceeded")
        parent = target.rpartition("/")[0]
        # A unique name without mkstemp's random retries: writes of one plugin run on its one thread, and the
        # pid and thread id keep other writers (another host on the same folder) apart.
        tmp = f"{parent}/{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{next(_TMP_SEQ)}.tmp"
        try:
            fd = os.open(tmp, _CREATE_NEW, 0o644)
        except (FileNotFoundError, NotADirectoryError):
            # the parent folder is missing (asked only now: a put into an existing folder pays no extra stat)
            self._make_parent(path, parent)
            fd = self._open_new(tmp, path)
        except OSError as exc:
            raise StorageError(f"failed to write file: {exc.strerror}") from None
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            # The data is on disk before the rename is: after a crash (even a power loss) the name points to
            # the old file or to the complete new one. The folder is not fsynced: that would only make the
            # newest write itself survive a power loss, at a cost on every put (docs/adr/0003-host-benchmark.md).
            os.replace(tmp, target)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, IsADirectoryError):
                raise StorageError(f"failed to write file: open {self._show(path)}: is a directory") from None
            if isinstance(exc, OSError):
                raise StorageError(f"failed to write file: {exc.strerror}") from None
            raise

    def _make_parent(self, path: str, parent: str) -> None:
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"failed to make directory: {exc.strerror}") from None
        # re-check after mkdir: a symlinked parent created meanwhile must not redirect the write
        self._resolve(path)

    def _open_new(self, tmp: str, path: str) -> int:
        try:
            return os.open(tmp, _CREATE_NEW, 0o644)
        except OSError as exc:
            raise StorageError(f"failed to write file: {exc.strerror}") from None

    def remove(self, path: str) -> None:
        target = self.resolve(path)
        if target == self._real_root:
            raise StorageError("cannot remove storage root")
        try:
            if target.is_dir() and not target.is_symlink():
                import shutil

                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"failed to remove: {exc.strerror}") from None

    def list(self, path: str) -> list[dict[str, Any]]:
        target = self.resolve(path)
        try:
            names = sorted(os.listdir(target))
        except OSError as exc:
            raise StorageError(f"failed to read directory: {exc.strerror}") from None
        entries = []
        for name in names:
            full = target / name
            try:
                st = full.lstat()
            except OSError:
                continue
            is_link = os.path.islink(full)
            entries.append({
                "name": name,
                "isDir": (not is_link) and full.is_dir(),
                "isSymlink": is_link,
                "updated": int(st.st_mtime),
            })
        return entries

    def usage(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self._real_root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total

    @staticmethod
    def _show(path: str) -> str:
        return posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/") or "."


class StorageOps(Capability):
    """The storage operations of one plugin.

    The I/O runs on the plugin's own thread. SiYuan runs it on a goroutine of its own, but the plugin awaits the
    result either way, and a hop to an I/O thread and back would only add latency (docs/adr/0003-host-benchmark.md).
    A value and a failure alike settle in a later job, as SiYuan posts either back as a new job (§3.0, §6)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watched: set[str] = set()

    def async_ops(self) -> dict[str, Op]:
        return {"storage_get": self.storage_get, "storage_put": self.storage_put,
                "storage_remove": self.storage_remove, "storage_list": self.storage_list,
                "watcher_add": self.watcher_add, "watcher_remove": self.watcher_remove}

    def storage_get(self, path: str) -> dict[str, str] | concurrent.futures.Future[Any]:
        try:
            return payload(self.ctx.storage.get(str(path)))
        except StorageError as exc:
            return _failed_later(exc)

    def storage_put(self, path: str, content: str, is_base64: bool = False) -> concurrent.futures.Future[Any] | None:
        data = unb64(content) if is_base64 else utf8(str(content))
        try:
            self.ctx.storage.put(str(path), data)
        except StorageError as exc:
            return _failed_later(exc)
        return None

    def storage_remove(self, path: str) -> concurrent.futures.Future[Any] | None:
        try:
            self.ctx.storage.remove(str(path))
        except StorageError as exc:
            return _failed_later(exc)
        return None

    def storage_list(self, path: str) -> list[dict[str, Any]] | concurrent.futures.Future[Any]:
        try:
            return self.ctx.storage.list(str(path))
        except StorageError as exc:
            return _failed_later(exc)

    def watcher_add(self, path: str) -> None:
        target = _confined(lambda: self.ctx.storage.resolve(str(path)))
        if not target.exists():
            raise HostOpError("failed to add storage path to watcher: no such file or directory")
        self._watched.add(str(target))
        self.ctx.watch_storage(target, True)

    def watcher_remove(self, path: str) -> None:
        target = _confined(lambda: self.ctx.storage.resolve(str(path)))
        if str(target) not in self._watched:
            raise HostOpError("failed to remove storage path from watcher: can't remove non-existent watch")
        self._watched.discard(str(target))
        self.ctx.watch_storage(target, False)


def confined(root: str, path: str) -> str | None:
    """``path`` joined to ``root`` (an already resolved folder), or None if it would leave ``root``: by ``..`` or
    through a symlink below ``root``. Go's ``filepath.Join`` semantics: ``"../x"`` escapes, ``"/../x"`` is cleaned
    to ``"/x"`` (inside). Shared by storage and by ``require`` of plugin files (:mod:`.modules`)."""
    cleaned = posixpath.normpath(path.replace("\\", "/") or ".").lstrip("/")
    if cleaned in ("", "."):
        return root
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    candidate = f"{root}/{cleaned}"
    # The root is already resolved, so only a symlink below it can lead out: lstat the components (one
    # call each, much cheaper than realpath of the whole path) and resolve fully only if one is a link.
    current = root
    prefix = root.rstrip("/") + "/"
    for part in cleaned.split("/"):
        current = f"{current}/{part}"
        try:
            is_link = stat.S_ISLNK(os.lstat(current).st_mode)
        except OSError:
            break  # missing (so nothing below exists) or not a folder: the operation itself will fail
        if is_link:
            real = os.path.realpath(candidate)
            if real != root and not real.startswith(prefix):
                return None
            break
    return candidate


def _confined(resolve: Callable[[], Path]) -> Path:
    try:
        return resolve()
    except StorageError as exc:
        raise HostOpError(str(exc)) from None


def _failed_later(exc: StorageError) -> concurrent.futures.Future[Any]:
    """A failed storage operation as a finished future: the plugin posts its rejection as a later job (an
    exception raised by the op would reject the Promise within the current job)."""
    failed: concurrent.futures.Future[Any] = concurrent.futures.Future()
    failed.set_exception(HostOpError(str(exc)))
    return failed
