"""Keeping credentials out of logs and URLs.

* :func:`redact_uri` replaces the value of every credential-like query parameter (``token``, ``ticket``, ...)
  with ``[redacted]``; the standalone server's access log (:func:`log_request`) writes URIs only through it.
* A browser cannot set headers on a WebSocket, so ``kplug-client.js`` carries its token in the
  ``Sec-WebSocket-Protocol`` header instead of the URL: it offers ``kplug`` and ``kplug.token.<base64url>``;
  :func:`token_from_subprotocols` reads it back and :data:`SUBPROTOCOL` is the one the server selects.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tornado.web

__all__ = ["SUBPROTOCOL", "TOKEN_SUBPROTOCOL_PREFIX", "log_request", "redact_uri", "token_from_subprotocols"]

SUBPROTOCOL = "kplug"
TOKEN_SUBPROTOCOL_PREFIX = "kplug.token."
_SECRET_PARAM = re.compile(r"^(token|ticket|auth|key|password|secret|access_token|api_key|apikey)$", re.IGNORECASE)
#: the standalone server's access log (not tornado's own logger, which jupyter_server renames and re-parents when both
#: live in one process)
_access = logging.getLogger("kplug_lab.access")


def redact_uri(uri: str) -> str:
    """``uri`` with the values of credential-like query parameters replaced (the rest unchanged)."""
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(_SECRET_PARAM.match(k) for k, _ in pairs):
        return uri
    query = urlencode([(k, "[redacted]" if _SECRET_PARAM.match(k) else v) for k, v in pairs], safe="[]")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log line of the standalone server, as tornado writes it but with the URI redacted."""
    status = handler.get_status()
    log = _access.info if status < 400 else _access.warning if status < 500 else _access.error
    request = handler.request
    log("%d %s %s (%s) %.2fms", status, request.method, redact_uri(request.uri or ""), request.remote_ip,
        1000.0 * request.request_time())


def token_from_subprotocols(header: str) -> str | None:
    """The token a client offered as ``kplug.token.<base64url of its UTF-8>`` in ``Sec-WebSocket-Protocol``."""
    for offered in header.split(","):
        offered = offered.strip()
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            encoded = offered[len(TOKEN_SUBPROTOCOL_PREFIX):]
            try:
                raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
                return raw.decode("utf-8") or None
            except (binascii.Error, ValueError):
                return None
    return None
