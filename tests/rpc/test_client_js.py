"""Runs the node unit tests of kplug-client.js (``kplug_client.test.mjs``): SiYuan's retry rule, request
shapes, reconnect with backoff. The browser test covers the same client against a real server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_kplug_client_js_unit_tests_pass_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing: the JS client's unit tests need it")
        pytest.skip("node is not installed")
    done = subprocess.run([node, "--test", str(HERE / "kplug_client.test.mjs")], capture_output=True, text=True,
                          timeout=120, cwd=HERE)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
