"""nbval runs each notebook against one live server for the whole session.

Fixtures do not run for nbval items, so the server is started in ``pytest_configure`` and exported through
``KPLUG_LAB_URL``/``KPLUG_LAB_TOKEN`` before any kernel starts (kernels inherit this process's environment).
"""

from __future__ import annotations

import os

import pytest
from live_server import LiveServer

_live: LiveServer | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _live
    if not config.getoption("nbval", default=False) and not config.getoption("nbval_lax", default=False):
        return
    _live = LiveServer().start()
    os.environ.update(_live.env)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _live
    if _live is not None:
        _live.stop()
        _live = None
