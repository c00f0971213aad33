"""``require`` of a plugin's own files (changes §1): Node's resolution, confined to the plugin's folder.

SiYuan now loads modules only from inside ``data/plugins/<name>/`` (Go's ``os.OpenRoot``): an absolute id, an id
leaving the folder (``..``), a symlink pointing out of it and a ``node_modules`` above it all count as "module not
found", and only regular files load. Here the host resolves an id for the JavaScript side (``host/js/require.js``,
which keeps the module cache and runs the CommonJS wrapper) and reads the file, through the same confinement
helper storage uses (:func:`.storage.confined`), with a size bound. Paths crossing the boundary are relative to the
plugin's folder, ``/``-separated (``""`` is the folder itself).
"""

from __future__ import annotations

import json
import os
import posixpath

from ...errors import HostOpError
from ..runtime.context import Capability, Op
from .storage import confined

__all__ = ["MAX_MODULE_BYTES", "ModuleOps"]

#: the largest file ``require`` reads (a bundled kernel of ~70 modules is a few MiB in all)
MAX_MODULE_BYTES = 16 * 1024 * 1024


class ModuleOps(Capability):
    def sync_ops(self) -> dict[str, Op]:
        return {"module_resolve": lambda base, request: self.resolve(str(base), str(request)),
                "module_read": lambda path: self.read(str(path))}

    def _root(self) -> str | None:
        directory = self.ctx.directory
        return None if directory is None else os.path.realpath(directory)

    def resolve(self, base: str, request: str) -> str | None:
        """The file ``require(request)`` from a module in folder ``base`` loads, or None (module not found)."""
        root = self._root()
        if root is None or not request or "\0" in request or "\\" in request:
            return None
        if request.startswith("/"):
            return None  # absolute: outside the folder by definition
        if request in (".", "..") or request.startswith(("./", "../")):
            return self._file_or_folder(root, posixpath.join(base, request))
        folder = base  # a bare id: node_modules folders from ``base`` up to the plugin's folder, not above
        while True:
            found = self._file_or_folder(root, posixpath.join(folder, "node_modules", request))
            if found is not None or folder in ("", "."):
                return found
            folder = posixpath.dirname(folder)

    def read(self, path: str) -> str:
        """The text of module file ``path`` (as :meth:`resolve` gave it)."""
        root = self._root()
        target = None if root is None else confined(root, path)
        if target is None:
            raise HostOpError(f"Invalid module: {path}")
        try:
            with open(target, "rb") as f:
                data = f.read(MAX_MODULE_BYTES + 1)
        except OSError as exc:
            raise HostOpError(f"read {path}: {exc.strerror}") from None
        if len(data) > MAX_MODULE_BYTES:
            raise HostOpError(f"module {path} is larger than {MAX_MODULE_BYTES} bytes: split it or bundle less")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HostOpError(f"module {path} is not UTF-8 (byte {exc.start})") from None

    def _file_or_folder(self, root: str, path: str) -> str | None:
        path = posixpath.normpath(path)
        if path == ".." or path.startswith("../"):
            return None
        for candidate in (path, path + ".js", path + ".json"):
            if self._is_file(root, candidate):
                return _clean(candidate)
        main = self._package_main(root, path)
        if main is not None:
            target = posixpath.normpath(posixpath.join(path, main))
            if target != ".." and not target.startswith("../"):
                for candidate in (target, target + ".js", target + ".json", target + "/index.js",
                                  target + "/index.json"):
                    if self._is_file(root, candidate):
                        return _clean(candidate)
        for candidate in (path + "/index.js", path + "/index.json"):
            if self._is_file(root, candidate):
                return _clean(candidate)
        return None

    def _package_main(self, root: str, folder: str) -> str | None:
        if not self._is_file(root, folder + "/package.json"):
            return None
        try:
            text = self.read(_clean(folder + "/package.json"))
            main = json.loads(text).get("main")
        except (HostOpError, ValueError, AttributeError):
            return None
        return main if isinstance(main, str) and main else None

    @staticmethod
    def _is_file(root: str, path: str) -> bool:
        target = confined(root, path)
        if target is None:
            return False
        real = os.path.realpath(target)
        inside = real == root or real.startswith(root.rstrip("/") + "/")
        return inside and os.path.isfile(real)


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "" if cleaned == "." else cleaned

