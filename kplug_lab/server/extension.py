"""kplug_lab as a jupyter_server extension: the plugin host and its RPC routes inside a Jupyter server.

Enabled on install by ``jupyter_server_config.d/kplug_lab.json``; configured as ``KplugLabApp.<trait>`` in
``jupyter_server_config.py`` or on the command line (``jupyter server --KplugLabApp.plugins_dir=plugins``).
The routes are the standalone ones (see ``docs/rpc.md``) under the server's ``base_url``; authentication and
authorization are the server's (:mod:`kplug_lab.server.handlers`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, Unicode, default

from ..host.runtime.api import PluginState
from ..host.runtime.config import HostConfig
from ..host.runtime.manager import PluginManager
from ..protocol.jsonrpc import Limits
from .cli import summary_lines
from .handlers import jupyter_routes

__all__ = ["KplugLabApp"]


class KplugLabApp(ExtensionApp):
    """Hosts SiYuan kernel plugins inside jupyter_server and serves their JSON-RPC routes."""

    name = "kplug_lab"
    description = "A sandboxed, SiYuan-compatible host for kernel plugins"
    load_other_extensions = True

    workspace = Unicode("", config=True, help="A SiYuan workspace: its plugins in data/plugins are hosted. "
                                              "Give this or plugins_dir, not both.")
    plugins_dir = Unicode("", config=True, help="A folder of plugin folders (each with plugin.json and "
                                                "kernel.js). Give this or workspace, not both.")
    data_dir = Unicode("", config=True, help="kplug_lab's own files, the durable store first (default: "
                                             "next to the plugins, or the workspace's temp/kplug, which SiYuan "
                                             "does not sync).")
    siyuan_url = Unicode("http://127.0.0.1:6806", config=True, help="The SiYuan kernel siyuan.client talks to.")
    siyuan_poll_interval = Float(5.0, min=0.0, config=True, help=(
        "How often to ask the SiYuan kernel which kernel plugins SiYuan runs itself, seconds; those are not run "
        "here (docs/beside-siyuan.md). 0 turns the check off."))
    siyuan_token = Unicode(config=True, help="The API token of that SiYuan kernel (default: $KPLUG_SIYUAN_TOKEN, "
                                             "so it need not be on a command line).")
    memory_limit_mb = Int(64, min=1, config=True, help="JS heap limit per plugin, MiB.")
    cpu_limit = Float(2.0, min=0.001, config=True, help="CPU seconds one job (call, timer callback) may take.")
    hook_timeout = Float(10.0, min=0.001, config=True, help="Seconds a lifecycle hook may take to settle.")
    call_timeout = Float(30.0, min=0.001, config=True, help="Seconds an RPC call may take to settle.")
    hot_reload = Bool(True, config=True, help="Reload a plugin when its kernel.js or plugin.json changes.")
    siyuan_strict = Bool(False, config=True, help="SiYuan-strict mode: leave out kplug_lab's own globals "
                                                  "(structuredClone, atob/btoa, queueMicrotask, performance, "
                                                  "DOMException, Event/EventTarget, global, kplug, siyuan.mcp, "
                                                  "lifecycle.onloaded), so that a plugin that runs here runs in "
                                                  "SiYuan. Each plugin's state lists those it touched otherwise.")
    front_door = Bool(False, config=True, help=(
        "Stand in front of the SiYuan kernel. Standalone-only (kplug serve --front-door): the front door owns the "
        "server's root, which in Jupyter mode is Jupyter's own; True is refused with that reason."))
    dev_mode = Bool(False, config=True, help="Enable kplug.eval (run JavaScript inside a plugin) on the admin API.")
    call_token = Unicode(config=True, help="An extra token that may call plugin methods and read plugin info, but "
                                           "not use the admin API or private routes. Empty: none. Default: "
                                           "$KPLUG_CALL_TOKEN.")

    @default("siyuan_token")
    def _siyuan_token_from_env(self) -> str:
        return os.environ.get("KPLUG_SIYUAN_TOKEN", "")

    @default("call_token")
    def _call_token_from_env(self) -> str:
        return os.environ.get("KPLUG_CALL_TOKEN", "")
    max_request_bytes = Int(8 * 1024 * 1024, min=1, config=True, help="Largest JSON-RPC request accepted, bytes "
                                                                      "(HTTP body or WebSocket message).")

    max_fetch_body = Int(32 * 1024 * 1024, min=1, config=True, help=(
        "Largest request body siyuan.client.fetch sends and response a private route's proxy body relays, bytes; "
        "past it an error (the proxied response is cut off). Fetch responses are streamed."))
    max_pending_bytes = Int(16 * 1024 * 1024, min=1, config=True, help=(
        "Bytes a plugin may have queued for one client connection (SSE, WebSocket, broadcasts) or not yet taken "
        "from one kernel connection; past it that connection is closed, never buffered."))
    proxy_allow_private = Bool(False, config=True, help="Let a private route's proxy body reach loopback and "
                                                        "private addresses (refused by default).")
    follow_caller_cpu = Bool(False, config=True, help=(
        "Tuning, off by default: wake an idle plugin's thread through eventfd doorbells on the CPU of its caller, "
        "and let it go once it stays busy (Linux). Faster sequential calls on small VMs; CPU-bound plugins share "
        "the loop's CPU meanwhile (docs/adr/0004)."))
    ws_direct_frames = Bool(False, config=True, help="Tuning, off by default: write WebSocket answers through "
                                                     "tornado's private frame writer, without write_message's wrapper "
                                                     "task (more calls/s; may break with a tornado upgrade).")

    manager: PluginManager | None = None
    _started = False

    def host_config(self) -> HostConfig:
        if self.data_dir:
            data_dir: Path | None = Path(self.data_dir).expanduser()
        elif not (self.workspace or self.plugins_dir):
            # nothing to sit beside: keep the host's files in Jupyter's data folder, not the working directory
            data_dir = Path(jupyter_data_dir()) / "kplug_lab"
        else:
            data_dir = None  # the host's default: beside the plugins, or the workspace's temp/kplug
        return HostConfig(memory_limit=self.memory_limit_mb * 1024 * 1024, cpu_limit=self.cpu_limit,
                          hook_timeout=self.hook_timeout, call_timeout=self.call_timeout,
                          siyuan_url=self.siyuan_url, siyuan_token=self.siyuan_token, hot_reload=self.hot_reload,
                          siyuan_poll_interval=self.siyuan_poll_interval,
                          data_dir=data_dir, follow_caller_cpu=self.follow_caller_cpu,
                          siyuan_strict=self.siyuan_strict, max_fetch_body=self.max_fetch_body,
                          max_pending_bytes=self.max_pending_bytes)

    def _plugin_roots(self) -> tuple[Path | None, Path | None]:
        if self.workspace and self.plugins_dir:
            raise ValueError("KplugLabApp: set workspace or plugins_dir, not both "
                             f"(workspace={self.workspace!r}, plugins_dir={self.plugins_dir!r})")
        workspace = Path(self.workspace).expanduser() if self.workspace else None
        plugins = Path(self.plugins_dir).expanduser() if self.plugins_dir else None
        for trait, path in (("workspace", workspace), ("plugins_dir", plugins)):
            if path is not None and not path.is_dir():
                raise ValueError(f"KplugLabApp.{trait}: {path} is not a directory")
        return workspace, plugins

    def initialize_settings(self) -> None:
        if self.front_door:
            raise ValueError("KplugLabApp.front_door: the front door is standalone-only (kplug serve --front-door). "
                             "It must own the server's root, where SiYuan's clients call /api/... and /ws, but "
                             "that root is Jupyter's: its /api/contents, /api/kernels, login and XSRF rules would "
                             "collide with SiYuan's routes and cookies (docs/beside-siyuan.md, Front door)")
        workspace, plugins = self._plugin_roots()
        if workspace is None and plugins is None:
            self.log.info("kplug_lab: no plugins configured; set KplugLabApp.plugins_dir or KplugLabApp.workspace")
        if self.call_token and self.call_token == self.serverapp.identity_provider.token:  # type: ignore[union-attr]
            raise ValueError("KplugLabApp.call_token must differ from the server's token: the call-only token "
                             "grants less than the server token")
        self.manager = PluginManager(self.host_config(), workspace=workspace, plugins_dir=plugins)
        self.settings.update(
            kplug_host=self.manager,
            kplug_limits=Limits(max_body_bytes=self.max_request_bytes, call_timeout=self.call_timeout),
            kplug_dev_mode=self.dev_mode,
            kplug_call_token=self.call_token or None,
            kplug_proxy_allow_private=self.proxy_allow_private,
            kplug_ws_direct_frames=self.ws_direct_frames,
            kplug_max_fetch_body=self.max_fetch_body,
            kplug_max_pending_bytes=self.max_pending_bytes,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(jupyter_routes())

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await self.start_extension()

    async def start_extension(self) -> None:
        """Discover and start the plugins (runs each one's onload and onrunning). Idempotent."""
        if self._started or self.manager is None:
            return
        self._started = True
        await self.manager.start()
        running = sum(1 for i in self.manager.list_plugins() if i.state == PluginState.RUNNING)
        self.log.info("kplug_lab: %d plugin(s) running, %d load error(s)", running, len(self.manager.load_errors))
        server = self.serverapp
        token = getattr(getattr(server, "identity_provider", None), "token", "") if server else ""
        if server is not None and token:
            self.log.info("kplug_lab plugins:\n%s", "\n".join(summary_lines(self.manager, server.connection_url,
                                                                            token)))

    async def stop_extension(self) -> None:
        """Stop every plugin, running its onunload. Idempotent."""
        if self.manager is not None and self._started:
            self._started = False
            await self.manager.close()
