"""Host configuration: limits, timeouts, the SiYuan kernel to talk to, secrets and variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...sandbox import check_limits
from .bounds import MAX_FETCH_BODY, MAX_PENDING_BYTES

__all__ = ["HostConfig"]


@dataclass
class HostConfig:
    """Settings shared by every plugin of a host. Defaults are what ``kplug serve`` uses."""

    #: JS heap limit per plugin, bytes (the wasm linear memory gets some slack on top)
    memory_limit: int = 64 * 1024 * 1024
    #: CPU time one job (a call, a timer callback, a hook's synchronous part) may take, seconds
    cpu_limit: float = 2.0
    #: how long a lifecycle hook (onload, onrunning, onunload) may take to settle, seconds
    hook_timeout: float = 10.0
    #: how long an RPC call may take to settle, seconds
    call_timeout: float = 30.0
    #: restart backoff after a crash: first delay, factor, maximum (seconds)
    restart_initial: float = 1.0
    restart_factor: float = 2.0
    restart_max: float = 60.0
    #: set to 0 to never restart crashed plugins
    restart_limit: int = 10
    #: the SiYuan kernel that ``siyuan.client`` talks to, and its API token
    siyuan_url: str = "http://127.0.0.1:6806"
    siyuan_token: str = ""
    #: how often to ask that kernel which plugins SiYuan runs itself (those are not run here: one copy of a
    #: worker, kplug_lab/host/runtime/one_copy.py), seconds; 0 turns the check off
    siyuan_poll_interval: float = 5.0
    #: what ``siyuan.secrets.resolve`` / ``siyuan.vars.resolve`` substitute
    secrets: dict[str, str] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    #: UI language for displayName and i18n selection
    lang: str = "en"
    #: log lines kept per plugin for ``kplug.logs`` and the inspector
    log_buffer: int = 1000
    #: bytes of log text kept per plugin (the oldest lines go first), whatever the line count
    log_buffer_bytes: int = 4 * 1024 * 1024
    #: longest log line, bytes of UTF-8; longer text is cut and ends with a marker ("… [truncated 4.0 MiB]")
    log_line_max: int = 64 * 1024
    #: bytes one plugin may have waiting on one path at once: pushes queued for one client connection (SSE
    #: events, WebSocket frames, broadcasts), frames from the kernel's SSE and WebSocket not yet taken by the
    #: plugin. Past it the slow side is cut off (the connection is closed), never buffered
    max_pending_bytes: int = MAX_PENDING_BYTES
    #: how long a durable operation waits for the store's lock (SQLite's busy timeout), seconds; never longer
    #: than ``call_timeout``. Past it the operation fails in JS: "the durable store is busy (locked by another
    #: connection) for 5 s"
    durable_busy_timeout: float = 5.0
    #: where durable data (queues, key-value, schedules) and plain-folder storage live
    data_dir: Path | None = None
    #: host I/O operations (fetch, socket and stream calls, ...) one plugin may have waiting at once; more are
    #: refused with a clear error, since each holds host memory (outside the sandbox's limit) and maybe a socket
    max_io_in_flight: int = 1000
    #: keep each plugin's compiled kernel.js (QuickJS bytecode) in ``data_dir/bytecode`` so a restart or reload
    #: of unchanged code skips parsing (kplug_lab.sandbox.BytecodeCache: private folder, HMAC-checked entries).
    #: The host's own scripts (the prelude) are compiled once per process and kept in memory either way
    bytecode_cache: bool = True
    #: ``siyuan.client.fetch`` responses one plugin may have open at once (headers awaited or body not read to
    #: the end); each holds a connection to the kernel
    max_open_fetches: int = 64
    #: most bytes of a request body a plugin's ``siyuan.client.fetch`` may send, and of a ``body.proxy`` response a
    #: private route relays (past it the proxied response is refused, or cut off once started). Fetch response
    #: bodies are streamed: the host holds at most one 32 KiB chunk per open response (``max_open_fetches``)
    max_fetch_body: int = MAX_FETCH_BODY
    #: storage quota per plugin, bytes (None: unlimited)
    storage_quota: int | None = None
    #: SiYuan-strict mode: kplug_lab's own globals (structuredClone, siyuan.mcp, kplug, ...; the portability
    #: report's list) are absent, so that a plugin that runs here runs in SiYuan
    siyuan_strict: bool = False
    #: watch plugin folders and reload when kernel.js's content (its SHA-256) or plugin.json changes
    hot_reload: bool = True
    #: debounce for hot reload, milliseconds (SiYuan's: 300)
    reload_debounce_ms: int = 300
    #: opt-in tuning: wake a plugin's idle thread through eventfd doorbells on the CPU of the thread that calls it
    #: (Linux), and let it go once it stays busy. Faster sequential calls on a 2-vCPU VM, but CPU-bound plugins
    #: share the loop's CPU for a while, so off by default (docs/adr/0004-rpc-benchmark.md, addendum)
    follow_caller_cpu: bool = False

    def __post_init__(self) -> None:  # refuse a wrapping memory limit or a NaN CPU limit here, not at plugin start
        check_limits(memory_limit=self.memory_limit, cpu_limit=self.cpu_limit)
