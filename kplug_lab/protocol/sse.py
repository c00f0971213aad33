"""Server-Sent Events (``text/event-stream``) as data in, data out.

* :func:`encode_event`: one event as SiYuan writes it (gin-contrib/sse), for a plugin's ``siyuan.server.private``
  ``es`` slot (spec §3.8.4).
* :class:`EventStreamParser`: the WHATWG HTML "event stream interpretation", for a plugin's subscriptions to the
  kernel (``siyuan.client.event``, spec §3.7): bytes in, :class:`ServerSentEvent` out, with the last event ID
  and the reconnection time the stream asked for. The connection and its reconnects are the host's
  (``host/client_events.py``).

The parser is the project's own rather than ``httpx-sse``'s ``SSEDecoder`` (docs/adr/0005): that one reads
``retry:`` with ``int()``, which takes non-ASCII digits, signs, spaces and underscores (``"٣٠٠"``, ``"-5"``,
``" 5"``) where the standard takes ASCII digits only; it dispatches events that have no data; and it does
not reconnect, so the reconnect loop would stay ours anyway.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["EventStreamParser", "ServerSentEvent", "encode_event"]


# ---- encoding (gin-contrib/sse) ----------------------------------------------------------------------------

def _go_json(value: Any) -> str:
    """One line of JSON as Go's ``json.Encoder`` writes it (HTML characters escaped)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def encode_event(event: dict[str, Any]) -> str:
    """One event in gin-contrib/sse's encoding. ``event["data"]`` is ``{"json": value}`` (objects and arrays)
    or ``{"text": str}`` (everything else, already stringified by the plugin side)."""
    out = []
    if event.get("id"):
        out.append("id:" + str(event["id"]).replace("\n", "\\n").replace("\r", "\\r") + "\n")
    if event.get("event"):
        out.append("event:" + str(event["event"]).replace("\n", "\\n").replace("\r", "\\r") + "\n")
    retry = event.get("retry")
    if isinstance(retry, (int, float)) and not isinstance(retry, bool) and retry >= 1:
        out.append(f"retry:{int(retry)}\n")
    data = event.get("data") or {}
    if "json" in data:
        out.append("data:" + _go_json(data["json"]) + "\n\n")
    else:
        out.append("data:" + str(data.get("text", "")).replace("\n", "\ndata:").replace("\r", "\\r") + "\n\n")
    return "".join(out)


# ---- parsing (WHATWG) --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerSentEvent:
    data: str
    #: the event type; ``"message"`` when the stream named none
    event: str = "message"
    last_event_id: str = ""


_ASCII_DIGITS = re.compile(r"[0-9]+")
_LINE_END = re.compile(r"\r\n|\r|\n")


class EventStreamParser:
    """One event stream, across reconnections: feed it what arrives, take the events it completes.

    Only CR LF, CR and LF end lines (not the other line breaks of ``str.splitlines``); the bytes are UTF-8,
    invalid sequences replaced; one leading byte order mark is dropped.
    """

    def __init__(self) -> None:
        #: the ID to send as ``Last-Event-ID`` when reconnecting ("" for none)
        self.last_event_id = ""
        #: the reconnection time the stream asked for (``retry:``), in milliseconds; None if it did not
        self.retry_ms: int | None = None
        self._id_buffer = ""
        self._data: list[str] = []
        self._event = ""
        self._start_stream()

    def _start_stream(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._at_start = True
        self._after_cr = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events that ``chunk``, the next bytes of the stream, completes."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            text = text.removeprefix("\ufeff")
        if self._after_cr:  # a CR LF split across chunks: the CR already ended the line
            text = text.removeprefix("\n")
        text = self._pending + text
        lines = _LINE_END.split(text)
        self._pending = lines.pop()
        self._after_cr = text.endswith("\r")
        events = []
        for line in lines:
            event = self.feed_line(line)
            if event is not None:
                events.append(event)
        return events

    def feed_line(self, line: str) -> ServerSentEvent | None:
        """One line without its line ending; the event, when the line completes one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
        elif name == "retry" and _ASCII_DIGITS.fullmatch(value):
            self.retry_ms = int(value)
        return None

    def end_of_stream(self) -> None:
        """The connection ended (cleanly or not): an event not yet completed is dropped, and the next bytes fed
        are a new connection's. The last event ID and the reconnection time are kept."""
        self._data, self._event = [], ""
        self._id_buffer = self.last_event_id
        self._start_stream()

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent("\n".join(data), event or "message", self.last_event_id)
