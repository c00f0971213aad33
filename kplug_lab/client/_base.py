"""What the sync and async clients share: URLs, headers, HTTP status handling, batch bookkeeping."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

from ._exceptions import AuthenticationFailed, ProtocolError
from ._models import _OMITTED, make_params, make_request, next_id, outcome_of

__all__ = ["BatchEntries", "Endpoint"]


class Endpoint:
    """Where a kplug_lab server lives: ``url`` (ending in ``/``, any base_url included) and its token."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"kplug_lab URL must look like http://127.0.0.1:8765/ (with any base_url), got {url!r}")
        self.url = url if url.endswith("/") else url + "/"
        self.token = token or None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"} if self.token else {}

    def plugin_path(self, plugin: str) -> str:
        if not plugin:
            raise ValueError("plugin name must not be empty")
        return "api/plugin/rpc/" + quote(plugin, safe="")

    admin_path = "kplug/api/rpc"

    def ws_url(self, path: str) -> str:
        return "ws" + self.url[len("http"):] + path

    def ws_plugin_url(self, plugin: str) -> str:
        return self.ws_url("ws/plugin/rpc/" + quote(plugin, safe=""))

    def ws_admin_url(self) -> str:
        return self.ws_url("kplug/api/ws")

    def __repr__(self) -> str:
        return f"Endpoint({self.url!r})"


def check_status(status: int, body: bytes, target: str, url: str) -> Any:
    """The decoded JSON body of an HTTP answer, ``None`` for 204; raise for statuses without a JSON-RPC body."""
    if status == 204:
        return None
    if status == 401:
        raise AuthenticationFailed(f"{target}: the server at {url} refused the token (HTTP 401); "
                                   "check the token given to %kplug connect or KPLUG_LAB_TOKEN", status)
    if status == 403:
        raise AuthenticationFailed(f"{target}: this token may not use that route (HTTP 403): the admin API needs "
                                   "the admin token, not the call-only one", status)
    try:
        return json.loads(body)
    except ValueError:
        raise ProtocolError(f"{target}: HTTP {status} from {url} with a body that is not JSON: "
                            f"{body[:200].decode('utf-8', 'replace')!r}") from None


class BatchEntries:
    """Requests collected for one batch, and how to read the answers back in request order."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.requests: list[dict[str, Any]] = []
        self.ids: list[int] = []
        self.targets: list[str] = []

    def add(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], notify: bool) -> None:
        id_ = None if notify else next_id()
        self.requests.append(make_request(method, make_params(args, kwargs), id_))
        if id_ is not None:
            self.ids.append(id_)
            self.targets.append(f"{self.prefix}.{method}" if self.prefix else method)

    def outcomes(self, answer: Any) -> list[Any]:
        """One result (or RPCError instance) per call, in the order the calls were added."""
        if answer is None:
            answer = []
        if isinstance(answer, dict):  # the whole batch was refused (e.g. too large): every call failed alike
            return [outcome_of(answer, t) for t in self.targets]
        if not isinstance(answer, list):
            raise ProtocolError(f"{self.prefix}: batch answer is not a JSON array: {str(answer)[:200]}")
        by_id = {r.get("id"): r for r in answer if isinstance(r, dict)}
        out = []
        for id_, target in zip(self.ids, self.targets, strict=True):
            r = by_id.get(id_)
            out.append(outcome_of(r, target) if r is not None else
                       ProtocolError(f"{target}: the batch answer has no response with id {id_}"))
        return out

    @property
    def params_omitted(self) -> Any:
        return _OMITTED
