"""Shared fixtures: a real PluginManager on temporary plugin folders (no mocked VM anywhere)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings
from kplug_testing import Host

# The fuzz tests (tests/*/test_fuzz_*.py) run the same examples on every `make test`, so a red run is never luck;
# KPLUG_FUZZ_EXPLORE=1 draws new random examples (and ten times as many) to look for new failures.
settings.register_profile("repeatable", derandomize=True, database=None, max_examples=100)
settings.register_profile("explore", database=None, max_examples=1000)
settings.load_profile("explore" if os.environ.get("KPLUG_FUZZ_EXPLORE") else "repeatable")


@pytest.fixture

async def host(tmp_path: Path) -> AsyncIterator[Host]:
    h = Host(tmp_path)
    yield h
    if h.manager is not None:
        await h.manager.close()
