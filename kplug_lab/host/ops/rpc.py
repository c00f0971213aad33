"""``siyuan.rpc``: binding methods, broadcasting to subscribed clients, and a plugin's fetch of the kernel's plugin
routes (``/api/plugin/...``), which this host answers itself instead of the kernel at ``siyuan_url``."""

from __future__ import annotations

import json
from typing import Any

from ...errors import HostOpError
from ...protocol.routes import RouteMatch
from .. import route_answers
from ..runtime.api import NO_PARAMS
from ..runtime.bounds import ByteBudget, human_bytes
from ..runtime.context import Capability, Op, PluginContext
from .encoding import payload

__all__ = ["RpcOps", "answer_plugin_route"]


class RpcOps(Capability):
    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        # broadcasts handed to the loop and not yet sent on: host memory the plugin holds (issue 11)
        self._queued = ByteBudget(ctx.config.max_pending_bytes)

    def sync_ops(self) -> dict[str, Op]:
        return {"rpc_bind": self.rpc_bind, "rpc_unbind": self.rpc_unbind}

    def async_ops(self) -> dict[str, Op]:
        return {"rpc_broadcast": self.rpc_broadcast}

    def rpc_bind(self, name: str, descriptions: list[Any] | None = None) -> None:
        self.ctx.methods[str(name)] = [str(d) for d in (descriptions or [])]

    def rpc_unbind(self, name: str) -> None:
        self.ctx.methods.discard(str(name))

    def rpc_broadcast(self, method: str, has_params: bool, params: Any = None) -> None:
        size = len(method) + (len(json.dumps(params, ensure_ascii=False)) if has_params else 0)
        if not self._queued.take(size):
            raise HostOpError(f"siyuan.rpc.broadcast: {human_bytes(self._queued.used)} of broadcasts are still "
                              f"waiting to be sent (at most {human_bytes(self._queued.limit)}); "
                              "broadcast less at once")
        self.ctx.broadcast(str(method), params if has_params else NO_PARAMS, lambda: self._queued.give(size))


async def answer_plugin_route(ctx: PluginContext, route: RouteMatch, path: str, content: bytes | None,
                              method: str = "GET", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``client.fetch`` response for one of the plugin routes, answered by this host. Runs on the asyncio loop,
    not on the plugin's thread: a plugin calling its own methods (or its own private routes) queues a job there."""
    answer = await route_answers.answer(ctx.host, route, content, method=method, target=path, headers=headers)
    return {"url": path, "status": answer.status, "statusText": answer.status_text, "headers": answer.headers,
            "body": payload(answer.body)}
