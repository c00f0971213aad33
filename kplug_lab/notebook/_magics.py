"""The ``%kplug`` line and cell magics. Every subcommand talks JSON-RPC to a kplug_lab server through
:class:`kplug_lab.client.Client`; ``--local`` starts one inside the kernel, so all of them work the same."""

from __future__ import annotations

import argparse
import atexit
import json
import re
import shlex
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

from ..client import Client, Connection, LogEntry, discover
from ..errors import KplugError
from ._bench import BenchResult, run_bench
from ._dev import BuildFailed, DevProject, DevView, SourceMap, build_cell, map_positions
from ._display import CallValue, LogView, Message, PluginList, PluginView, ToolList
from ._health import Top, top_text
from ._local import LocalServer
from ._record import Recorder, load_sanitize_patterns

__all__ = ["KplugMagics", "Session"]

USAGE = """\
%kplug connect [URL TOKEN | --local [--plugins DIR]]   choose the server (default: discovered)
%kplug disconnect                                     forget it (and stop a --local host)
%kplug list                                           plugins, states and methods
%kplug state NAME                                     one plugin: state, version, methods
%kplug load PATH                                      load (or restart) a plugin folder
%kplug unload NAME                                    stop a plugin (runs onunload)
%kplug reload NAME                                    re-read plugin.json and kernel.js, restart
%kplug call NAME.METHOD [JSON ...]                    call a method; arguments are JSON values
%kplug logs NAME [--limit N] [--follow]               log lines (--follow: stream until idle/interrupted)
%kplug tools                                          MCP tools / agent capabilities
%kplug inspect [NAME]                                 the inspector widget
%kplug bench NAME.METHOD [JSON ...] [-n N] [-c C]     latency percentiles and histogram (--ws: WebSocket)
%kplug record [--others] | --stop | --save PATH       record calls; save them as an nbval regression test
%kplug top [--once] [--interval S] [--duration S]     every plugin's health, refreshing in place
%kplug dev PATH [--no-watch] | --stop                 build a plugin project (esbuild), load it, reload on save
%%kplug eval NAME                                     run the cell's JS inside the plugin (server in dev mode)
%%kplug plugin NAME [--ts]                            the cell is NAME's kernel.js (or TypeScript): (re)load it
%kplug help [COMMAND]                                 this text, or one command's help

Connection discovery: %kplug connect, then KPLUG_LAB_URL / KPLUG_LAB_TOKEN, then the Jupyter server that
started this kernel. Arguments are not $-expanded."""


class _Help(KplugError):
    def __init__(self, text: str) -> None:
        self.text = text


