"""The live server the notebooks run against: a fake SiYuan kernel (for ``siyuan.client``) and ``kplug serve``
in dev mode over a fresh copy of a fixed set of example plugins, with storage in a temporary folder.

Used by ``notebooks/conftest.py`` for nbval, and from a shell to execute the notebooks with the same setup::

    .venv/bin/python notebooks/live_server.py -- .venv/bin/jupyter nbconvert --to notebook --execute \
        --inplace notebooks/*.ipynb

It exports ``KPLUG_LAB_URL`` and ``KPLUG_LAB_TOKEN`` to the command (and so to the notebook kernels).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kplug_lab.notebook._process import ServerProcess
from kplug_lab.testing import FakeSiYuan

REPO = Path(__file__).resolve().parent.parent
#: a fixed set, so that listings in the notebooks do not change when plugins are added to plugins/
PLUGINS = ("counter", "heartbeat", "hello")


class LiveServer:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kplug-notebooks-")
        root = Path(self._tmp.name)
        for name in PLUGINS:
            shutil.copytree(REPO / "plugins" / name, root / "plugins" / name)
        self.siyuan = FakeSiYuan(root / "siyuan-workspace")
        self.server = ServerProcess(root / "plugins", data=root / "data", dev=True,
                                    extra_args=["--cpu-limit", "1"])
        self._root = root

    def start(self) -> LiveServer:
        self.siyuan.start_in_thread()
        self.server.extra_args += ["--siyuan-url", self.siyuan.url, "--siyuan-token", self.siyuan.token]
        try:
            self.server.start()
        except BaseException:
            self.siyuan.stop()
            raise
        return self

    @property
    def env(self) -> dict[str, str]:
        return {"KPLUG_LAB_URL": self.server.url, "KPLUG_LAB_TOKEN": self.server.token}

    def stop(self) -> None:
        self.server.stop()
        self.siyuan.stop()
        self._tmp.cleanup()


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1:]
    live = LiveServer().start()
    try:
        return subprocess.call(command, env={**os.environ, **live.env})
    finally:
        live.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
