"""Finding the kplug_lab server a notebook should talk to, when nobody said which."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Connection", "discover", "from_env", "from_jupyter"]

URL_VAR = "KPLUG_LAB_URL"
TOKEN_VAR = "KPLUG_LAB_TOKEN"


@dataclass(frozen=True)
class Connection:
    url: str
    token: str | None
    source: str  # how it was found: "explicit", "KPLUG_LAB_URL", "jupyter server (pid N)", "local"


def from_env(environ: dict[str, str] | None = None) -> Connection | None:
    env = os.environ if environ is None else environ
    url = env.get(URL_VAR, "").strip()
    if not url:
        return None
    return Connection(url, env.get(TOKEN_VAR) or None, URL_VAR)


def _server_url(info: dict[str, Any]) -> str:
    """The server's URL including its base_url (``url`` usually has it; older servers leave it out)."""
    url = str(info.get("url") or "")
    base = "/" + str(info.get("base_url") or "/").strip("/")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if base != "/" and not path.endswith(base.rstrip("/")):
        path = path + base
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/") + "/", "", ""))


def from_jupyter(parent_pid: int | None = None, servers: list[dict[str, Any]] | None = None) -> Connection | None:
    """The Jupyter server that started this kernel, matched on ``JPY_PARENT_PID`` (set by jupyter_server for
    the kernels it starts). ``servers`` defaults to ``list_running_servers()``."""
    if parent_pid is None:
        raw = os.environ.get("JPY_PARENT_PID", "")
        if not raw.isdigit():
            return None
        parent_pid = int(raw)
    if servers is None:
        try:
            from jupyter_server.serverapp import list_running_servers
        except ImportError:
            return None
        servers = list(list_running_servers())
    for info in servers:
        if info.get("pid") == parent_pid:
            return Connection(_server_url(info), info.get("token") or None, f"jupyter server (pid {parent_pid})")
    return None


def discover() -> Connection | None:
    """``KPLUG_LAB_URL``/``KPLUG_LAB_TOKEN`` first, then the Jupyter server that started this kernel."""
    return from_env() or from_jupyter()
