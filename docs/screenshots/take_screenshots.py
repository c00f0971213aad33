"""Take the workbench screenshots in docs/screenshots/ the way a new user meets the workbench.

It runs ``make run PORT=...`` in a checkout (by default this one; for the "fresh clone" check, clone first and
pass ``--repo``), reads the JupyterLab URL with its token from the output, opens
``notebooks/01-getting-started.ipynb`` in headless Chromium, runs every cell with JupyterLab's
Run > Run All Cells menu and waits until every cell has run. Then it checks what a user would see (no error
output outside the cells tagged ``raises-exception``, the inspector rendered as widgets) and saves:

* ``getting-started.png``: the whole notebook after Run All;
* ``inspector.png``: the ``%kplug inspect hello`` output, after one call made with its form.

The server gets its own JupyterLab settings and workspaces folders (autosave off, so running the notebook
never rewrites the committed file; no news prompt) and is stopped at the end::

    .venv/bin/python docs/screenshots/take_screenshots.py [--repo DIR] [--port N] [--out DIR]

Needs Chromium (``make browser`` installs Debian's) and playwright (a test dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright

HERE = Path(__file__).resolve().parent
NOTEBOOK = "notebooks/01-getting-started.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
#: JupyterLab prints the default URL (the getting-started notebook) with its token
URL_PATTERN = re.compile(r"(http://127\.0\.0\.1:\d+/)\S*\?token=([0-9a-f]+)")
#: JupyterLab user settings for the screenshot session only
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MakeRun:
    """``make run`` in its own process group, its output copied to a log file and scanned for the URL."""

    def __init__(self, repo: Path, port: int, scratch: Path, timeout: float) -> None:
        self.log_path = scratch / "make-run.log"
        settings = scratch / "lab-settings"
        for name, value in LAB_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
               "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "lab-workspaces")}
        self._url: str | None = None
        self.token = ""
        self._found = threading.Event()
        self.proc = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=repo, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._found.wait(timeout):
            self.stop()
            raise SystemExit(f"make run printed no JupyterLab URL within {timeout:.0f} s:\n{self.log_tail()}")
        if self._url is None:
            raise SystemExit(f"make run exited with {self.proc.wait()} before printing a URL:\n{self.log_tail()}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("w") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                match = URL_PATTERN.search(line)
                if match and self._url is None:
                    self._url, self.token = match.groups()
                    self._found.set()
        self._found.set()

    @property
    def url(self) -> str:
        assert self._url is not None
        return self._url

    def stop(self) -> None:
        """SIGTERM to the group started above (make and jupyter lab, which stops its kernels), SIGKILL after 30 s.

        Waiting for make is not enough: make dies at once while JupyterLab is still shutting down."""
        if self._group_alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            if self._group_alive():
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)

    def _group_alive(self) -> bool:
        """Whether a process of the group still runs (zombies left for a parent to reap do not count)."""
        self.proc.poll()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid and fields[0] != "Z":
                return True
        return False

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])


def notebook_url(server: MakeRun) -> str:
    return f"{server.url}lab/tree/{NOTEBOOK}?token={server.token}"


def cells_tagged_raises(repo: Path) -> set[int]:
    cells = json.loads((repo / NOTEBOOK).read_text())["cells"]
    return {i for i, c in enumerate(cells) if "raises-exception" in c.get("metadata", {}).get("tags", [])}


def wait_until_all_ran(page: Page, timeout: float) -> None:
    """Every code cell shows an execution count ("[3]:"), none is queued ("[*]:") or never ran ("[ ]:")."""
    deadline = time.monotonic() + timeout
    prompts: list[str] = []
    while time.monotonic() < deadline:
        prompts = [p or "" for p in page.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()]
        if prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts):
            return
        page.wait_for_timeout(500)
    raise SystemExit(f"not every cell ran within {timeout:.0f} s; prompts: {prompts}")


def check_outputs(page: Page, allowed_errors: set[int]) -> None:
    cells = page.locator(".jp-Notebook .jp-Cell")
    problems = []
    for i in range(cells.count()):
        cell = cells.nth(i)
        has_error = cell.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count()
        if has_error and i not in allowed_errors:
            problems.append(f"cell {i}: {cell.locator('.jp-OutputArea').inner_text()[:500]}")
    text = page.locator(".jp-Notebook").inner_text()
    for sign in ("Error displaying widget", "Failed to display", "VBox(children="):
        if sign in text:
            problems.append(f"the page shows {sign!r}: a widget did not render")
    if problems:
        raise SystemExit("unexpected output:\n" + "\n".join(problems))


def inspector_cell(page: Page) -> Locator:
    """The cell that runs ``%kplug inspect hello`` (its source and the widget), once the widget rendered."""
    source = page.locator(".jp-InputArea-editor", has_text="%kplug inspect hello")
    inspector = page.locator(".jp-CodeCell").filter(has=source)
    inspector.locator(".jp-OutputArea .jupyter-widgets.widget-dropdown").first.wait_for(timeout=30_000)
    return inspector


def use_inspector(inspector: Locator) -> None:
    """One call through the inspector's form, so the screenshot shows a result and the call in the history."""
    method = inspector.locator(".widget-dropdown").filter(has_text="method").locator("select")
    method.select_option("greet")
    inspector.locator(".widget-text input").fill('"Ada"')
    inspector.get_by_role("button", name="Call").click()
    inspector.get_by_text("Hello, Ada!").first.wait_for(timeout=30_000)


