"""Never a second copy of a plugin's worker: which kernel plugins SiYuan's own host runs.

SiYuan 3.7+ runs ``kernel.js`` itself for every plugin enabled in its workspace. A plugin that runs there and
here runs twice (two workers on one storage, every event handled twice). The manager asks the kernel it serves
(``/api/plugin/listLoadedPlugins``, spec §5.7) before it starts plugins and every
``HostConfig.siyuan_poll_interval`` seconds after, and does not run what SiYuan runs.

Every plugin SiYuan lists counts, whatever its state: a plugin in ``error`` there is still enabled there, and
SiYuan restarts it when its ``kernel.js`` changes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from .config import HostConfig

__all__ = ["RUNS_IN_SIYUAN", "plugins_siyuan_runs"]

log = logging.getLogger("kplug_lab.host")

#: why a plugin is not run here (its PluginInfo's ``error``), with what to do about it
RUNS_IN_SIYUAN = ("running in SiYuan's own host; disable it there to run it sandboxed here "
                  "(the steps: docs/beside-siyuan.md)")

#: how long one question to the kernel may take: the answer is a small list, or the kernel is not there
_TIMEOUT_S = 3.0


async def plugins_siyuan_runs(config: HostConfig) -> frozenset[str] | None:
    """The names of the kernel plugins SiYuan's own host runs, or None when the kernel did not say (not
    reachable, refused the token, answered something else): the caller then keeps what it knew."""
    url = config.siyuan_url.rstrip("/") + "/api/plugin/listLoadedPlugins"
    headers = {"Authorization": f"Token {config.siyuan_token}"} if config.siyuan_token else {}
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_S, trust_env=False) as client:
            response = await client.post(url, json={}, headers=headers)
        envelope = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.debug("cannot ask %s which plugins SiYuan runs: %s", url, exc)
        return None
    if not isinstance(envelope, dict) or envelope.get("code") != 0:
        log.warning("cannot ask %s which plugins SiYuan runs: HTTP %d %s", url, response.status_code,
                    (envelope.get("msg") if isinstance(envelope, dict) else "") or "")
        return None
    data = envelope.get("data") or []
    if not isinstance(data, list):
        return None
    return frozenset(p["name"] for p in data if isinstance(p, dict) and isinstance(p.get("name"), str))
