"""``kplug_lab.protocol`` is data in, data out: no module in it imports I/O, threads, an event loop, tornado, or a
layer of kplug_lab other than its own error tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kplug_lab.protocol

PROTOCOL_DIR = Path(kplug_lab.protocol.__file__).parent
FORBIDDEN = ("asyncio", "threading", "_thread", "concurrent", "tornado", "socket", "selectors", "subprocess",
             "multiprocessing", "httpx", "kplug_lab.host", "kplug_lab.rpc", "kplug_lab.server", "kplug_lab.sandbox",
             "kplug_lab.client", "kplug_lab.notebook")
ALLOWED_OWN = ("kplug_lab.errors", "kplug_lab.protocol")


def _imports(source: str) -> list[str]:
    """Every module ``source`` imports (anywhere, functions and ``TYPE_CHECKING`` blocks included), relative
    imports resolved as from a module of the ``kplug_lab.protocol`` package."""
    package = ["kplug_lab", "protocol"]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append(module)
            found.extend(f"{module}.{alias.name}" for alias in node.names)
    return found


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def _modules() -> list[Path]:
    return sorted(PROTOCOL_DIR.glob("*.py"))


def test_the_protocol_package_has_the_expected_modules() -> None:
    assert {p.name for p in _modules()} >= {"__init__.py", "jsonrpc.py", "routes.py", "sse.py", "private.py"}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_protocol_module_imports_no_io_threads_loop_or_upper_layer(path: Path) -> None:
    imports = _imports(path.read_text(encoding="utf-8"))
    bad = [m for m in imports if _forbidden(m)]
    assert not bad, f"{path.name} imports {bad}"
    own = [m for m in imports if m.startswith("kplug_lab")]
    assert all(m.startswith(ALLOWED_OWN) for m in own), f"{path.name} imports {own}"


def _offences(source: str) -> list[str]:
    return [m for m in _imports(source) if _forbidden(m)]


def test_the_import_walk_catches_relative_nested_and_aliased_imports() -> None:
    assert _offences("from ..host import api") == ["kplug_lab.host", "kplug_lab.host.api"]
    assert _offences("from .. import host") == ["kplug_lab.host"]
    assert _offences("def f():\n    import asyncio as aio\n") == ["asyncio"]
    assert _offences("if TYPE_CHECKING:\n    from concurrent.futures import Future\n") == [
        "concurrent.futures", "concurrent.futures.Future"]
    assert _offences("from ..errors import KplugError\nimport json") == []