class _Parser(argparse.ArgumentParser):
    """argparse that reports through IPython instead of printing and exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}\nusage: {self.format_usage().partition('usage: ')[2].strip()}")

    def print_help(self, file: Any = None) -> None:
        raise _Help(self.format_help())

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"{self.prog}: exit {status}")


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions, but keeps the examples epilog one example per line (wrapped, they read as one)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(_EXAMPLES):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


_EXAMPLES = "examples:\n"


def _parser() -> _Parser:
    root = _Parser(prog="%kplug", add_help=False)
    sub = root.add_subparsers(dest="command", parser_class=_Parser)

    def add(name: str, help_: str, *, cell: bool = False, examples: tuple[str, ...] = ()) -> _Parser:
        prefix = "%%kplug" if cell else "%kplug"
        epilog = _EXAMPLES + "".join(f"  {example}\n" for example in examples) if examples else None
        return sub.add_parser(name, prog=f"{prefix} {name}", help=help_,  # type: ignore[no-any-return]
                              description=help_, epilog=epilog, formatter_class=_Formatter)

    p = add("connect", "Choose the kplug_lab server the magics talk to. Without arguments: discover it "
                       "(KPLUG_LAB_URL/KPLUG_LAB_TOKEN, then the Jupyter server that started this kernel).")
    p.add_argument("url", nargs="?", help="the server's base URL, e.g. http://127.0.0.1:8765/")
    p.add_argument("token", nargs="?", help="its admin token")
    p.add_argument("--local", action="store_true",
                   help="run a plugin host inside this kernel (background thread, loopback port, dev mode)")
    p.add_argument("--plugins", type=Path, help="with --local: serve this folder of plugins")
    add("disconnect", "Forget the connection; a --local host is stopped (its plugins run onunload).")
    add("list", "List plugins with their state and bound methods.")
    p = add("state", "Show one plugin: state (and why, if error), version, methods with descriptions.")
    p.add_argument("name")
    p = add("load", "Load a plugin folder (plugin.json + kernel.js) on the server, or restart it if loaded. "
                    "PATH is a path on the server's machine.")
    p.add_argument("path")
    p = add("unload", "Stop a plugin: runs its onunload; its methods stop answering.")
    p.add_argument("name")
    p = add("reload", "Re-read a plugin's plugin.json and kernel.js and restart it (a fresh VM).")
    p.add_argument("name")
    p = add("call", "Call NAME.METHOD with JSON arguments, spread as the method's parameters.",
            examples=('%kplug call hello.greet "Ada"', "%kplug call counter.increment 5",
                      '%kplug call notes-agent.add {"text": "hi"}'))
    p.add_argument("target", metavar="NAME.METHOD")
    p.add_argument("args", nargs="*", metavar="JSON")
    p = add("logs", "Show a plugin's recent log lines; --follow streams new ones.")
    p.add_argument("name")
    p.add_argument("--limit", type=int, default=50, help="how many recent lines (default 50)")
    p.add_argument("--follow", action="store_true", help="keep printing new lines (interrupt the kernel to stop)")
    p.add_argument("--timeout", type=float, default=None,
                   help="with --follow: stop after this many seconds without a new line")
    p.add_argument("--count", type=int, default=None, help="with --follow: stop after this many new lines")
    add("tools", "List the MCP tools / agent capabilities registered by plugins.")
    p = add("inspect", "Open the inspector widget: plugins, methods with a call form, logs, reload/unload, "
                       "the last calls with timings.")
    p.add_argument("name", nargs="?")
    p = add("bench", "Call NAME.METHOD N times, C at a time (each worker on its own connection), over HTTP or "
                     "WebSocket; show p50/p90/p99 latency, calls per second and a histogram. Usage: "
                     "%kplug bench NAME.METHOD [JSON ...] [options]",
            examples=('%kplug bench hello.echo "hi" -n 500', "%kplug bench counter.get -n 1000 --concurrency 4 --ws"))
    p.add_argument("-n", type=int, default=200, help="how many calls (default 200)")
    p.add_argument("--concurrency", "-c", type=int, default=1, help="calls in flight at once (default 1)")
    p.add_argument("--ws", action="store_true", help="over each worker's plugin WebSocket instead of HTTP")
    p.add_argument("--warmup", type=int, default=5, help="uncounted calls per worker first (default 5)")
    p = add("record", "Record the calls made from this notebook (with --others: every client's calls, from the "
                      "server); --save writes them as a notebook of %kplug call cells with their answers, a "
                      "regression test for pytest --nbval.",
            examples=("%kplug record", "%kplug record --others", "%kplug record --save tests/greetings.ipynb"))
    p.add_argument("--others", action="store_true", help="record every client's calls, not only this notebook's")
    p.add_argument("--stop", action="store_true", help="stop recording and drop what was recorded")
    p.add_argument("--save", type=Path, metavar="PATH", help="write the recorded calls as a notebook and stop")
    p.add_argument("--title", help="the saved notebook's heading")
    p.add_argument("--sanitize", type=Path, metavar="CFG",
                   help="the nbval sanitize file whose patterns mask volatile output (default: the project's "
                        "notebooks/nbval_sanitize.cfg, found from the current folder up)")
    p = add("top", "Every plugin's state, memory, CPU, calls, errors and restarts, refreshing in place.",
            examples=("%kplug top", "%kplug top --once", "%kplug top --interval 0.5 --duration 60"))
    p.add_argument("--once", action="store_true", help="a table of now, not refreshed")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    p.add_argument("--duration", type=float, default=None,
                   help="stop refreshing after this many seconds (default: until the next %%kplug top or disconnect)")
    p = add("eval", "Run the cell's JavaScript inside plugin NAME's VM and show its value (awaited if a "
                    "Promise). The server must run in dev mode (kplug serve --dev, or --local).", cell=True)
    p.add_argument("name")
    p = add("plugin", "The cell is plugin NAME's kernel.js: write it (with a plugin.json) to a scratch plugins "
                      "folder and load it, or restart it if it is loaded.", cell=True)
    p.add_argument("name")
    p.add_argument("--dir", type=Path, help="the plugins folder to write to (default: a scratch folder)")
    p.add_argument("--version", default="0.0.1", help="the version written to plugin.json")
    p.add_argument("--ts", action="store_true",
                   help="the cell is TypeScript: compiled with esbuild (installed from npm on first use), with a "
                        "source map so errors name the cell's lines")
    p = add("dev", "Develop a plugin project: PATH has plugin.json and src/kernel.ts (or kernel.js, or "
                   "src/index.ts), with or without package.json (its dependencies are installed). The kernel is "
                   "bundled with esbuild (from npm, on first use), loaded into the server, and rebuilt and reloaded "
                   "on every save; a failed build is shown with file, line and source, and the running copy keeps "
                   "running. Errors of %kplug call name the TypeScript lines (source maps).",
            examples=("%kplug dev ../my-plugin", "%kplug dev ../my-plugin --no-watch", "%kplug dev --stop"))
    p.add_argument("path", nargs="?", type=Path)
    p.add_argument("--no-watch", action="store_true", help="build and load once")
    p.add_argument("--stop", action="store_true", help="stop watching every project")
    p = add("help", "Show the list of commands, or one command's help.")
    p.add_argument("topic", nargs="?")
    return root


_CELL_COMMANDS = {"eval", "plugin"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_json_args(text: str) -> list[Any]:
    """Whitespace-separated JSON values: ``1 "two" {"three": 3} [4]``."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return values
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            hint = ' (strings need double quotes: "Ada")' if text[pos:pos + 1].isalpha() else ""
            raise UsageError(f"%kplug call: argument {len(values) + 1} is not valid JSON{hint}: {exc.msg} "
                             f"at column {exc.pos + 1} of {text.strip()!r}") from None
        values.append(value)
        if pos < len(text) and not text[pos].isspace():
            raise UsageError(f"%kplug call: arguments must be separated by spaces (column {pos + 1} of "
                             f"{text.strip()!r})")


