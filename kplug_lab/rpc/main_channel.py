"""The main channel: SiYuan's ``/ws?app=..&id=..&type=main`` push WebSocket, as far as kernel plugins go.

Every state change of a plugin is pushed as ``updateKernelPluginState`` (spec §2.7,
:func:`kplug_lab.protocol.pushes.kernel_plugin_state_push`), so SiYuan's app and its kernel client (spec §5.8:
reopen the RPC WebSocket when the state becomes 2) follow reloads, crashes and restarts.

Two ways to serve it:

* standalone, :class:`MainChannelSocket` answers ``/ws`` itself (authenticated like every other route);
* in front of a SiYuan kernel, whoever relays the kernel's own ``/ws`` stream merges kplug_lab's pushes into it
  with :func:`subscribe_state_pushes` (the changes) and :func:`state_snapshot` (what each newly relayed session
  gets first), which is all it needs from here.
"""

from __future__ import annotations

from collections.abc import Callable

import tornado.web

from ..host.api import HostAPI, PluginState, Unsubscribe
from ..protocol.pushes import MAIN_CHANNEL, encode_push, kernel_plugin_state_push
from .handlers import AUTH_FAILED, _BoundedSocket, _cors_policy, _json

__all__ = ["MainChannelSocket", "close_main_channel", "state_snapshot", "subscribe_state_pushes"]

#: the application setting that holds the open main-channel sockets (closed by :func:`close_main_channel`)
_OPEN = "kplug_main_channel_sockets"


def state_snapshot(host: HostAPI) -> list[str]:
    """One text frame (an encoded ``updateKernelPluginState`` push) per plugin ``host`` lists, with its current
    state: what a main-channel session gets first, standalone or relayed by the front door."""
    return [encode_push(kernel_plugin_state_push(info.name, info.state)) for info in host.list_plugins()]


def subscribe_state_pushes(host: HostAPI, send: Callable[[str], None], *, snapshot: bool = True) -> Unsubscribe:
    """Call ``send`` with one text frame (an encoded ``updateKernelPluginState`` push) per plugin state change
    of ``host``, on the host's loop, until the returned function is called.

    ``snapshot`` first sends the current state of every plugin the host lists: a client that (re)connects after
    the plugins started (a restarted server, a dropped connection) learns they run, as if it had seen them
    start, and a spec §5.8 client opens its RPC WebSocket. SiYuan's frontend ignores a push for a plugin it does
    not have, and re-applies an unchanged state harmlessly.
    """
    if snapshot:
        for text in state_snapshot(host):
            send(text)

    def on_state(name: str, state: PluginState) -> None:
        send(encode_push(kernel_plugin_state_push(name, state)))

    return host.subscribe_states(on_state)


class MainChannelSocket(_BoundedSocket):
    """``GET /ws?app=<app>&id=<id>&type=main``: kplug_lab's pushes (standalone). Sessions of another ``type``
    are accepted and sent nothing, as SiYuan sends these pushes to ``main`` sessions only; what clients send is
    ignored."""

    async def get(self, *args: object, **kwargs: object) -> None:
        if self.kplug_principal() is None:
            _json(self, AUTH_FAILED, 401)
            return
        await super().get(*args, **kwargs)

    def open(self, *args: str, **kwargs: str) -> None:
        self.open_bounded()
        self.application.settings.setdefault(_OPEN, set()).add(self)
        self._unsubscribe: Unsubscribe | None = None
        if self.get_query_argument("type", "") == MAIN_CHANNEL:
            self._unsubscribe = subscribe_state_pushes(self.settings["kplug_host"], self.send)

    def check_origin(self, origin: str) -> bool:
        """Same-origin, or an origin ``--allow-origin`` allows (SiYuan's app, served by its kernel)."""
        policy = _cors_policy(self)
        return super().check_origin(origin) or (policy is not None and policy.allow_origin_header(origin) is not None)

    def on_message(self, message: str | bytes) -> None:
        return None

    def on_close(self) -> None:
        self.application.settings.get(_OPEN, set()).discard(self)
        if getattr(self, "_unsubscribe", None) is not None:
            self._unsubscribe()  # type: ignore[misc]
            self._unsubscribe = None


def close_main_channel(app: tornado.web.Application) -> None:
    """Close every main-channel session of ``app`` (1001, going away) when the server stops: a WebSocket
    outlives ``HTTPServer.stop()``, and a client must notice the restart to reconnect and hear the new states."""
    for sock in list(app.settings.get(_OPEN, ())):
        sock.close(1001, "kplug_lab stopping")
