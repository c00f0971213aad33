"""How the host halves of ``siyuan.client`` reach the SiYuan kernel (spec §3.7): only at the kernel's own URL,
with its token. What comes back is handed to the plugin's JS with :meth:`PluginContext.call_js`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..runtime.config import HostConfig

__all__ = ["kernel_headers", "kernel_url"]


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
