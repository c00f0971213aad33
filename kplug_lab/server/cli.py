"""``kplug``: the standalone server (``kplug serve``) and a few helpers."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tornado.web

    from ..host.runtime.api import HostAPI

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kplug", description="kplug_lab: a sandboxed host for SiYuan kernel plugins")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve plugins over JSON-RPC (HTTP and WebSocket) at SiYuan's routes")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workspace", type=Path, help="a SiYuan workspace (plugins in data/plugins)")
    where.add_argument("--plugins", type=Path, help="a folder of plugin folders (each with plugin.json, kernel.js)")
    s.add_argument("--data", type=Path, help="kplug_lab's own files: durable store, host.json, generated token "
                                             "(default: the workspace's temp/kplug, outside SiYuan's synced data/; "
                                             ".kplug-data beside --plugins)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    s.add_argument("--token", help="admin token (when not given: generated once, kept in the data folder's "
                                   "'token' file, mode 0600, and reused on restart); a command line is visible "
                                   "to every user of the machine: prefer --token-file or $KPLUG_TOKEN")
    s.add_argument("--token-file", type=Path, help="read the admin token from this file")
    s.add_argument("--call-token", help="an optional token that may call plugin methods but not the admin API "
                                        "(or --call-token-file, $KPLUG_CALL_TOKEN)")
    s.add_argument("--call-token-file", type=Path, help="read the call-only token from this file")
    s.add_argument("--base-url", default="/", help="serve every route under this prefix")
    s.add_argument("--siyuan-url", default="http://127.0.0.1:6806", help="the SiYuan kernel siyuan.client reaches")
    s.add_argument("--siyuan-token", help="API token for the SiYuan kernel (or --siyuan-token-file, "
                                          "$KPLUG_SIYUAN_TOKEN)")
    s.add_argument("--siyuan-token-file", type=Path, help="read the SiYuan kernel's API token from this file")
    s.add_argument("--siyuan-poll-interval", type=float, default=5.0, metavar="SECONDS",
                   help="how often to ask the SiYuan kernel which kernel plugins SiYuan runs itself; those are not "
                        "run here (docs/beside-siyuan.md); 0 turns the check off (default 5)")
    s.add_argument("--memory-mb", type=int, default=64, help="JS heap limit per plugin, MiB")
    s.add_argument("--cpu-limit", type=float, default=2.0, help="CPU seconds one job may take")
    s.add_argument("--hook-timeout", type=float, default=10.0, help="seconds a lifecycle hook may take")
    s.add_argument("--call-timeout", type=float, default=30.0, help="seconds an RPC call may take to settle")
    s.add_argument("--max-request-bytes", type=int, default=8 * 1024 * 1024,
                   help="largest JSON-RPC request accepted (HTTP body or WebSocket message), bytes")
    s.add_argument("--max-fetch-bytes", type=int, default=32 * 1024 * 1024,
                   help="largest request body siyuan.client.fetch sends and response a private route's proxy body "
                        "relays, bytes (past it: an error, or the proxied response is cut off); fetch responses "
                        "are streamed")
    s.add_argument("--max-pending-bytes", type=int, default=16 * 1024 * 1024,
                   help="bytes a plugin may have queued for one client connection (SSE, WebSocket, broadcasts) or "
                        "not yet taken from one kernel connection; past it that connection is closed")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a browser origin (scheme://host[:port], or *) whose pages may call the plugin routes, "
                        "e.g. SiYuan's http://127.0.0.1:6806; repeatable (default: same origin only)")
    s.add_argument("--front-door", action="store_true",
                   help="stand in front of the SiYuan kernel at --siyuan-url: open SiYuan through this port; plugin "
                        "routes are answered here (with SiYuan's own login), everything else goes to the kernel")
    s.add_argument("--no-reload", action="store_true", help="do not watch plugin folders for changes")
    s.add_argument("--siyuan-strict", action="store_true",
                   help="SiYuan-strict mode: leave out kplug_lab's own globals (structuredClone, atob/btoa, "
                        "queueMicrotask, performance, DOMException, Event/EventTarget, global, kplug, siyuan.mcp, "
                        "lifecycle.onloaded), so that a plugin that runs here runs in SiYuan")
    s.add_argument("--proxy-allow-private", action="store_true",
                   help="let a private route's proxy body reach loopback and private addresses (refused by default)")
    tuning = s.add_argument_group("tuning switches (off by default; measured in docs/adr/0004-rpc-benchmark.md)")
    tuning.add_argument("--follow-caller-cpu", action=argparse.BooleanOptionalAction, default=False,
                        help="wake an idle plugin's thread through eventfd doorbells on its caller's CPU (Linux): "
                             "faster sequential calls on small VMs, but CPU-bound plugins share the loop's CPU "
                             "for a while")
    tuning.add_argument("--switch-interval", type=float, metavar="SECONDS",
                        help="set the process's GIL switch interval (sys.setswitchinterval; Python's default is "
                             "0.005, 0.0002 measured faster for pipelined WebSocket calls)")
    tuning.add_argument("--ws-direct-frames", action=argparse.BooleanOptionalAction, default=False,
                        help="write WebSocket answers through tornado's private frame writer, without "
                             "write_message's wrapper task (more calls/s; may break with a tornado upgrade)")
    s.add_argument("--dev", action="store_true", help="dev mode: enables kplug.eval (run JS inside a plugin)")
    s.add_argument("--log-level", default="INFO")
    return p


async def _serve(args: argparse.Namespace) -> int:
    from ..durable.places import TOKEN_FILE, persistent_token
    from ..host.runtime.config import HostConfig
    from ..host.runtime.manager import PluginManager
    from ..protocol.jsonrpc import Limits
    from ..rpc.app import make_standalone_app
    from ..rpc.cors import CORSPolicy
    from ..rpc.main_channel import close_main_channel, state_snapshot, subscribe_state_pushes

    if args.workspace is None and args.plugins is None:
        print("kplug serve: give --workspace DIR or --plugins DIR", file=sys.stderr)
        return 2
    root = args.workspace or args.plugins
    if not root.is_dir():
        print(f"kplug serve: {root} is not a directory", file=sys.stderr)
        return 2
    try:
        args.token = _secret(args.token, args.token_file, "KPLUG_TOKEN", "--token")
        args.call_token = _secret(args.call_token, args.call_token_file, "KPLUG_CALL_TOKEN", "--call-token")
        args.siyuan_token = _secret(args.siyuan_token, args.siyuan_token_file, "KPLUG_SIYUAN_TOKEN",
                                    "--siyuan-token") or ""
    except ValueError as exc:
        print(f"kplug serve: {exc}", file=sys.stderr)
        return 2
    if args.token is not None and not args.token:
        print("kplug serve: --token must not be empty", file=sys.stderr)
        return 2
    if args.call_token is not None and (not args.call_token or args.call_token == args.token):
        print("kplug serve: --call-token must be non-empty and differ from --token", file=sys.stderr)
        return 2
    try:
        allowed_origins = CORSPolicy(args.allow_origin)
    except ValueError as exc:
        print(f"kplug serve: --allow-origin: {exc}", file=sys.stderr)
        return 2
    try:
        config = HostConfig(memory_limit=args.memory_mb * 1024 * 1024, cpu_limit=args.cpu_limit,
                            hook_timeout=args.hook_timeout, call_timeout=args.call_timeout,
                            siyuan_url=args.siyuan_url, siyuan_token=args.siyuan_token,
                            siyuan_poll_interval=args.siyuan_poll_interval, hot_reload=not args.no_reload,
                            data_dir=args.data, siyuan_strict=args.siyuan_strict,
                            follow_caller_cpu=args.follow_caller_cpu, max_fetch_body=args.max_fetch_bytes,
                            max_pending_bytes=args.max_pending_bytes)
    except ValueError as exc:  # a limit the sandbox cannot honour (e.g. --memory-mb past wasm32's 4 GiB)
        print(f"kplug serve: {exc}", file=sys.stderr)
        return 2
    door = None
    if args.front_door:
        from .front_door import FrontDoor, FrontDoorConfig
        if args.base_url.strip("/") or args.allow_origin:
            print("kplug serve: --front-door serves SiYuan's root on SiYuan's origin: --base-url and --allow-origin "
                  "do not apply", file=sys.stderr)
            return 2
        try:
            door = FrontDoor(FrontDoorConfig(kernel_url=args.siyuan_url.rstrip("/")))
        except ValueError as exc:
            print(f"kplug serve: --siyuan-url: {exc}", file=sys.stderr)
            return 2
    manager = PluginManager(config, workspace=args.workspace, plugins_dir=args.plugins)
    token = args.token or persistent_token(manager.data_dir)
    bounds = {"kplug_max_fetch_body": config.max_fetch_body, "kplug_max_pending_bytes": config.max_pending_bytes}
    limits = Limits(max_body_bytes=args.max_request_bytes, call_timeout=args.call_timeout)
    app: tornado.web.Application
    if door is not None:
        from .front_door import make_front_door_app
        app = make_front_door_app(manager, token, door, call_token=args.call_token, dev_mode=args.dev,
                                  limits=limits, kplug_proxy_allow_private=args.proxy_allow_private,
                                  kplug_ws_direct_frames=args.ws_direct_frames, **bounds)
    else:
        app = make_standalone_app(manager, token, call_token=args.call_token, base_url=args.base_url,
                                  dev_mode=args.dev, allow_origins=args.allow_origin, limits=limits,
                                  kplug_proxy_allow_private=args.proxy_allow_private,
                                  kplug_ws_direct_frames=args.ws_direct_frames, **bounds)
    if door is not None:  # the plugins' state pushes, merged into the kernel's own /ws stream (a snapshot first)
        door.follow(lambda send: subscribe_state_pushes(manager, send, snapshot=False),
                    snapshot=lambda: state_snapshot(manager))
    # installed before the plugins start, so a SIGTERM during startup still runs every onunload
    stop = asyncio.Event()
    _stop_on_signals(asyncio.get_running_loop(), stop)
    try:
        server = app.listen(args.port, address=args.host)
    except OSError as exc:
        print(f"kplug serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    await manager.start()
    port = next(iter(server._sockets.values())).getsockname()[1]
    base = "/" + args.base_url.strip("/") + "/" if args.base_url.strip("/") else "/"
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "") else "[::1]" if args.host == "::" else args.host
    url = f"http://{shown_host}:{port}{base}"
    if manager.standby:
        print(f"kplug_lab standing by for {root}: {manager.host_lock.describe_owner()}; plugin calls answer "
              "-32002 until that host stops, then this one takes over", flush=True)
    print(f"kplug_lab serving {len(manager.plugins)} plugin(s) from {root}", flush=True)
    if allowed_origins:
        shown = "any origin (*)" if allowed_origins.any else ", ".join(sorted(allowed_origins.origins))
        print(f"browser pages may call the plugin routes from {shown}", flush=True)
    if door is not None:
        print(f"front door to the SiYuan kernel at {door.config.origin}: open SiYuan at {url}; plugin routes "
              "take SiYuan's own login", flush=True)
        if shown_host not in ("127.0.0.1", "localhost", "[::1]"):
            print("warning: the front door listens beyond this machine; set an access code in SiYuan, or its "
                  "kernel trusts every request that reaches it from localhost", flush=True)
    print("\n".join(summary_lines(manager, url, token)), flush=True)
    if not args.token:
        print(f"(the token is kept in {manager.data_dir / TOKEN_FILE} and reused on restart)", flush=True)
    await stop.wait()
    print("stopping: running every plugin's onunload", flush=True)
    server.stop()
    close_main_channel(app)
    if door is not None:
        door.close()
    await manager.close()
    return 0


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set ``stop``. The loop's own handlers where it has them (POSIX); where it refuses
    (Windows' loops raise NotImplementedError), the portable ``signal.signal``, whose handler runs on the main
    thread between two bytecodes and hands the stop to the loop thread-safely."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))


def _secret(given: str | None, file: Path | None, env: str, option: str) -> str | None:
    """A secret from its option, else its file (one line; surrounding whitespace dropped), else the environment
    variable ``env``; None when none is set. ValueError names the option when the file cannot be used."""
    if given is not None:
        return given
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{option}-file {file}: cannot read it ({exc})") from None
        if not value:
            raise ValueError(f"{option}-file {file} is empty")
        return value
    return os.environ.get(env) or None


def summary_lines(host: HostAPI, url: str, token: str) -> list[str]:
    """What a server prints once its plugins started: each plugin's state and methods, the URL and token, and a
    copy-paste ``curl`` line that calls a method (``hello``'s when it is there)."""
    infos = host.list_plugins()
    lines = [f"  {i.name:<16} {i.state.label:<8} {', '.join(m.name for m in i.methods)}"
             + (f"  ({i.error})" if i.error else "") for i in infos]
    lines.append(f"URL:   {url}\nToken: {token}")
    example = next((i for i in sorted(infos, key=lambda i: i.name != "hello") if i.methods), None)
    if example is not None:
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": example.methods[0].name, "params": ["hi"]},
                             separators=(",", ":"))
        curl = ["curl", "-s", "-H", f"Authorization: Token {token}", "-d", request,
                f"{url}api/plugin/rpc/{example.name}"]
        lines.append("Try:\n  " + shlex.join(curl))
    return lines


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run the server on uvloop where it is installed (Linux and macOS): its cross-thread wake-ups, which every
    plugin call makes twice (loop -> plugin thread -> loop), cost less than asyncio's self-pipe. Measured in
    docs/adr/0004-rpc-benchmark.md; plain asyncio elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: the SiYuan poll (every few seconds) and every plugin fetch would flood the log
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    if args.command == "serve":
        if args.switch_interval is not None:
            if not args.switch_interval > 0:
                print(f"kplug serve: --switch-interval must be a positive number of seconds, got "
                      f"{args.switch_interval}", file=sys.stderr)
                return 2
            sys.setswitchinterval(args.switch_interval)  # the whole process's: an opt-in (ADR 0004 addendum)
        return _run(_serve(args))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
