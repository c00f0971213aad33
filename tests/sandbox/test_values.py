"""Values crossing the boundary as JSON, in both directions and through host functions."""

from __future__ import annotations

from typing import Any

import pytest

from kplug_lab.errors import JSError, ValueConversionError
from kplug_lab.sandbox import VM

VALUES: list[Any] = [
    None, True, False, 0, -1, 2**53, -(2**53), 1.5, -0.25, 1e300, 5e-324,
    "", "plain", "astral 😀𝄞 \U0010ffff", "nul\x00inside\x00", "quotes \" \\ and \n\t controls \x01\x1f",
    [], {}, [1, [2, [3, {"a": None}]]], {"k": {"nested": ["x", 1.25, False]}, "": "empty key", "😀": "astral key"},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_every_json_type_round_trips_through_a_js_function(vm: VM, value: Any) -> None:
    vm.eval("function id(x) { return x; }")
    assert vm.call("id", value) == value


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_every_json_type_round_trips_through_a_host_function(vm: VM, value: Any) -> None:
    seen: list[Any] = []
    vm.register("hostId", lambda x: seen.append(x) or x)
    vm.eval("function viaHost(x) { return hostId(x); }")
    assert vm.call("viaHost", value) == value
    assert seen == [value]


def test_strings_made_in_js_keep_astral_characters_and_nul_bytes(vm: VM) -> None:
    assert vm.eval("'a\\0b' + String.fromCodePoint(0x1F600) + '\\u{10FFFF}'") == "a\x00b😀\U0010ffff"
    assert vm.eval("String.fromCodePoint(0x1D11E).length") == 2
    assert vm.call("String.fromCharCode", 0) == "\x00"
    assert vm.eval("'\\ud800 alone'") == "\ud800 alone"
    assert vm.call("String", "\udc00 lone low") == "\udc00 lone low"


def test_a_10_mb_string_crosses_both_ways_and_through_a_host_function(vm: VM) -> None:
    big = "x" * 10_000_000
    vm.register("hostLength", lambda s: len(s))
    vm.eval("function id(x) { return x; } function len(x) { return [x.length, hostLength(x)]; }")
    assert vm.call("len", big) == [10_000_000, 10_000_000]
    assert vm.call("id", big) == big
    assert len(vm.eval("'y'.repeat(10 * 1024 * 1024)")) == 10 * 1024 * 1024
    astral = "😀\x00" * 1_000_000  # 5 MB of UTF-8, 3 million UTF-16 units in JS
    assert vm.call("id", astral) == astral
    assert vm.call("len", astral) == [3_000_000, 2_000_000]


def test_what_json_cannot_carry_from_js_is_dropped_as_json_stringify_drops_it(vm: VM) -> None:
    assert vm.eval("undefined") is None
    assert vm.eval("(function () {})") is None
    assert vm.eval("[undefined, function () {}, Symbol('s')]") == [None, None, None]
    assert vm.eval("({ a: undefined, b: 1, [Symbol('s')]: 2 })") == {"b": 1}
    assert vm.eval("[NaN, Infinity, new Date(0)]") == [None, None, "1970-01-01T00:00:00.000Z"]


@pytest.mark.parametrize("code, name, message", [
    ("10n", "TypeError", "BigInt"),
    ("(() => { const c = {}; c.self = c; return c; })()", "TypeError", "circular"),
])
def test_what_json_cannot_carry_from_js_is_a_clear_js_error(vm: VM, code: str, name: str, message: str) -> None:
    with pytest.raises(JSError) as info:
        vm.eval(code)
    assert info.value.name == name and message in info.value.message
    assert vm.eval("'still usable'") == "still usable"


@pytest.mark.parametrize("value, why", [
    (float("nan"), "not JSON compliant"), ({"x": float("inf")}, "not JSON compliant"),
    ({1, 2}, "set is not JSON serializable"), (b"bytes", "bytes is not JSON serializable"),
    (object(), "object is not JSON serializable"),
])
def test_what_json_cannot_carry_from_python_is_refused_before_entering_the_vm(vm: VM, value: Any, why: str) -> None:
    vm.eval("function id(x) { return x; }")
    with pytest.raises(ValueConversionError, match=why):
        vm.call("id", value)
    assert vm.call("id", [1]) == [1]


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_100000_deep_argument_is_refused_with_a_clear_error(vm: VM) -> None:
    vm.eval("function id(x) { return x; }")
    with pytest.raises(ValueConversionError, match="nested too deeply"):
        vm.call("id", _nested(100_000))
    assert vm.call("id", [1]) == [1]
    assert vm.crashed is None


def test_a_100000_deep_value_made_in_js_is_refused_quickly_and_the_vm_survives(vm: VM) -> None:
    # JSON.stringify would spend seconds on it inside one builtin, where only the epoch backstop can stop it
    deep = "(() => { let d = []; for (let i = 0; i < 1e5; i++) d = [d]; return d; })()"
    with pytest.raises(JSError, match="nested more than 512 levels deep") as info:
        vm.eval(deep)
    assert info.value.name == "RangeError"
    vm.register("take", lambda x: "taken")
    caught = vm.eval(f"(() => {{ try {{ take({deep}); }} catch (e) {{ return [e.name, e.message]; }} }})()")
    assert caught[0] == "RangeError" and "512 levels" in caught[1]
    assert vm.crashed is None
    assert vm.eval("(() => { let d = []; for (let i = 0; i < 500; i++) d = [d]; return take(d); })()") == "taken"


def test_a_cycle_longer_than_the_depth_limit_is_refused_as_too_deep(vm: VM) -> None:
    code = ("(() => { const head = {}; let cur = head; for (let i = 0; i < 600; i++) { cur.n = {}; cur = cur.n; }"
            " cur.n = head; return head; })()")
    with pytest.raises(JSError, match="512 levels"):
        vm.eval(code)


def test_a_deep_json_parse_inside_js_is_a_range_error_not_a_crash(vm: VM) -> None:
    out = vm.eval("(() => { try { JSON.parse('['.repeat(100000) + ']'.repeat(100000)); } "
                  "catch (e) { return e.name; } })()")
    assert out == "RangeError"
    assert vm.crashed is None


# Characters the guest's JSON quoting of host-call string arguments treats specially: escapes, UTF-8 of every
# length, lone surrogates (and U+D7FF / U+E000 beside them, whose UTF-8 also starts with 0xED or near it).
_AWKWARD = ['"', "\\", "\x00", "\x1f", "\x7f", "\n", "\t", "\b", "\f", "\r", "é", "\u00ff", "中", "\ud7ff",
            "\ud800", "\udbff", "\udc00", "\udfff", "\ue000", "😀", "\U0010ffff", "\u2028"]


def _recording_loads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the raw JSON bytes the host decodes (host-call arguments among them)."""
    from kplug_lab.sandbox import _vm

    wire: list[bytes] = []
    real = _vm._loads

    def loads(data: bytes) -> Any:
        wire.append(bytes(data))
        return real(data)

    monkeypatch.setattr(_vm, "_loads", loads)
    return wire


def test_string_arguments_of_host_calls_arrive_intact_at_every_position_and_length(vm: VM) -> None:
    strings = ["", *_AWKWARD]
    for length in range(1, 20):
        for position in range(length):
            for ch in _AWKWARD:
                strings.append("a" * position + ch + "b" * (length - position - 1))
    # (a high surrogate just before a low one would be a pair in JS, so lone ones never come in that order)
    strings += ["x" * 4096 + '"', "中文" * 3000, "\ud800" * 9 + "z" * 9, "\udfff" * 20 + "\ud800" * 20]
    seen: list[str] = []
    vm.register("take", lambda s: seen.append(s))
    vm.eval("function each(list) { for (const s of list) take(s); return list.length; }")
    assert vm.call("each", strings) == len(strings)
    assert seen == strings


def test_host_call_arguments_are_the_bytes_json_stringify_gives(vm: VM, monkeypatch: pytest.MonkeyPatch) -> None:
    vm.register("take", lambda *args: None)
    vm.eval(r"""
      var samples = [
        ["plain", "quote \" back \\ slash / solidus", "\x00\x01\x1f\x7f \b\f\n\r\t", "é中😀\u2028\ud7ff\ue000"],
        ["lone \ud800 high", "\udc00 lone low", "\udfff\ud800", "x".repeat(1000) + "\ud83d", "a\ud83d\ude00b"],
        [0, -1, 2147483647, -2147483648, 2 ** 31, 1.5, -0, NaN, Infinity, 1e21, 5e-324, true, false, null],
        [undefined, function () {}, Symbol("s"), { a: [1, "two", { three: null }], b: undefined }, [undefined]],
        [new Date(0), { toJSON() { return "via toJSON"; } }, "s".repeat(5) + "t", new String("boxed"), new Number(4)],
        // long concatenations are ropes in QuickJS, long substrings slices of their parent
        ["r".repeat(9000) + "\"é\n" + "s".repeat(9000), "中".repeat(9000) + "\ud800" + "t".repeat(9000)],
        [JSON.stringify({ a: "w".repeat(3000) + "é" }).slice(3, 2900), ("中\n".repeat(2000) + "\udc00").slice(1)],
        [],
      ];
    """)
    count = vm.eval("samples.length")
    expected = [vm.eval(f"JSON.stringify(samples[{i}])") for i in range(count)]
    wire = _recording_loads(monkeypatch)
    for i in range(count):
        wire.clear()
        vm.eval(f"take(...samples[{i}])", want_result=False)
        assert [w.decode("utf-8", "surrogatepass") for w in wire] == [expected[i]], f"sample {i}"


def test_a_plugins_array_prototype_to_json_cannot_change_what_a_host_function_receives(vm: VM) -> None:
    seen: list[tuple[Any, ...]] = []
    vm.register("take", lambda *args: seen.append(args))
    vm.eval("Array.prototype.toJSON = function () { return 'replaced'; }")
    vm.eval("take('path', 'content', false)")
    assert seen == [("path", "content", False)]


def test_a_bigint_argument_of_a_host_call_is_a_clear_js_error(vm: VM) -> None:
    vm.register("take", lambda *args: None)
    caught = vm.eval("(() => { try { take('a', 10n); } catch (e) { return [e.name, e.message]; } })()")
    assert caught[0] == "TypeError" and "BigInt" in caught[1]
    assert vm.eval("take('still usable')") is None


def test_a_string_argument_beyond_the_memory_limit_is_an_out_of_memory_error_not_a_crash(fast: bool) -> None:
    with VM(fast=fast, memory_limit=8 * 1024 * 1024) as small:
        small.register("take", lambda s: len(s))
        # quoting 2.5 MB of control characters takes 15 MB: beyond the limit, while the string itself fits
        caught = small.eval("(() => { const s = '\\x01'.repeat(2500000);"
                            " try { take(s); return 'passed'; } catch (e) { return String(e); } })()")
        assert "out of memory" in caught
        assert small.crashed is None
        assert small.eval("take('x'.repeat(1000))") == 1000
