"""A real ``kplug serve`` (child process) over a copy of the example plugins, and a real IPython shell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from kplug_testing import serve_examples

from kplug_lab.notebook._process import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serve_examples(tmp_path_factory.mktemp("kplug")) as proc:
        yield proc


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """The in-process IPython shell with the extension loaded and no connection yet (env cleared)."""
    monkeypatch.delenv("KPLUG_LAB_URL", raising=False)
    monkeypatch.delenv("KPLUG_LAB_TOKEN", raising=False)
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "kplug_lab")
    yield shell
    shell.magics_manager.registry["KplugMagics"].session.close()


@pytest.fixture
def connected(ip: InteractiveShell, server: ServerProcess) -> InteractiveShell:
    ip.run_line_magic("kplug", f"connect {server.url} {server.token}")
    return ip
