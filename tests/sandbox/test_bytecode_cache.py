"""The compiled-code cache: hits skip compiling, bad entries are never evaluated, results do not change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kplug_lab.sandbox import VM, BytecodeCache, JSError, OutOfMemory

CODE = """
var calls = 0;
function fail() { calls++; throw new Error("boom " + calls); }
function add(a, b) { return a + b; }
var made = { list: [1, 2, 3].map((x) => x * 2), text: `t${40 + 2}`, re: /a+b/.test("aab") };
made
"""


@pytest.fixture
def cache(tmp_path: Path) -> BytecodeCache:
    return BytecodeCache(tmp_path / "data" / "bytecode")


def run(cache: BytecodeCache, code: str = CODE, name: str = "p/kernel.js", fast: bool = True) -> tuple[object, bool]:
    with VM(fast=fast) as vm:
        return cache.eval(vm, code, name, want_result=True)


def test_second_eval_comes_from_the_cache_with_the_same_result(cache: BytecodeCache, fast: bool) -> None:
    first, from_cache = run(cache, fast=fast)
    assert not from_cache and cache.misses == 1 and cache.hits == 0
    assert cache.entry_path(CODE, "p/kernel.js").exists()
    second, from_cache = run(cache, fast=fast)
    assert from_cache and cache.hits == 1 and cache.misses == 1
    with VM(fast=fast) as vm:
        plain = vm.eval(CODE, "p/kernel.js")
    assert first == second == plain == {"list": [2, 4, 6], "text": "t42", "re": True}


def test_changed_code_or_name_compiles_once(cache: BytecodeCache) -> None:
    run(cache)
    changed = CODE + "\n;made.extra = 1; made"
    assert run(cache, changed) == ({"list": [2, 4, 6], "text": "t42", "re": True, "extra": 1}, False)
    assert run(cache, changed)[1] is True
    assert run(cache, CODE, "other/kernel.js")[1] is False
    assert cache.misses == 3 and cache.hits == 1


def test_folder_and_files_are_private(cache: BytecodeCache) -> None:
    run(cache)
    assert cache.directory.stat().st_mode & 0o777 == 0o700
    for entry in cache.directory.iterdir():
        assert entry.stat().st_mode & 0o777 == 0o600, entry.name
    assert sorted(p.suffix for p in cache.directory.iterdir()) == ["", ".qbc"]  # the secret and one entry


def test_stack_traces_of_cached_code_name_kernel_js_lines(cache: BytecodeCache) -> None:
    for expect_cached in (False, True):
        with VM() as vm:
            assert cache.eval(vm, CODE, "p/kernel.js")[1] is expect_cached
            with pytest.raises(JSError) as err:
                vm.call("fail")
        assert err.value.message == "boom 1"
        assert "p/kernel.js:3:" in err.value.stack


def test_syntax_and_runtime_errors_are_the_same_cached_or_not(cache: BytecodeCache) -> None:
    with VM() as vm, pytest.raises(JSError) as err:
        cache.eval(vm, "var x = ;", "bad/kernel.js")
    assert err.value.name == "SyntaxError" and "bad/kernel.js:1" in err.value.stack
    assert cache.misses == 0 and not any(cache.directory.glob("*.qbc"))
    code = "var a = 1;\nnull.x;\n"
    for _ in range(2):
        with VM() as vm, pytest.raises(JSError) as err:
            cache.eval(vm, code, "thrower/kernel.js")
        assert err.value.name == "TypeError" and "thrower/kernel.js:2" in err.value.stack
    assert cache.hits == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "replace", "garbage"])
def test_a_tampered_entry_is_ignored_and_rebuilt(cache: BytecodeCache, damage: str) -> None:
    run(cache)
    path = cache.entry_path(CODE, "p/kernel.js")
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-10] ^= 0x40
    elif damage == "truncate":
        del data[len(data) // 2:]
    elif damage == "replace":  # valid-looking bytecode of other code, without the secret's tag
        with VM() as vm:
            data = bytearray(data[:40]) + vm.compile("globalThis.pwned = true; 1", "p/kernel.js")
    else:
        data = bytearray(b"\x00" * 100)
    path.write_bytes(bytes(data))
    value, from_cache = run(cache)
    assert not from_cache and cache.rejected == 1
    assert value == {"list": [2, 4, 6], "text": "t42", "re": True}
    assert run(cache)[1] is True  # rewritten


def test_an_entry_open_to_others_is_ignored(cache: BytecodeCache) -> None:
    run(cache)
    path = cache.entry_path(CODE, "p/kernel.js")
    os.chmod(path, 0o620)
    assert run(cache)[1] is False and cache.rejected == 1
    assert path.stat().st_mode & 0o777 == 0o600  # rebuilt privately
    assert run(cache)[1] is True


def test_a_symlinked_entry_is_not_followed(cache: BytecodeCache, tmp_path: Path) -> None:
    run(cache)
    path = cache.entry_path(CODE, "p/kernel.js")
    elsewhere = tmp_path / "elsewhere.qbc"
    os.replace(path, elsewhere)
    path.symlink_to(elsewhere)
    assert run(cache)[1] is False and cache.rejected == 1


@pytest.mark.skipif(os.getuid() != 0, reason="changing a file's owner needs root")
def test_a_foreign_owned_entry_is_ignored(cache: BytecodeCache) -> None:
    run(cache)
    path = cache.entry_path(CODE, "p/kernel.js")
    os.chown(path, 12345, 12345)
    assert run(cache)[1] is False and cache.rejected == 1


def test_a_folder_open_to_others_is_not_used(tmp_path: Path) -> None:
    folder = tmp_path / "bytecode"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    cache = BytecodeCache(folder)
    assert run(cache) == ({"list": [2, 4, 6], "text": "t42", "re": True}, False)
    assert run(cache)[1] is False
    assert list(folder.iterdir()) == []  # neither a secret nor an entry written there


def test_a_secret_open_to_others_disables_the_cache(tmp_path: Path) -> None:
    cache = BytecodeCache(tmp_path / "bytecode")
    run(cache)
    os.chmod(cache.directory / "key", 0o644)
    fresh = BytecodeCache(cache.directory)
    assert run(fresh)[1] is False and run(fresh)[1] is False and fresh.hits == 0


def test_another_engine_build_is_another_entry(cache: BytecodeCache, monkeypatch: pytest.MonkeyPatch) -> None:
    run(cache)
    import kplug_lab.sandbox._bytecode as bytecode

    monkeypatch.setattr(bytecode, "engine_build", lambda: "0" * 64)
    assert run(cache)[1] is False


def test_when_writing_bytecode_runs_out_of_memory_the_script_is_evaluated_as_before(
        cache: BytecodeCache, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_room(self: VM, code: str, filename: str = "<eval>") -> bytes:
        raise OutOfMemory("the script exceeded the memory limit of 64 MiB")

    monkeypatch.setattr(VM, "compile", no_room)
    assert run(cache) == ({"list": [2, 4, 6], "text": "t42", "re": True}, False)
    assert cache.misses == 0 and not any(cache.directory.glob("*.qbc"))


def test_only_the_two_latest_versions_of_a_file_stay_on_disk(cache: BytecodeCache) -> None:
    # a plugin rebuilt again and again in development must not fill the disk with stale bytecode
    run(cache, CODE, "other/kernel.js")
    versions = [CODE + f"\n;made.v = {i}; made" for i in range(6)]
    for i, code in enumerate(versions):
        assert run(cache, code)[1] is False
        os.utime(cache.entry_path(code, "p/kernel.js"), (1e9 + i, 1e9 + i))  # built a second after the last
    kept = {p.name for p in cache.directory.glob("*.qbc")}
    assert kept == {cache.entry_path(code, "p/kernel.js").name for code in versions[-2:]} | {
        cache.entry_path(CODE, "other/kernel.js").name}
    assert run(cache, versions[-2])[1] is True  # switching back to the version before is still cached
    assert run(cache, versions[0])[1] is False  # an older one compiles again


def test_entries_named_by_an_older_version_of_the_cache_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "bytecode"
    run(BytecodeCache(folder))
    stale = folder / ("0" * 64 + ".qbc")
    stale.write_bytes(b"old entry")
    os.chmod(stale, 0o600)
    assert run(BytecodeCache(folder))[1] is True
    assert not stale.exists()
