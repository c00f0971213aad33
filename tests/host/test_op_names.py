"""The host operations are named once (``host/ops/names.py``): the JavaScript calls exactly those names, each the way
the table says (``call`` for synchronous ones, ``callAsync`` for asynchronous ones), and the Python dispatch
serves exactly those.

The scan reads every ``host/js/*.js`` file (the prelude is one file per capability, joined into one scope). It
finds the names bound to ``__kplug_native.call`` / ``.callAsync`` (``const call = native.call``,
``const { call, callAsync } = ...``) and the helpers that pass their first argument on to one of them
(``const hostAsync = (op, ...args) => callAsync(op, ...args)``), then every string literal such a name is called
with.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from kplug_lab.host.ops.names import ASYNC_OPS, SYNC_OPS

JS_DIR = Path(str(resources.files("kplug_lab.host.js")))

_IDENT = r"[A-Za-z_$][\w$]*"
# `const call = native.call`, `const callAsync = G.__kplug_native.callAsync`
_NATIVE = rf"(?:{_IDENT}\.)*(?:__kplug_native|native)"
_ALIAS = re.compile(rf"\b(?:const|let|var)\s+({_IDENT})\s*=\s*{_NATIVE}\.(call|callAsync)\b")
# `const { call, callAsync: ca } = native`
_DESTRUCTURE = re.compile(rf"\b(?:const|let|var)\s*\{{([^}}]*)\}}\s*=\s*{_NATIVE}\b")
# `const f = (op, ...rest) => g(op, ...)` or `function f(op, ...) { ... g(op, ...`
_ARROW = re.compile(rf"\b(?:const|let|var)\s+({_IDENT})\s*=\s*(?:async\s*)?\(\s*({_IDENT})\b[^)]*\)\s*=>")
_FUNCTION = re.compile(rf"\bfunction\s+({_IDENT})\s*\(\s*({_IDENT})\b[^)]*\)\s*\{{")


def _callers(source: str) -> dict[str, str]:
    """Every name in ``source`` that calls a host op with its first argument: name -> ``call`` or ``callAsync``."""
    kinds: dict[str, str] = {}
    for name, kind in _ALIAS.findall(source):
        kinds[name] = kind
    for members in _DESTRUCTURE.findall(source):
        for member in members.split(","):
            key, _, local = member.partition(":")
            if key.strip() in ("call", "callAsync"):
                kinds[(local or key).strip()] = key.strip()
    changed = True
    while changed:  # helpers of helpers
        changed = False
        for pattern in (_ARROW, _FUNCTION):
            for match in pattern.finditer(source):
                name, param = match.group(1), match.group(2)
                body = source[match.end():match.end() + 400]
                for inner, kind in list(kinds.items()):
                    passes_op_on = rf"(?<![\w$.]){re.escape(inner)}\(\s*{re.escape(param)}\b"
                    if name not in kinds and re.search(passes_op_on, body):
                        kinds[name] = kind
                        changed = True
    return kinds


def scan(sources: dict[str, str]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The ops the JavaScript calls synchronously and asynchronously: op -> the files that call it."""
    sync: dict[str, set[str]] = {}
    async_: dict[str, set[str]] = {}
    # the prelude's parts are joined into one function scope: a helper one file declares, the others call
    callers = _callers("\n".join(sources.values()))
    for filename, source in sources.items():
        for name, kind in callers.items():
            for op in re.findall(rf"(?<![\w$.]){re.escape(name)}\(\s*[\"'`]([\w]+)[\"'`]", source):
                (sync if kind == "call" else async_).setdefault(op, set()).add(filename)
    return sync, async_


def _js_sources() -> dict[str, str]:
    files = sorted(JS_DIR.glob("*.js"))
    assert files, f"no JavaScript files in {JS_DIR}"
    return {f.name: f.read_text(encoding="utf-8") for f in files}


def test_javascript_calls_exactly_the_ops_in_the_table_each_the_right_way() -> None:
    sync, async_ = scan(_js_sources())
    assert set(sync) == set(SYNC_OPS), (
        f"called with call() but not in SYNC_OPS: {sorted(set(sync) - set(SYNC_OPS))}; "
        f"in SYNC_OPS but never called: {sorted(set(SYNC_OPS) - set(sync))}")
    assert set(async_) == set(ASYNC_OPS), (
        f"called with callAsync() but not in ASYNC_OPS: {sorted(set(async_) - set(ASYNC_OPS))}; "
        f"in ASYNC_OPS but never called: {sorted(set(ASYNC_OPS) - set(async_))}")


def test_python_dispatch_serves_exactly_the_table(tmp_path: Path) -> None:
    import asyncio

    from kplug_lab.host.ops.dispatch import HostOps
    from kplug_lab.host.ops.storage import Storage
    from kplug_lab.host.runtime.config import HostConfig
    from kplug_lab.host.runtime.context import PluginContext

    loop = asyncio.new_event_loop()
    try:
        ctx = PluginContext(
            name="p", config=HostConfig(), loop=loop, storage=Storage(tmp_path), methods={}, tools={},
            host=None,  # type: ignore[arg-type]
            log=lambda level, text: None, post=lambda job: None, vm=lambda: None, timers=lambda: None,
            broadcast=lambda method, params: None, watch_storage=lambda target, add: None,
            durable=lambda: None,  # type: ignore[arg-type,return-value]
        )
        ops = HostOps(ctx)
        assert set(ops.sync) == set(SYNC_OPS)
        assert set(ops.async_) == set(ASYNC_OPS)
        assert not set(SYNC_OPS) & set(ASYNC_OPS)
        ops.close()
    finally:
        loop.close()


@pytest.mark.parametrize("source, expected_sync, expected_async", [
    # the shapes the prelude uses today
    ('const native = G.__kplug_native; const call = native.call; const callAsync = native.callAsync;\n'
     'const hostAsync = (op, ...args) => callAsync(op, ...args).catch(f);\n'
     'call("log", "info", x); hostAsync("fetch", p); callAsync("storage_get", p);',
     {"log"}, {"fetch", "storage_get"}),
    # a split file that takes the primitives by destructuring, with a renamed one and a function helper
    ('const { call, callAsync: ca } = globalThis.__kplug_native;\n'
     'function viaHost(op, a) { return ca(op, a); }\n'
     'call(\'timer_set\', 1, 2); viaHost("kv_get", k); other.call("not_an_op");',
     {"timer_set"}, {"kv_get"}),
])
def test_scan_finds_op_calls_in_the_shapes_a_split_prelude_may_use(
        source: str, expected_sync: set[str], expected_async: set[str]) -> None:
    sync, async_ = scan({"x.js": source})
    assert set(sync) == expected_sync
    assert set(async_) == expected_async


def test_scan_reports_an_op_the_table_lacks() -> None:
    fabricated = _js_sources()
    fabricated["extra.js"] = 'const call = __kplug_native.call; call("no_such_op");'
    sync, _ = scan(fabricated)
    assert set(sync) - set(SYNC_OPS) == {"no_such_op"}
