"""Shared fixtures: a real PluginManager on temporary plugin folders (no mocked VM anywhere)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kplug_testing import Host


@pytest.fixture

async def host(tmp_path: Path) -> AsyncIterator[Host]:
    h = Host(tmp_path)
    yield h
    if h.manager is not None:
        await h.manager.close()
