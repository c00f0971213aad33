"""Cross-origin access to the standalone server (``kplug serve --allow-origin``).

A SiYuan frontend plugin runs on SiYuan's origin (``http://127.0.0.1:6806``) and calls the standalone server on
another port: the browser asks first (an ``OPTIONS`` preflight, because the call carries ``Authorization`` and
``Content-Type: application/json``) and then shows the answer to the page only if it names the page's origin in
``Access-Control-Allow-Origin``. By default no other origin is allowed (same-origin only).

Allowing an origin does not open the server to cross-site request forgery: the standalone server authenticates
by token, sent in a header (or ``?token=``), never by cookie, so a page can only call it with a token it was
given. In Jupyter mode the server's own ``allow_origin`` / ``allow_origin_pat`` settings apply instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "PREFLIGHT_MAX_AGE", "CORSPolicy"]

ALLOWED_HEADERS = "Authorization, Content-Type"
ALLOWED_METHODS = "GET, POST, OPTIONS"
#: how long a browser may cache a preflight answer, seconds
PREFLIGHT_MAX_AGE = 600


class CORSPolicy:
    """The origins allowed to call: exact origins (``scheme://host[:port]``), or ``*`` for any."""

    def __init__(self, origins: Iterable[str] = ()) -> None:
        self.any = False
        exact = set()
        for given in origins:
            if given == "*":
                self.any = True
            else:
                exact.add(_origin(given))
        self.origins = frozenset(exact)

    def __bool__(self) -> bool:
        return self.any or bool(self.origins)

    def __repr__(self) -> str:
        return f"CORSPolicy({['*'] if self.any else sorted(self.origins)!r})"

    def allow_origin_header(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None if it may not call."""
        if not origin:
            return None
        if self.any:
            return "*"
        return origin if origin.lower() in self.origins else None


def _origin(text: str) -> str:
    """``text`` as a browser writes it in an ``Origin`` header (lower case, no trailing slash), or ValueError."""
    example = "for example http://127.0.0.1:6806"
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"allowed origin {text!r} is not an origin: give scheme://host[:port] ({example}) or *")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"allowed origin {text!r} has more than scheme://host[:port] ({example})")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"allowed origin {text!r} has an invalid port ({example})") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")