def screenshot_whole_notebook(page: Page, path: Path) -> None:
    """JupyterLab scrolls inside the notebook panel: make the window as tall as the cells, then scroll to the top.

    The height comes from the last cell, not the panel's scrollHeight, which includes the blank space JupyterLab
    adds below the last cell so it can be scrolled to the top."""
    scroller = page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer")
    height = scroller.evaluate(
        "e => e.scrollTop + e.querySelector('.jp-Cell:last-child').getBoundingClientRect().bottom")
    width = page.viewport_size["width"] if page.viewport_size else 1280
    page.set_viewport_size({"width": width, "height": int(height) + 60})  # + the status bar
    scroller.evaluate("e => { e.scrollTop = 0; }")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(path), full_page=True)


def menu(page: Page, name: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{name}$")).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def drive(page: Page, server: MakeRun, repo: Path, out: Path, timeout: float) -> None:
    page.goto(notebook_url(server))
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for(timeout=timeout * 1000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=timeout * 1000)
    if page.locator("#jp-left-stack").is_visible():
        page.get_by_title("File Browser (Ctrl+Shift+F)").click()  # more width for the notebook
    menu(page, "Edit", "Clear Outputs of All Cells")  # so that only this run's outputs count
    menu(page, "Run", "Run All Cells")
    wait_until_all_ran(page, timeout)
    inspector = inspector_cell(page)
    check_outputs(page, cells_tagged_raises(repo))
    screenshot_whole_notebook(page, out / "getting-started.png")
    use_inspector(inspector)
    inspector.scroll_into_view_if_needed()
    inspector.screenshot(path=str(out / "inspector.png"))


def run(repo: Path, port: int, out: Path, start_timeout: float, timeout: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kplug-screenshots-") as scratch:
        server = MakeRun(repo, port, Path(scratch), start_timeout)
        try:
            print(f"make run is serving {server.url}")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    try:
                        drive(page, server, repo, out, timeout)
                    except BaseException:
                        failure = Path(tempfile.gettempdir()) / "kplug-screenshots-failure.png"
                        page.screenshot(path=str(failure), full_page=True)
                        print(f"what the browser showed: {failure}\nmake run's last lines:\n{server.log_tail()}",
                              file=sys.stderr)
                        raise
                finally:
                    browser.close()
        finally:
            server.stop()
    print(f"wrote {out / 'getting-started.png'} and {out / 'inspector.png'}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent.parent, help="the checkout to `make run` in")
    parser.add_argument("--port", type=int, default=0, help="JupyterLab's port (default: a free one)")
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNG files go")
    parser.add_argument("--start-timeout", type=float, default=900,
                        help="seconds for make run to print its URL (a fresh clone builds its .venv first)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds for each step in the browser")
    args = parser.parse_args(argv)
    run(args.repo.resolve(), args.port or free_port(), args.out.resolve(), args.start_timeout, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