def split_options(text: str) -> tuple[str, list[str]]:
    """``NAME.METHOD [JSON ...] [--options]`` as the text of target and JSON values (quotes kept: JSON strings need
    them), and the option words for argparse. An option is a word starting with ``-`` and a letter or ``-``; the
    word after an option that takes a value is its value. A negative number is JSON."""
    decoder = json.JSONDecoder()
    kept: list[str] = []
    options: list[str] = []
    pos, expect_value = 0, False
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return " ".join(kept), options
        end = pos
        while end < len(text) and not text[end].isspace():
            end += 1
        word = text[pos:end]
        if expect_value or re.match(r"^--?[A-Za-z-]", word):
            options.append(word)
            expect_value = not expect_value and word in _VALUE_OPTIONS
            pos = end
            continue
        if not kept:  # the target
            kept.append(word)
            pos = end
            continue
        try:
            _, json_end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            json_end = end  # parse_json_args reports it with its column
        kept.append(text[pos:json_end])
        pos = json_end


_VALUE_OPTIONS = {"-n", "--concurrency", "-c", "--warmup"}


class Session:
    """The connection the magics use (one per IPython shell), and where ``%%kplug plugin`` writes."""

    def __init__(self) -> None:
        self.client: Client | None = None
        self.connection: Connection | None = None
        self.local: LocalServer | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.tops: list[Top] = []
        self._ts: tempfile.TemporaryDirectory[str] | None = None
        self.recorder: Recorder | None = None
        self.dev: dict[str, DevProject] = {}
        #: plugin name -> what maps positions in its built kernel.js back to its sources
        self.mappers: dict[str, Callable[[str], str]] = {}

    def connect(self, url: str, token: str | None, source: str) -> Client:
        self.disconnect()
        self.client = Client(url, token)
        self.connection = Connection(self.client.url, token, source)
        return self.client

    def connect_local(self, plugins: Path | None) -> Client:
        self.disconnect()
        self.local = LocalServer(plugins).start()
        self.client = Client(self.local.url, self.local.token)
        self.connection = Connection(self.local.url, self.local.token, "local")
        return self.client

    def require(self) -> Client:
        if self.client is not None:
            return self.client
        found = discover()
        if found is None:
            raise UsageError("%kplug: not connected. Use %kplug connect URL TOKEN, set KPLUG_LAB_URL and "
                             "KPLUG_LAB_TOKEN, run this kernel from a Jupyter server with kplug_lab enabled, "
                             "or %kplug connect --local")
        return self.connect(found.url, found.token, found.source)

    def scratch_dir(self) -> Path:
        if self.local is not None:
            return self.local.plugins_dir
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="kplug-scratch-")
        return Path(self._scratch.name)

    def stop_tops(self) -> None:
        for top in self.tops:
            top.stop()
        self.tops.clear()

    def stop_recording(self) -> Recorder | None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.stop()
        return recorder

    def stop_dev(self) -> list[str]:
        names = list(self.dev)
        for project in self.dev.values():
            project.stop()
        self.dev.clear()
        return names

    def ts_sources(self) -> Path:
        """Where ``%%kplug plugin --ts`` keeps cells' TypeScript (outside any plugins folder a server watches)."""
        if self._ts is None:
            self._ts = tempfile.TemporaryDirectory(prefix="kplug-ts-")
        return Path(self._ts.name)

    def disconnect(self) -> None:
        self.stop_tops()
        self.stop_dev()
        self.stop_recording()
        if self.client is not None:
            self.client.close()
        self.client = None
        self.connection = None
        if self.local is not None:
            self.local.stop()
            self.local = None

    def close(self) -> None:
        self.disconnect()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        if self._ts is not None:
            self._ts.cleanup()
            self._ts = None


