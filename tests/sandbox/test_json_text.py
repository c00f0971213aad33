"""The JSON text of a value leaving the VM (a call's result, a host function's arguments) is JSON.stringify's.

The guest writes plain data itself (``kplug.c``, "plain data to JSON without JSON.stringify") and hands
everything else to JSON.stringify. Each test here compares what the host receives with what
``JSON.stringify`` gives for the same value in the same VM, keeping what Python's ``==`` would hide: key
order, ``int`` against ``float``, the sign of zero.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kplug_lab.errors import JSError
from kplug_lab.sandbox import VM


def exact(value: Any) -> Any:
    """``value`` in a form whose ``==`` also compares key order, number types and the sign of zero."""
    if isinstance(value, dict):
        return ("dict", [(k, exact(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [exact(v) for v in value])
    if isinstance(value, float):
        return ("float", math.copysign(1.0, value), repr(value))
    return (type(value).__name__, value)


def as_call_result(vm: VM, expr: str) -> tuple[str, Any]:
    vm.eval(f"globalThis.__make = () => ({expr});", want_result=False)
    try:
        return "value", exact(vm.call("__make"))
    except JSError as exc:
        return "error", (exc.name, exc.message)


def as_host_argument(vm: VM, expr: str) -> tuple[str, Any]:
    seen: list[Any] = []
    vm.register("__take", lambda x: seen.append(x))
    vm.eval(f"globalThis.__pass = () => {{ __take({expr}); }};", want_result=False)
    try:
        vm.call("__pass")
    except JSError as exc:
        return "error", (exc.name, exc.message)
    return "value", exact(seen[0])


def stringified(vm: VM, expr: str) -> tuple[str, Any]:
    """What JSON.stringify makes of the value (undefined, for a function or symbol, arrives as null)."""
    try:
        text = vm.eval(f"JSON.stringify(({expr}))")
    except JSError as exc:
        return "error", (exc.name, exc.message)
    return "value", exact(None if text is None else json.loads(text))


def check(vm: VM, expr: str) -> None:
    expected = stringified(vm, expr)
    assert as_call_result(vm, expr) == expected, expr
    assert as_host_argument(vm, expr) == expected, expr


CASES = [
    # numbers: the shortest form that reads back, -0 as 0, non-finite as null
    "-0", "[-0, 0, -0.0]", "1e21", "1e-7", "0.1 + 0.2", "5e-324", "2 ** 53 + 2", "-2147483648", "2147483648",
    "[NaN, Infinity, -Infinity]", "[1.0, 2.5e-8, 123456789012, 1.7976931348623157e308]",
    # strings: escapes, non-Latin-1 text, surrogate pairs, lone surrogates (lowercase \\udxxx)
    r'"a\ud800b\udc00c"', r'"\ud83d\ude00 \ud83d"', r'"\udbff\udfff\udc00\ud800"',
    '"é中 \\u2028\\u2029 \\x7f\\x80\\xff"',
    "Array.from({length: 32}, (_, i) => String.fromCharCode(i)).join('') + '\"\\\\'",
    "String.fromCharCode(0x4e2d).repeat(5000) + '\\n' + '\\ud800'.repeat(3000)",
    "'x'.repeat(3000) + 'é'.repeat(3000)",
    # key order: array-index keys first (ascending), then the others in creation order
    "{b: 1, a: 2}", "{'2': 1, a: 2, '1': 3}", "{'4294967295': 1, '4294967294': 2, x: 0}",
    "{'-1': 1, '01': 2, '1.5': 3}",
    "(() => { const o = {a: 1, b: 2, c: 3}; delete o.b; o.b = 4; return o; })()",
    # prototypes and property kinds
    "Object.assign(Object.create(null), {z: 1, y: [2]})", "{['__proto__']: 1, p: {__proto__: null, q: 2}}",
    "Object.defineProperty({a: 1}, 'hidden', {value: 2, enumerable: false})",
    "{get g() { return 5; }, h: 6}", "{toJSON() { return 7; }}", "{a: {toJSON: (k) => 'key ' + k}}",
    "Object.assign(Object.create({toJSON: () => 'inherited'}), {a: 1})",
    "Object.assign(Object.create({inherited: 1}), {own: 2})",
    "{f() {}, s: Symbol('s'), u: undefined, [Symbol('k')]: 1, n: null}", "Object.freeze({a: [1, {b: 2}]})",
    "[new Date(0), new Number(3), new String('s'), new Boolean(false), Object(Symbol('x'))]",
    "[new Map([[1, 2]]), new Set([1]), new Uint8Array([1, 2]), /re/g, new Error('e'), Math]",
    "new Proxy({a: 1}, {})", "new Proxy([1, 2], {})",
    "(class Point { constructor() { this.x = 1; } }, new (class { constructor() { this.x = 1; } })())",
    # arrays: holes, a length past the elements, extra properties, subclasses, what becomes null
    "[1, , 3]", "(() => { const a = [1, 2]; a.length = 4; return a; })()",
    "(() => { const a = [1]; a.x = 2; return a; })()",
    "(() => { const a = [1]; a.toJSON = () => 'own'; return a; })()", "new (class extends Array {})(1, 2)",
    "[undefined, function () {}, Symbol('s'), null]", "[[[], {}], [[[]]]]",
    # shared and nested objects
    "(() => { const s = {x: 1}; return [s, s, {a: s, b: [s]}]; })()",
    "(() => { let v = 1; for (let i = 0; i < 150; i++) v = i % 2 ? [v] : {v}; return v; })()",
    # what JSON.stringify refuses
    "1n", "{a: [1, 2n]}", "(() => { const o = {}; o.self = o; return o; })()",
    "(() => { const o = {}; o.a = o; o.b = o; return o; })()", "(() => { const a = [1]; a.push({a}); return a; })()",
]


@pytest.mark.parametrize("expr", CASES)
def test_the_json_text_leaving_the_vm_is_json_stringifys(vm: VM, expr: str) -> None:
    check(vm, expr)


@pytest.mark.parametrize("setup", [
    "Object.prototype.toJSON = function () { return 'from Object.prototype'; };",
    "Array.prototype.toJSON = function () { return 'from Array.prototype'; };",
    "Object.defineProperty(Object.prototype, 'toJSON', {get() { return () => 'getter'; }, configurable: true});",
    "Object.defineProperty(Array.prototype, 3, {get() { return 'index 3 of the prototype'; }, configurable: true});",
    "Object.setPrototypeOf(Array.prototype, {toJSON() { return 'between'; }});",
])
def test_a_changed_prototype_is_obeyed_as_json_stringify_obeys_it(vm: VM, setup: str) -> None:
    vm.eval(setup, want_result=False)
    for expr in ["{a: 1, b: [1, 2]}", "[1, 2]", "(() => { const a = [1, 2]; a.length = 5; return a; })()",
                 "Object.create(null)"]:
        check(vm, expr)


def test_a_value_nested_too_deeply_is_refused_on_both_paths(vm: VM) -> None:
    deep = "(() => { let v = 1; for (let i = 0; i < 600; i++) v = [v]; return v; })()"
    assert as_call_result(vm, deep)[0] == "error"
    assert as_host_argument(vm, deep)[0] == "error"


def test_a_twice_self_referencing_object_is_a_circular_reference_error_not_a_dead_vm(vm: VM) -> None:
    # Every path through {a: o, b: o} is a cycle: checking each path to 512 levels would never end, and only
    # the hard CPU limit would stop it, killing the VM.
    expr = "(() => { const o = {}; o.a = o; o.b = o; o.c = [o, o]; return o; })()"
    assert as_call_result(vm, expr) == ("error", ("TypeError", "circular reference"))
    assert as_host_argument(vm, expr) == ("error", ("TypeError", "circular reference"))
    assert vm.call("String", 1) == "1"


# ---- generated values ---------------------------------------------------------------------------------------

LEAVES = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: "NaN" if math.isnan(f) else ("-Infinity" if f < 0 else "Infinity") if math.isinf(f)
        else ("-0" if f == 0 and math.copysign(1, f) < 0 else repr(f))),
    st.text(max_size=12).map(lambda s: json.dumps(s)),
    st.lists(st.integers(min_value=0xD800, max_value=0xDFFF), min_size=1, max_size=3).map(
        lambda units: '"' + "".join(f"\\u{u:04x}" for u in units) + '"'),
    st.sampled_from(["true", "false", "null", "undefined", "Symbol('s')", "(() => 1)", "new Date(0)", "1n"]),
)
KEYS = st.one_of(st.text(max_size=6), st.sampled_from(["0", "7", "01", "-1", "4294967294", "toJSON", "__proto__"]))


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"[{json.dumps(k)}]: {v}" for k, v in pairs) + "}"


VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(KEYS, inner), max_size=5).map(_object),
        st.lists(st.tuples(KEYS, inner), max_size=4).map(lambda p: f"Object.assign(Object.create(null), {_object(p)})"),
        inner.map(lambda v: f"(() => {{ const a = [{v}, 2, 3]; delete a[1]; return a; }})()"),
    ),
    max_leaves=25,
)


@given(expr=VALUES)
def test_generated_values_leave_the_vm_as_json_stringify_writes_them(expr: str) -> None:
    with VM() as vm:
        check(vm, expr)
