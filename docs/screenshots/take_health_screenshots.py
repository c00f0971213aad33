"""Take ``docs/screenshots/top.png`` and ``health.png``: ``%kplug top`` and the inspector's health charts, rendered by
JupyterLab in headless Chromium.

It starts JupyterLab with the kplug_lab extension (this Python's environment) over a copy of ``plugins/``, writes a
scratch notebook that makes a few calls, shows ``%kplug top`` and ``%kplug inspect counter``, runs it with Run All
Cells, waits until the table and the charts have refreshed with the host's numbers, takes the screenshots and
stops the server::

    .venv/bin/python docs/screenshots/take_health_screenshots.py [--out DIR]

Needs Chromium (``make browser``) and playwright (a test dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from take_screenshots import CHROMIUM_ARGS, LAB_SETTINGS, free_port, menu, wait_until_all_ran  # noqa: E402

CELLS = [
    "%load_ext kplug_lab\n%kplug connect",
    "for i in range(20):\n    %kplug call counter.increment 1\n%kplug call hello.greet \"Ada\"",
    "%kplug bench hello.echo \"hi\" -n 300 --concurrency 2",
    "%kplug top --interval 1",
    "%kplug inspect counter",
]


def notebook() -> dict[str, object]:
    cells = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": c}
             for c in CELLS]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                        "language": "python"}}}


def wait_for_server(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args(argv)
    repo = HERE.parent.parent
    with tempfile.TemporaryDirectory(prefix="kplug-health-shots-") as scratch_name:
        scratch = Path(scratch_name)
        shutil.copytree(repo / "plugins", scratch / "plugins")
        (scratch / "health.ipynb").write_text(json.dumps(notebook()))
        settings = scratch / "lab-settings"
        for name, value in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(value))
        port, token = free_port(), secrets.token_hex(16)
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
               "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "lab-workspaces")}
        log = (scratch / "lab.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={scratch}", "--allow-root",
             f"--KplugLabApp.plugins_dir={scratch / 'plugins'}", "--KplugLabApp.dev_mode=True"],
            cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}/"
            wait_for_server(f"{base}api/status?token={token}", args.timeout)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 1000})
                    page.goto(f"{base}lab/tree/health.ipynb?token={token}")
                    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=args.timeout * 1000)
                    if page.locator("#jp-left-stack").is_visible():
                        page.get_by_title("File Browser (Ctrl+Shift+F)").click()
                    menu(page, "Run", "Run All Cells")
                    wait_until_all_ran(page, args.timeout)
                    cells = page.locator(".jp-CodeCell")
                    top, inspector = cells.nth(3), cells.nth(4)
                    top.get_by_text("counter").first.wait_for(timeout=30_000)
                    inspector.locator(".jp-OutputArea img").first.wait_for(timeout=30_000)
                    page.wait_for_timeout(4000)  # a few refreshes: the charts draw lines, not single points
                    args.out.mkdir(parents=True, exist_ok=True)
                    top.scroll_into_view_if_needed()
                    top.screenshot(path=str(args.out / "top.png"))
                    image = inspector.locator(".jp-OutputArea img").first
                    image.scroll_into_view_if_needed()
                    image.screenshot(path=str(args.out / "health.png"))
                finally:
                    browser.close()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()
    print(f"wrote {args.out / 'top.png'} and {args.out / 'health.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