@magics_class
class KplugMagics(Magics):
    """``%kplug`` / ``%%kplug``: see ``%kplug help``."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self.session = Session()
        self._parser = _parser()
        atexit.register(self.session.close)

    @no_var_expand
    @line_cell_magic
    def kplug(self, line: str, cell: str | None = None) -> Any:
        command, _, rest = line.strip().partition(" ")
        if not command or command in ("help", "-h", "--help"):
            return self._help(rest.strip())
        if command == "bench" and not re.search(r"(^|\s)(-h|--help)(\s|$)", rest):
            if cell is not None:
                raise UsageError("%kplug bench is a line magic")
            json_text, options = split_options(rest)
            args = self._parser.parse_args(["bench", *options])
            args.args = [json_text]
            return self._do_bench(args, cell)
        if command == "call" and not re.search(r"(^|\s)(-h|--help)(\s|$)", rest):
            if cell is not None:
                raise UsageError("%kplug call is a line magic: %kplug call NAME.METHOD [JSON ...]")
            target, _, args_text = rest.strip().partition(" ")
            return self._call(target, parse_json_args(args_text))
        try:
            argv = shlex.split(line)
            if argv[:1] == ["connect"] and len(argv) == 3 and not argv[1].startswith("-"):
                argv.insert(2, "--")  # "connect URL TOKEN": a token may begin with "-"
            args = self._parser.parse_args(argv)
        except _Help as h:
            return Message(h.text.rstrip())
        except ValueError as exc:  # shlex: unbalanced quotes
            raise UsageError(f"%kplug: {exc}") from None
        if args.command in _CELL_COMMANDS and cell is None:
            raise UsageError(f"{args.command} is a cell magic: put %%kplug {args.command} NAME on the first "
                             "line of a cell and the code below it")
        if args.command not in _CELL_COMMANDS and cell is not None:
            raise UsageError(f"%%kplug {args.command}: only eval and plugin take a cell; use %kplug {args.command}")
        return getattr(self, f"_do_{args.command}")(args, cell)

    # ---- subcommands --------------------------------------------------------------------------------

    def _help(self, topic: str) -> Message:
        if not topic:
            return Message(USAGE)
        try:
            self._parser.parse_args([topic, "--help"])
        except _Help as h:
            return Message(h.text.rstrip())
        except UsageError:
            pass
        raise UsageError(f"%kplug help: no command {topic!r}\n\n{USAGE}")

    def _do_connect(self, args: argparse.Namespace, cell: str | None) -> Message:
        if args.local:
            if args.url:
                raise UsageError("%kplug connect: give URL TOKEN or --local, not both")
            client = self.session.connect_local(args.plugins)
        elif args.url:
            if args.plugins:
                raise UsageError("%kplug connect: --plugins only goes with --local")
            try:
                client = self.session.connect(args.url, args.token, "explicit")
            except ValueError as exc:
                raise UsageError(f"%kplug connect: {exc}") from None
        else:
            self.session.disconnect()
            client = self.session.require()
        plugins = client.list_plugins()  # proves URL and token work now, not at the first real command
        assert self.session.connection is not None
        return Message(f"connected to {client.url} ({self.session.connection.source}): "
                       f"{len(plugins)} plugin(s)")

    def _do_disconnect(self, args: argparse.Namespace, cell: str | None) -> Message:
        was = self.session.connection
        self.session.disconnect()
        return Message("disconnected" if was else "not connected")

    def _do_list(self, args: argparse.Namespace, cell: str | None) -> PluginList:
        return PluginList(self.session.require().list_plugins())

    def _do_state(self, args: argparse.Namespace, cell: str | None) -> PluginView:
        return PluginView(self.session.require().state(args.name))

    def _do_load(self, args: argparse.Namespace, cell: str | None) -> PluginView:
        # relative to the kernel's folder: the server runs on this machine and has its own working folder
        return PluginView(self.session.require().load(str(Path(args.path).expanduser().resolve())))

    def _do_unload(self, args: argparse.Namespace, cell: str | None) -> Message:
        self.session.require().unload(args.name)
        return Message(f"unloaded {args.name}")

    def _do_reload(self, args: argparse.Namespace, cell: str | None) -> PluginView:
        return PluginView(self.session.require().reload(args.name))

    def _call(self, target: str, params: list[Any]) -> CallValue:
        plugin, dot, method = target.partition(".")
        if not dot or not plugin or not method:
            raise UsageError(f"%kplug call: the target must be NAME.METHOD (like hello.echo), got {target!r}")
        try:
            return CallValue(target, self.session.require().call(plugin, method, *params))
        except KplugError as exc:
            mapper = self.session.mappers.get(plugin)
            if mapper is not None:  # positions in the built kernel.js, shown in the sources
                exc.args = tuple(mapper(a) if isinstance(a, str) else a for a in exc.args)
            raise

    def _do_call(self, args: argparse.Namespace, cell: str | None) -> CallValue:
        return self._call(args.target, parse_json_args(" ".join(args.args)))

    def _do_logs(self, args: argparse.Namespace, cell: str | None) -> LogView | None:
        client = self.session.require()
        entries = client.logs(args.name, args.limit)
        if not args.follow:
            return LogView(entries)
        client.state(args.name)  # an unknown plugin fails here, not silently after a long wait
        with client.admin_socket() as admin:
            admin.subscribe(["log"])
            for e in entries:
                print(_log_line(e), flush=True)
            seen = 0
            try:
                while args.count is None or seen < args.count:
                    note = admin.next_notification(args.timeout if args.timeout is not None else 3600.0)
                    if note.method == "kplug.log" and note.params.get("plugin") == args.name:
                        print(_log_line(LogEntry.from_json(note.params)), flush=True)
                        seen += 1
            except TimeoutError:
                pass
            except KeyboardInterrupt:
                print("(stopped following)")
        return None

    def _do_tools(self, args: argparse.Namespace, cell: str | None) -> ToolList:
        return ToolList(self.session.require().tools())

    def _do_inspect(self, args: argparse.Namespace, cell: str | None) -> Any:
        from ._inspector import Inspector

        return Inspector(self.session.require(), select=args.name)

    def _do_bench(self, args: argparse.Namespace, cell: str | None) -> BenchResult:
        target, _, json_text = args.args[0].partition(" ") if args.args else ("", "", "")
        plugin, dot, method = target.partition(".")
        if not dot or not plugin or not method:
            raise UsageError(f"%kplug bench: the target must be NAME.METHOD (like hello.echo), got {target!r}")
        if args.n < 1 or args.concurrency < 1 or args.warmup < 0:
            raise UsageError("%kplug bench: -n and --concurrency must be at least 1, --warmup at least 0")
        params = parse_json_args(json_text)
        return run_bench(self.session.require(), plugin, method, params, n=args.n,
                         concurrency=min(args.concurrency, args.n), websocket=args.ws, warmup=args.warmup)

    def _do_record(self, args: argparse.Namespace, cell: str | None) -> Message:
        if args.stop:
            return Message("stopped recording" if self.session.stop_recording() else "not recording")
        if args.save is not None:
            recorder = self.session.recorder
            if recorder is None:
                raise UsageError("%kplug record --save: not recording; start with %kplug record, make calls, "
                                 "then save")
            path = args.save.expanduser()
            count = recorder.save(path, load_sanitize_patterns(args.sanitize or _find_sanitize_file()),
                                  title=args.title)
            self.session.stop_recording()
            return Message(f"saved {count} call(s) to {path}; replay them with: pytest --nbval --nbval-current-env "
                           f"--nbval-sanitize-with notebooks/nbval_sanitize.cfg {path}")
        client = self.session.require()
        self.session.stop_recording()
        self.session.recorder = Recorder(client, others=args.others)
        whose = "every client's calls" if args.others else "calls made from this notebook"
        return Message(f"recording {whose}; %kplug record --save PATH writes them as a test")

    def _do_top(self, args: argparse.Namespace, cell: str | None) -> Top | Message:
        client = self.session.require()
        if args.interval <= 0:
            raise UsageError("%kplug top: --interval must be a positive number of seconds")
        if args.once:
            return Message(top_text(client.stats()))
        self.session.stop_tops()  # one live table at a time: an older one stops refreshing
        quiet = Client(client.url, client.endpoint.token, timeout=client.timeout)  # not in the call history
        top = Top(quiet.stats, interval=args.interval, duration=args.duration, on_stop=quiet.close)
        self.session.tops.append(top)
        return top

    def _do_eval(self, args: argparse.Namespace, cell: str | None) -> CallValue:
        return CallValue(f"{args.name} (eval)", self.session.require().eval(args.name, cell or ""))

    def _do_plugin(self, args: argparse.Namespace, cell: str | None) -> PluginView:
        if not _NAME.match(args.name):
            raise UsageError(f"%%kplug plugin: {args.name!r} is not a usable folder name (letters, digits, . _ -)")
        client = self.session.require()
        folder = (args.dir or self.session.scratch_dir()) / args.name
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"name": args.name, "version": args.version, "kernels": ["all"],
                    "displayName": {"default": args.name}}
        (folder / "plugin.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if args.ts:
            src = self.session.ts_sources() / args.name
            build_cell(cell or "", args.name, src, folder, progress=_progress)
            sourcemap = SourceMap.load(folder / "kernel.js.map")
            self.session.mappers[args.name] = lambda text: map_positions(text, args.name, sourcemap, src)
        else:
            (folder / "kernel.js").write_text(cell or "")
            (folder / "kernel.js.map").unlink(missing_ok=True)
            self.session.mappers.pop(args.name, None)
        return PluginView(client.load(str(folder.resolve())))

    def _do_dev(self, args: argparse.Namespace, cell: str | None) -> Any:
        if args.stop:
            names = self.session.stop_dev()
            return Message(f"stopped watching {', '.join(names)}" if names else "not watching any project")
        if args.path is None:
            raise UsageError("%kplug dev: give the plugin project's folder (%kplug dev PATH), or --stop")
        client = self.session.require()
        project = DevProject(client, args.path.expanduser(), progress=_progress)
        old = self.session.dev.pop(project.name, None)
        if old is not None:
            old.stop()
        project.install_dependencies()
        record = project.build_and_load()
        if not record.ok:
            project.stop()
            raise BuildFailed(record.errors, record.output)
        self.session.mappers[project.name] = project.map
        if not args.no_watch:
            self.session.dev[project.name] = project
            project.watch()
        else:
            project.stop()
        return DevView(project)


def _progress(text: str) -> None:
    print(text, flush=True)


def _find_sanitize_file() -> Path | None:
    for folder in (Path.cwd(), *Path.cwd().parents):
        candidate = folder / "notebooks" / "nbval_sanitize.cfg"
        if candidate.is_file():
            return candidate
    return None


def _log_line(e: LogEntry) -> str:
    return f"{time.strftime('%H:%M:%S', time.localtime(e.time))} {e.level.upper():<5} [{e.plugin}] {e.message}"
