"""Odd and hostile plugin folders (spec §1): each one is either accepted as SiYuan would, or refused with an error
that names the file and what is wrong, and never stops the other plugins from starting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kplug_testing import Host

from kplug_lab.errors import ManifestError
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.manifest import MAX_MANIFEST_BYTES, read_plugin

PING = b"siyuan.rpc.bind('ping', () => 'pong');"


def folder(root: Path, name: str, manifest: bytes | None = None, kernel: bytes | None = PING) -> Path:
    d = root / name
    d.mkdir(parents=True)
    if manifest is None:
        manifest = json.dumps({"name": name, "version": "1.0.0", "kernels": ["all"]}).encode()
    (d / "plugin.json").write_bytes(manifest)
    if kernel is not None:
        (d / "kernel.js").write_bytes(kernel)
    return d


def refusal(tmp_path: Path, d: Path) -> str:
    with pytest.raises(ManifestError) as caught:
        read_plugin(d, tmp_path / "storage")
    return str(caught.value)


def test_a_utf8_bom_before_plugin_json_is_accepted(tmp_path: Path) -> None:
    d = folder(tmp_path, "bom", b'\xef\xbb\xbf{"version": "2.0.0", "kernels": ["all"]}')
    assert read_plugin(d, tmp_path / "storage").version == "2.0.0"


def test_comments_in_plugin_json_are_refused_with_a_hint(tmp_path: Path) -> None:
    d = folder(tmp_path, "commented", b'{\n  // the platforms\n  "kernels": ["all"]\n}')
    message = refusal(tmp_path, d)
    assert str(d / "plugin.json") in message and "invalid JSON" in message and "allows no comments" in message


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "is empty"),
    (b"   \n", "is empty"),
    (b"null", "must hold a JSON object, got null"),
    (b'["all"]', "must hold a JSON object, got an array"),
    (b'{"kernels": "all"}', '"kernels" must be a list of platform names such as ["all"], got "all"'),
    (b'{"kernels": [1]}', '"kernels" must be a list of platform names'),
    (b'{"kernels": ["all"], "version": 1}', '"version" must be a string, got 1'),
    (b'{"kernels": ["all"], "name": ["x"]}', '"name" must be a string'),
    (b'{"kernels": ["all"]', "invalid JSON"),
    (b'\xff\xfe{"kernels": ["all"]}', "not UTF-8 text"),
])
def test_malformed_plugin_json_is_refused_naming_file_and_field(tmp_path: Path, content: bytes, expected: str) -> None:
    d = folder(tmp_path, "odd", content)
    message = refusal(tmp_path, d)
    assert message.startswith(str(d / "plugin.json")) and expected in message


def test_deeply_nested_plugin_json_is_refused_not_a_recursion_crash(tmp_path: Path) -> None:
    d = folder(tmp_path, "nested", b"[" * 100_000 + b"]" * 100_000)
    assert "nested too deeply" in refusal(tmp_path, d)


def test_a_huge_plugin_json_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    d = folder(tmp_path, "huge", b'{"kernels": ["all"], "x": "' + b"a" * (MAX_MANIFEST_BYTES + 10) + b'"}')
    assert "larger than 1024 KiB" in refusal(tmp_path, d)


def test_plugin_json_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "dirmanifest"
    (d / "plugin.json").mkdir(parents=True)
    (d / "kernel.js").write_bytes(PING)
    assert refusal(tmp_path, d) == f"{d / 'plugin.json'}: is a directory, not a file"


def test_missing_kernel_js_and_kernel_js_that_is_a_directory_are_told_apart(tmp_path: Path) -> None:
    missing = folder(tmp_path, "nokernel", kernel=None)
    assert "no kernel.js" in refusal(tmp_path, missing)
    as_dir = folder(tmp_path, "dirkernel", kernel=None)
    (as_dir / "kernel.js").mkdir()
    assert refusal(tmp_path, as_dir) == f"{as_dir / 'kernel.js'}: is a directory; the kernel part of a plugin " \
                                        "must be a file kernel.js"


def test_a_broken_i18n_file_leaves_i18n_empty_with_a_warning(tmp_path: Path) -> None:
    d = folder(tmp_path, "i18n")
    (d / "i18n").mkdir()
    (d / "i18n" / "en.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    source = read_plugin(d, tmp_path / "storage")
    assert source.i18n == {}
    assert any("nested too deeply" in w and "i18n is empty" in w for w in source.warnings)


async def test_bad_folders_are_reported_and_the_good_ones_still_start(host: Host) -> None:
    folder(host.root, "good")
    folder(host.root, "nested", b"[" * 100_000 + b"]" * 100_000)
    folder(host.root, "commented", b'{\n// x\n"kernels": ["all"]}')
    folder(host.root, "nokernel", kernel=None)
    m = await host.start()
    assert await m.call("good", "ping") == "pong"
    reported = "\n".join(str(e) for e in m.load_errors)
    for name in ("nested", "commented", "nokernel"):
        assert str(host.root / name) in reported
        assert m.get_plugin(name) is None


async def test_kernel_js_with_a_bom_runs(host: Host) -> None:
    folder(host.root, "jsbom", kernel=b"\xef\xbb\xbf" + PING)
    m = await host.start()
    assert await m.call("jsbom", "ping") == "pong"


async def test_kernel_js_that_is_not_utf8_runs_with_replacement_characters_and_a_warning(host: Host) -> None:
    # goja reads the bytes as UTF-8 and turns invalid ones into U+FFFD, so a Latin-1/GBK file still runs in SiYuan
    folder(host.root, "latin1", kernel=b"siyuan.rpc.bind('caf', () => 'caf\xe9');")
    m = await host.start()
    info = m.get_plugin("latin1")
    assert info is not None and info.state == PluginState.RUNNING, info
    assert await m.call("latin1", "caf") == "caf\ufffd"
    assert any("not UTF-8 text" in line and "save the file as UTF-8" in line for line in host.logs("latin1"))


async def test_a_nul_byte_inside_kernel_js_does_not_cut_the_source(host: Host) -> None:
    folder(host.root, "nul", kernel=b"siyuan.rpc.bind('s', () => 'a\x00b');")
    m = await host.start()
    assert await m.call("nul", "s") == "a\x00b"


async def test_a_kernel_js_past_16_mib_is_refused_with_a_clear_error_and_others_start(host: Host) -> None:
    folder(host.root, "good")
    folder(host.root, "huge", kernel=PING + b" " * (16 * 1024 * 1024))
    m = await host.start()
    assert await m.call("good", "ping") == "pong"
    info = m.get_plugin("huge")
    reported = "\n".join(str(e) for e in m.load_errors) + (info.error or "" if info else "")
    assert "larger than 16 MiB" in reported and (info is None or info.state == PluginState.ERROR)
