"""One host per workspace: the OS lock, the standby, the takeover (in-process; the SIGKILL case is in
test_faults.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kplug_testing import write_plugin

from kplug_lab.durable.lock import HostLock
from kplug_lab.errors import PluginNotRunning
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager

PING = 'siyuan.rpc.bind("ping", () => "pong");'


async def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_lock_is_exclusive_all_or_none_and_released(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    first = HostLock([a, b], owner_file=b / "host.json")
    assert first.try_acquire({"note": "first"})
    assert first.owner() is not None and first.owner()["note"] == "first"  # type: ignore[index]
    overlapping = HostLock([b, c])
    assert not overlapping.try_acquire()
    # all-or-none: the failed attempt left c free
    assert HostLock([c]).try_acquire()
    first.release()
    assert not (b / "host.json").exists()
    again = HostLock([a])
    assert again.try_acquire()
    again.release()


async def test_second_host_stands_by_answers_not_running_and_takes_over(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    write_plugin(plugins, "p", PING)
    config = {"data_dir": tmp_path / "data", "hot_reload": False}
    first = PluginManager(HostConfig(**config), plugins_dir=plugins)
    second = PluginManager(HostConfig(**config), plugins_dir=plugins)
    await first.start()
    await second.start()
    try:
        assert await first.call("p", "ping") == "pong"
        assert second.standby and not first.standby
        info = second.get_plugin("p")
        assert info is not None and info.state == PluginState.INACTIVE
        assert "standing by" in (info.error or "")
        with pytest.raises(PluginNotRunning):
            await second.call("p", "ping")
        with pytest.raises(PluginNotRunning):
            await second.reload("p")  # a standby never starts a plugin, even when asked
        assert second.plugins == {}
        await first.close()
        await _wait(lambda: (i := second.get_plugin("p")) is not None and i.state == PluginState.RUNNING)
        assert await second.call("p", "ping") == "pong"
        assert not second.standby
    finally:
        await first.close()
        await second.close()


async def test_hosts_on_different_folders_both_run(tmp_path: Path) -> None:
    managers = []
    for name in ("one", "two"):
        write_plugin(tmp_path / name, "p", PING)
        m = PluginManager(HostConfig(data_dir=tmp_path / f"data-{name}", hot_reload=False),
                          plugins_dir=tmp_path / name)
        await m.start()
        managers.append(m)
    try:
        assert [await m.call("p", "ping") for m in managers] == ["pong", "pong"]
    finally:
        for m in managers:
            await m.close()


async def test_shared_data_directory_is_one_owner_too(tmp_path: Path) -> None:
    write_plugin(tmp_path / "one", "p", PING)
    write_plugin(tmp_path / "two", "p", PING)
    data = tmp_path / "data"
    first = PluginManager(HostConfig(data_dir=data, hot_reload=False), plugins_dir=tmp_path / "one")
    second = PluginManager(HostConfig(data_dir=data, hot_reload=False), plugins_dir=tmp_path / "two")
    await first.start()
    await second.start()
    try:
        assert second.standby  # its durable store would be shared with the first host's
    finally:
        await first.close()
        await second.close()
