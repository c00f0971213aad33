"""A real ``kplug serve`` (child process) over a copy of the example plugins, shared by the client tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kplug_lab.notebook._process import ServerProcess

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("kplug")
    shutil.copytree(REPO / "plugins", root / "plugins")
    with ServerProcess(root / "plugins", data=root / "data") as proc:
        yield proc
