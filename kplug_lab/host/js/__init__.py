"""The JavaScript a plugin's VM runs before its ``kernel.js``: one file per capability, in a declared order.

Two scripts, evaluated in this order by the plugin's boot:

* ``durable.js``, the ``kplug`` global, on its own: it captures the native bridge before the prelude takes it away.
* the prelude, every other global and ``siyuan``: the files of :data:`PRELUDE_PARTS`, joined in that order
  inside one function (``(function (G) { "use strict"; ... })(globalThis)``). The parts share that one scope, so a
  part uses what the parts before it declare, and a plugin sees only what a part puts on ``G`` or ``__kplug``.

Each part is preceded in the joined text by a line naming its file, and parts are not re-indented, so a line and
column of the prelude in a stack trace is found in its file with :func:`locate`. A new ``.js`` file here must be
added to :data:`PRELUDE_PARTS` (or be ``durable.js``); ``tests/host/test_prelude_parts.py`` checks it.
"""

from __future__ import annotations

import functools
from importlib import resources

__all__ = ["DURABLE", "PRELUDE_FILENAME", "PRELUDE_PARTS", "durable", "locate", "prelude"]

DURABLE = "durable.js"

PRELUDE_PARTS: tuple[str, ...] = (
    "core.js",              # the native bridge, `define`, __kplug, GoError
    "encoding.js",          # UTF-8 and base64, TextEncoder
    "text_decoder.js",      # TextDecoder: UTF-8, UTF-16LE/BE, fatal, ignoreBOM, streaming
    "console.js",           # console, siyuan.logger
    "timers.js",            # setTimeout & co., __kplug.timer
    "structured_clone.js",
    "event_target.js",      # Event, EventTarget, AbortSignal, AbortController
    "crypto.js",            # getRandomValues, randomUUID
    "crypto_subtle.js",     # crypto.subtle (host/ops/crypto.py)
    "buffer.js",
    "url.js",               # URL, URLSearchParams
    "streams_core.js",      # WHATWG Streams: promise helpers, sized queue, queuing strategies
    "streams_readable.js",  # ReadableStream, its default controller and reader
    "streams_readable_ops.js",  # tee, pipeTo, pipeThrough, async iteration, ReadableStream.from
    "streams_writable.js",  # WritableStream and its controller
    "streams_writer.js",    # WritableStreamDefaultWriter
    "streams_transform.js",  # TransformStream
    "blob.js",              # Blob, File
    "formdata.js",          # FormData, multipart encoding
    "require.js",           # built-in modules and the plugin's own files
    "values.js",            # data objects, exportValue
    "portability.js",       # kplug_lab's own globals: reported when touched, absent in SiYuan-strict mode
    "lifecycle.js",         # builds `siyuan` (__kplug.init) from the make* of the parts below; hooks; dev eval
    "event.js",             # siyuan.event
    "storage.js",           # siyuan.storage
    "rpc.js",               # siyuan.rpc
    "tools.js",             # siyuan.mcp, siyuan.agent
    "client_socket.js",     # siyuan.client.socket
    "client_events.js",     # siyuan.client.event
    "client.js",            # siyuan.client (fetch)
    "private_ports.js",     # siyuan.server.private
    "freeze.js",            # last: __kplug frozen
)
"""The prelude's files, in the order they run."""

PRELUDE_FILENAME = "<kplug prelude>"
"""The name the prelude is evaluated under: what a stack trace shows before ``:line:column``."""

_PACKAGE = "kplug_lab/host/js"
_OPEN = (
    f"// The kplug_lab prelude: the files of {_PACKAGE}/ named below, joined by {_PACKAGE}/__init__.py.\n"
    "(function (G) {\n"
    '"use strict";\n'
)
_CLOSE = "})(globalThis);\n"


def _read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def _header(name: str) -> str:
    return f"// ---- {_PACKAGE}/{name} ----\n"


@functools.cache
def _joined() -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """The prelude's text, and each part's name with the lines (1-based, end excluded) it takes in the text."""
    chunks = [_OPEN]
    line = _OPEN.count("\n") + 1
    spans = []
    for name in PRELUDE_PARTS:
        text = _read(name)
        if not text.endswith("\n"):
            text += "\n"
        chunks += [_header(name), text]
        line += 1
        spans.append((name, line, line + text.count("\n")))
        line = spans[-1][2]
    chunks.append(_CLOSE)
    return "".join(chunks), tuple(spans)


def prelude() -> str:
    """The prelude's source: the parts of :data:`PRELUDE_PARTS` in one function scope (read once, then cached)."""
    return _joined()[0]


@functools.cache
def durable() -> str:
    """The source of ``durable.js``, the ``kplug`` global."""
    return _read(DURABLE)


def locate(line: int) -> tuple[str, int]:
    """The part, and the line in it, of line ``line`` of :func:`prelude` (as a stack trace gives it).

    A line outside every part (the function around them, a header line) raises ``ValueError``.
    """
    for name, start, end in _joined()[1]:
        if start <= line < end:
            return name, line - start + 1
    raise ValueError(f"line {line} of the prelude is in none of its parts")
