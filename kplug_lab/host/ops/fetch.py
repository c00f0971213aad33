"""``siyuan.client.fetch``: HTTP requests to the SiYuan kernel (only to it: :mod:`.kernel`), made on an I/O
thread; the kernel's plugin routes are answered by this host (:func:`.rpc.answer_plugin_route`)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Coroutine
from typing import Any

from ...errors import HostOpError
from .. import route_answers
from ..runtime.bounds import human_bytes
from ..runtime.context import Capability, Op
from .encoding import payload, unb64
from .kernel import kernel_headers, kernel_url
from .rpc import answer_plugin_route

__all__ = ["FETCH_TIMEOUT", "FetchOps"]

_IO_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="kplug-io")
#: seconds one request to the kernel may take, connection and body included
FETCH_TIMEOUT = 60.0


class FetchOps(Capability):
    def async_ops(self) -> dict[str, Op]:
        return {"fetch": self.fetch}

    def fetch(self, path: str, init: dict[str, Any] | None = None,
              ) -> concurrent.futures.Future[Any] | Coroutine[Any, Any, dict[str, Any]]:
        init = init or {}
        path = str(path)
        if not path.startswith("/"):
            raise HostOpError("path must start with /")
        url = kernel_url(self.ctx.config, path, HostOpError)
        method = str(init.get("method") or "GET").upper()
        headers = {str(k): str(v) for k, v in (init.get("headers") or {}).items()}
        body = init.get("body")
        content = unb64(body) if isinstance(body, str) and init.get("bodyIsBase64") else (
            body.encode("utf-8") if isinstance(body, str) else None)
        if method in ("GET", "HEAD", "OPTIONS"):
            content = None
        route = route_answers.match(method, path)
        if route is not None:  # the kernel plugins live here, not in the kernel at siyuan_url
            return answer_plugin_route(self.ctx, route, path, content)
        headers.update(kernel_headers(self.ctx.config))
        return _IO_POOL.submit(_do_fetch, url, path, method, headers, content, self.ctx.config.max_fetch_body)


def _do_fetch(url: str, path: str, method: str, headers: dict[str, str], content: bytes | None,
              max_body: int) -> dict[str, Any]:
    """The request, its body read in chunks and refused past ``max_body`` bytes (``HostConfig.max_fetch_body``)."""
    import httpx

    too_large = HostOpError(f"{method} {path}: the response body is larger than {human_bytes(max_body)}, the most "
                            "siyuan.client.fetch reads (max_fetch_body)")
    try:
        with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False, trust_env=False) as client, \
                client.stream(method, url, headers=headers, content=content) as resp:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_body:
                raise too_large
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > max_body:
                    raise too_large
                chunks.append(chunk)
            body = b"".join(chunks)
            del chunks
    except httpx.HTTPError as exc:
        raise HostOpError(f"{method} {path}: {exc}") from None
    joined: dict[str, str] = {}
    for key, value in resp.headers.multi_items():
        canon = "-".join(part.capitalize() for part in key.split("-"))
        joined[canon] = f"{joined[canon]}, {value}" if canon in joined else value
    return {
        "url": path,
        "status": resp.status_code,
        "statusText": f"{resp.status_code} {resp.reason_phrase}".strip(),
        "headers": joined,
        "body": payload(body),
    }
