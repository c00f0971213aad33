"""Rules that keep ``kplug_lab/host/`` readable, checked on its source with ``ast``:

* no module reads or sets another object's private members (``obj._x`` where ``obj`` is not ``self``/``cls``),
  nor imports another module's private names;
* no circle of ``TYPE_CHECKING``-only imports larger than two modules.

Each rule is also run on a small fabricated package, to show that it can fail.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import kplug_lab.host

HOST = Path(kplug_lab.host.__file__).parent

# named members of the standard library that start with "_" but are public API (namedtuple's)
_PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def _modules(root: Path) -> dict[str, ast.Module]:
    return {".".join(p.relative_to(root).with_suffix("").parts): ast.parse(p.read_text(encoding="utf-8"))
            for p in sorted(root.rglob("*.py"))}


def _own_private_names(cls: ast.ClassDef) -> set[str]:
    """The private members a class defines: its methods, class attributes, and ``self._x`` it assigns."""
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            names.add(node.attr)
    return {n for n in names if n.startswith("_")}


def private_reads(root: Path) -> list[str]:
    """``file:line: expr`` for every private member reached through something other than self/cls. A class may
    use its own private members on another instance of itself (Python's privacy is per class)."""
    found = []
    for name, tree in _modules(root).items():
        allowed: dict[int, set[str]] = {}  # id of an Attribute node inside a class -> that class's own names
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            own = _own_private_names(cls)
            for inner in ast.walk(cls):
                allowed.setdefault(id(inner), set()).update(own)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                attr = node.attr
                if not attr.startswith("_") or attr.startswith("__") or attr in _PUBLIC_UNDERSCORE:
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                if attr in allowed.get(id(node), ()):
                    continue
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        source = "." * node.level + (node.module or "")
                        found.append(f"{name}:{node.lineno}: from {source} import {alias.name}")
    return sorted(found)


def _resolve(module: str, node: ast.ImportFrom, alias: str, known: set[str]) -> str | None:
    """The module of ``root`` that ``from <node.module> import <alias>`` in ``module`` refers to, if any."""
    if not node.level:
        return None  # absolute imports of the package are not used under host/
    package = module.split(".")[:-1]  # a module's package; for "x.__init__" the package x itself
    base = package[:len(package) - (node.level - 1)]
    target = [*base, *(node.module.split(".") if node.module else [])]
    for parts in ([*target, alias], [*target, alias, "__init__"], target, [*target, "__init__"]):
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
    return None


def type_checking_edges(root: Path) -> dict[str, set[str]]:
    """module -> the modules of ``root`` it imports (at run time or under ``if TYPE_CHECKING:``)."""
    modules = _modules(root)
    known = set(modules)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    target = _resolve(name, node, alias.name, known)
                    if target is not None and target != name:
                        edges[name].add(target)
    return edges


def type_checking_circles(root: Path) -> list[list[str]]:
    """Every import circle of more than two modules that is closed only by ``TYPE_CHECKING`` imports (the
    interpreter would refuse a run-time one); each reported once, as its strongly connected component."""
    edges = type_checking_edges(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = itertools.count()

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 2:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return components


def test_no_host_module_reads_another_objects_private_members() -> None:
    assert private_reads(HOST) == []


def test_no_type_checking_import_circle_larger_than_two_modules() -> None:
    assert type_checking_circles(HOST) == []


def _fabricate(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_private_member_rule_fails_on_a_fabricated_offender(tmp_path: Path) -> None:
    root = _fabricate(tmp_path, {
        "__init__.py": "",
        "ops.py": "from .manager import _helper\n\n"
                  "def f(plugin):\n    plugin.manager._broadcast('x')\n    return plugin._state\n",
        "fine.py": "class A:\n    def g(self, other):\n        self._x = 1\n"
                   "        return self._x, other._x, p._replace(a=1)\n",
    })
    assert private_reads(root) == [
        "ops:1: from .manager import _helper",
        "ops:4: plugin.manager._broadcast",
        "ops:5: plugin._state",
    ]


def test_circle_rule_fails_on_a_fabricated_three_module_type_checking_circle(tmp_path: Path) -> None:
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .{0} import {1}\n"
    root = _fabricate(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "",
        "a.py": "from .sub.b import B\n",
        "sub/b.py": "from ..c import C\nfrom .. import sub\n",  # a subpackage is not its parent
        "c.py": guarded.format("a", "A"),
        "d.py": guarded.format("e", "E"),
        "e.py": "from .d import D\n",  # a circle of two is allowed
    })
    assert type_checking_circles(root) == [["a", "c", "sub.b"]]
