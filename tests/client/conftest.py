"""A real ``kplug serve`` (child process) over a copy of the example plugins, shared by the client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kplug_testing import serve_examples

from kplug_lab.notebook._process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serve_examples(tmp_path_factory.mktemp("kplug")) as proc:
        yield proc
