"""Never a second copy of a plugin's worker (kplug_lab/host/runtime/one_copy.py): a plugin SiYuan's own host runs
(the kernel's ``listLoadedPlugins``) is not run here, is stopped here when SiYuan starts it, and is started here
when SiYuan stops it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kplug_testing import captured_logs, write_petals, write_plugin

from kplug_lab.errors import PluginNotRunning
from kplug_lab.host.runtime.api import PluginState
from kplug_lab.host.runtime.config import HostConfig
from kplug_lab.host.runtime.manager import PluginManager
from kplug_lab.testing.fake_siyuan import FakeSiYuan

HELLO = 'siyuan.rpc.bind("hi", () => "hi from kplug_lab");'
POLL_S = 0.05


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[FakeSiYuan]:
    ws = tmp_path / "ws"
    write_plugin(ws / "data" / "plugins", "hello", HELLO)
    write_plugin(ws / "data" / "plugins", "other", HELLO)
    write_petals(ws, [{"name": "hello", "enabled": True}, {"name": "other", "enabled": True}])
    async with FakeSiYuan(ws) as k:
        yield k


async def manager_for(kernel: FakeSiYuan, **config: object) -> PluginManager:
    settings: dict[str, object] = {"siyuan_poll_interval": POLL_S, **config}
    manager = PluginManager(HostConfig(hot_reload=False, siyuan_url=kernel.url, siyuan_token=kernel.token,
                                       **settings),  # type: ignore[arg-type]
                            workspace=kernel.workspace)
    await manager.start()
    return manager


async def state_becomes(manager: PluginManager, name: str, state: PluginState, timeout: float = 10.0) -> None:
    """Wait until ``name`` is listed in ``state`` (woken by the host's state changes and by each poll)."""
    changed = asyncio.Event()
    unsubscribe = manager.subscribe_states(lambda n, s: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while (info := manager.get_plugin(name)) is None or info.state != state:
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), POLL_S * 4)
    finally:
        unsubscribe()


async def test_a_plugin_siyuan_runs_is_not_started_and_says_why(kernel: FakeSiYuan) -> None:
    kernel.loaded_plugins["hello"] = 2
    with captured_logs("kplug_lab.host") as records:
        manager = await manager_for(kernel)
    try:
        info = manager.get_plugin("hello")
        assert info is not None and info.state == PluginState.STOPPED
        assert info.error is not None and "running in SiYuan's own host; disable it there" in info.error
        assert info.runs_in_siyuan and "hello" not in manager.plugins
        assert manager.get_plugin("other").state == PluginState.RUNNING  # type: ignore[union-attr]
        with pytest.raises(PluginNotRunning):
            await manager.call("hello", "hi", [])
        with pytest.raises(PluginNotRunning, match="SiYuan's own host"):
            await manager.reload("hello")
        assert any("not starting hello" in r.getMessage() for r in records)
        assert kernel.requests_to("/api/plugin/listLoadedPlugins")[0].authorized
    finally:
        await manager.close()


async def test_siyuan_stops_it_then_it_starts_here_and_siyuan_starts_it_again_then_it_stops_here(
        kernel: FakeSiYuan) -> None:
    kernel.loaded_plugins["hello"] = 2
    manager = await manager_for(kernel)
    try:
        del kernel.loaded_plugins["hello"]
        await state_becomes(manager, "hello", PluginState.RUNNING)
        assert await manager.call("hello", "hi", []) == "hi from kplug_lab"

        states: list[PluginState] = []
        stopped = asyncio.Event()

        def seen(name: str, state: PluginState) -> None:
            if name == "hello":
                states.append(state)
                if state == PluginState.STOPPED:
                    stopped.set()

        manager.subscribe_states(seen)
        kernel.loaded_plugins["hello"] = 0  # any state SiYuan lists counts, even ready
        await asyncio.wait_for(stopped.wait(), 10)
        assert manager.get_plugin("hello").state == PluginState.STOPPED  # type: ignore[union-attr]
        assert states == [PluginState.STOPPING, PluginState.STOPPED]  # onunload ran: a clean stop
        assert "hello" not in manager.plugins
        assert manager.get_plugin("other").state == PluginState.RUNNING  # type: ignore[union-attr]
    finally:
        await manager.close()


async def test_an_unreachable_kernel_blocks_no_plugin_and_changes_nothing_later(kernel: FakeSiYuan) -> None:
    url = kernel.url
    await kernel.aclose()
    manager = PluginManager(HostConfig(hot_reload=False, siyuan_url=url, siyuan_poll_interval=POLL_S),
                            workspace=kernel.workspace)
    await manager.start()
    try:
        assert {i.name: i.state for i in manager.list_plugins()} == {"hello": PluginState.RUNNING,
                                                                    "other": PluginState.RUNNING}
        assert manager.siyuan_runs == frozenset()
    finally:
        await manager.close()


async def test_the_check_can_be_turned_off(kernel: FakeSiYuan) -> None:
    kernel.loaded_plugins["hello"] = 2
    manager = await manager_for(kernel, siyuan_poll_interval=0)
    try:
        assert manager.get_plugin("hello").state == PluginState.RUNNING  # type: ignore[union-attr]
        assert not kernel.requests_to("/api/plugin/listLoadedPlugins")
    finally:
        await manager.close()
