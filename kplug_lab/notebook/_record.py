"""``%kplug record``: the calls of a session, saved as a notebook of ``%kplug call`` cells with their answers as
outputs, which nbval replays as a regression test.

Calls come from the session client's history (the magics' and the inspector's calls), or with ``others`` from the
server's ``kplug.call`` feed (every client's calls, the notebook's included). Admin calls (``kplug.*``) are not
recorded. Saved outputs are passed through the sanitising patterns nbval will use, so the file shows what is
compared.
"""

from __future__ import annotations

import configparser
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client import AdminSocket, CallRecord, Client, Notification
from ..client._exceptions import error_from_response
from ._display import CallValue

__all__ = ["RecordedCall", "Recorder", "load_sanitize_patterns", "notebook_of"]

#: the project's patterns (notebooks/nbval_sanitize.cfg), used when the project's file is not found
DEFAULT_PATTERNS: list[tuple[str, str]] = [
    (r"(https?|wss?)://127\.0\.0\.1:\d+", r"\1://127.0.0.1:PORT"),
    (r"\b\d\d:\d\d:\d\d\b", "HH:MM:SS"),
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "TIMESTAMP"),
    (r"\b\d+(\.\d+)? (ms|s)\b", r"N \2"),
    (r"/tmp/[A-Za-z0-9_.-]+", "/tmp/TMPDIR"),
]


@dataclass(frozen=True)
class RecordedCall:
    target: str  # "hello.greet"
    params: Any  # a list (spread), a dict (one argument) or None
    ok: bool
    result: Any = None
    error_type: str | None = None
    error: str | None = None

    def line(self) -> str:
        if self.params is None:
            args: list[Any] = []
        elif isinstance(self.params, list):
            args = self.params
        else:
            args = [self.params]
        text = " ".join(json.dumps(a, ensure_ascii=False) for a in args)
        return f"%kplug call {self.target} {text}".rstrip()


def load_sanitize_patterns(path: Path | None) -> list[tuple[str, str]]:
    """The ``regex``/``replace`` pairs of an nbval sanitize file, in order."""
    if path is None or not path.is_file():
        return list(DEFAULT_PATTERNS)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return [(parser[s]["regex"], parser[s].get("replace", "")) for s in parser.sections() if "regex" in parser[s]]


def _sanitize(text: str, patterns: list[tuple[str, str]]) -> str:
    for regex, replace in patterns:
        text = re.sub(regex, replace, text)
    return text


def notebook_of(calls: list[RecordedCall], patterns: list[tuple[str, str]], *, title: str) -> dict[str, Any]:
    """An nbformat 4 notebook (as a dict): a title, a connect cell, then one ``%kplug call`` cell per call with its
    answer (or its error, in a cell tagged ``raises-exception``)."""
    cells: list[dict[str, Any]] = [
        {"cell_type": "markdown", "metadata": {}, "source": (
            f"# {title}\n\nRecorded with `%kplug record`: each cell replays one call and nbval compares the answer "
            "with the one recorded. Run it against a server with the same plugins:\n\n```sh\nKPLUG_LAB_URL=... "
            "KPLUG_LAB_TOKEN=... pytest --nbval --nbval-current-env --nbval-sanitize-with "
            "notebooks/nbval_sanitize.cfg THIS.ipynb\n```")},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [],
         "source": "# NBVAL_IGNORE_OUTPUT\n%load_ext kplug_lab\n%kplug connect"},
    ]
    for i, call in enumerate(calls, start=2):
        cell: dict[str, Any] = {"cell_type": "code", "metadata": {}, "execution_count": i, "source": call.line()}
        if call.ok:
            value = CallValue(call.target, call.result)
            cell["outputs"] = [{"output_type": "execute_result", "execution_count": i, "metadata": {},
                                "data": {"text/plain": _sanitize(value.text(), patterns),
                                         "text/html": _sanitize(value.html(), patterns)}}]
        else:
            cell["metadata"] = {"tags": ["raises-exception"]}
            cell["outputs"] = [{"output_type": "error", "ename": call.error_type or "Exception",
                                "evalue": _sanitize(call.error or "", patterns), "traceback": []}]
        cells.append(cell)
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _is_admin(target: str) -> bool:
    return target.startswith(("kplug.", "rpc.")) or "." not in target


class Recorder:
    """Collects calls until :meth:`stop`. ``others``: every client's calls, from the server's ``kplug.call`` feed
    (on an admin WebSocket of its own); otherwise the calls made through ``client``."""

    def __init__(self, client: Client, *, others: bool = False) -> None:
        self.client = client
        self.others = others
        self.calls: list[RecordedCall] = []
        self._lock = threading.Lock()
        self._admin: AdminSocket | None = None
        self._quiet: Client | None = None
        if others:
            self._quiet = Client(client.url, client.endpoint.token, timeout=client.timeout)
            self._admin = self._quiet.admin_socket()
            self._admin.subscribe(["call"])
            self._admin.on_notification(self._on_note)
        else:
            client.history.listeners.append(self._on_record)

    def _add(self, call: RecordedCall) -> None:
        with self._lock:
            self.calls.append(call)

    def _on_record(self, record: CallRecord) -> None:
        if _is_admin(record.target):
            return
        self._add(RecordedCall(record.target, record.params, record.ok, record.result, record.error_type,
                               record.error))

    def _on_note(self, note: Notification) -> None:
        if note.method != "kplug.call":
            return
        p = note.params or {}
        target = f"{p.get('plugin')}.{p.get('method')}"
        params = p.get("params")
        if "error" in p:
            exc = error_from_response(p["error"], target)
            self._add(RecordedCall(target, params, False, None, type(exc).__name__, str(exc)))
        else:
            self._add(RecordedCall(target, params, True, p.get("result")))

    def flush(self) -> None:
        """With ``others``: wait until every call answered so far has arrived. The host pushes a call's event before
        the caller gets its answer, and pushes go out in order, so one round trip on the feed's socket is enough."""
        if self._admin is not None:
            self._admin.call("kplug.list")

    def stop(self) -> None:
        self.flush()
        if self._on_record in self.client.history.listeners:
            self.client.history.listeners.remove(self._on_record)
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._quiet is not None:
            self._quiet.close()
            self._quiet = None

    def save(self, path: Path, patterns: list[tuple[str, str]], *, title: str | None = None) -> int:
        """Write the notebook; the number of call cells."""
        self.flush()
        with self._lock:
            calls = list(self.calls)
        nb = notebook_of(calls, patterns, title=title or f"Regression test: {path.stem}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        return len(calls)
