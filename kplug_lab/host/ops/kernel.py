"""How the host halves of ``siyuan.client`` reach the SiYuan kernel (spec §3.7): only at the kernel's own URL,
with its token, and how what comes back is handed to the plugin's JS (as a job on the plugin's actor)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ...errors import CPUTimeout, JSError, OutOfMemory

if TYPE_CHECKING:
    from ..runtime.config import HostConfig
    from ..runtime.plugin import Plugin

__all__ = ["kernel_headers", "kernel_url", "post_to_js"]


def kernel_url(config: HostConfig, path: str, error: type[Exception]) -> str:
    """The kernel URL of ``path``; raises ``error`` for anything that would reach another host."""
    base = config.siyuan_url.rstrip("/")
    url = base + path
    if urlsplit(url).netloc != urlsplit(base).netloc or "\\" in path or "@" in path.split("?")[0]:
        raise error(f"siyuan.client only reaches the SiYuan kernel: {path!r} is not a kernel path")
    return url


def kernel_headers(config: HostConfig) -> dict[str, str]:
    """The kernel's token in both headers SiYuan accepts; nothing when no token is configured."""
    token = config.siyuan_token
    return {"Authorization": f"Token {token}", "X-Auth-Token": token} if token else {}


def post_to_js(plugin: Plugin, api: str, handler: str, sid: int, event: dict[str, Any]) -> None:
    """Run ``handler(sid, event)`` in the plugin's VM on its own thread; a failing JS handler is logged as
    ``api``'s, and nothing runs once the VM is gone or crashed."""

    def run() -> None:
        vm = plugin.vm
        if vm is None or vm.crashed:
            return
        try:
            vm.call(handler, sid, event)
        except (JSError, CPUTimeout, OutOfMemory) as exc:
            plugin.log("error", f"{api} {event['type']} handler failed: {exc}")

    plugin.post_vm(run)
