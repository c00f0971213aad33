"""The private routes' request and response model (spec §3.8), as data in, data out.

``rpc/private.py`` does the I/O: it reads the request into :func:`request_object`'s plain values, checks what the
plugin's ``http`` handler answered with :func:`check_response`, and writes the result.

Plugin content is untrusted content served on a privileged origin (Jupyter's, where the user is logged in by
cookie; or kplug's own). So every private response carries :data:`PAGE_CSP`, a ``sandbox`` policy without
``allow-same-origin``: the page runs in an opaque origin, with no access to the server's cookies or same-origin
APIs. Headers that change how the browser treats the origin (:func:`host_owned_header`) are the host's; cookies
cannot shadow the server's session cookies and are scoped to ``/plugin/private/<name>/`` (:func:`plugin_cookie`).
See docs/sandbox.md.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..errors import KplugError

__all__ = ["HOP_BY_HOP", "PAGE_CSP", "UNSATISFIABLE", "PrivateResponse", "ResponseError", "UploadedFile",
           "check_response", "cookie_scope", "data_body", "go_format", "host_owned_header", "plugin_cookie",
           "raw_body", "redirect_location", "request_object", "single_range"]

#: the server's own session cookies (SiYuan's, Jupyter's XSRF and login cookies) are not the plugin's business
_SESSION_COOKIE = re.compile(r"^(siyuan|_xsrf|username-.*)$")
_CREDENTIAL_HEADERS = frozenset({"cookie", "authorization", "x-auth-token"})
#: headers that belong to one connection, never passed on (nor set by a plugin)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-connection", "set-cookie", "content-length"})
#: what a plugin's page may do in the browser: scripts, forms, popups and downloads, all inside an opaque origin
#: (never ``allow-same-origin``); jupyter-server serves user files under ``sandbox allow-scripts`` likewise
PAGE_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
#: response headers only the host sets: they decide how the browser treats the server's origin
_HOST_OWNED = re.compile(
    r"^(content-security-policy(-report-only)?|set-cookie|set-cookie2|access-control-.*|cross-origin-.*"
    r"|clear-site-data|service-worker-allowed|strict-transport-security|origin-agent-cluster"
    r"|public-key-pins(-report-only)?)$", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
#: session cookies of the servers kplug_lab runs in (and their prefixed forms): a plugin may not shadow them
_SERVER_COOKIE = re.compile(r"^(__host-|__secure-)?(siyuan|_xsrf|username-.*|jupyterhub-.*|kplug.*)$", re.IGNORECASE)
_SAME_SITE = {2: "Lax", 3: "Strict", 4: "None"}


class ResponseError(KplugError):
    """The plugin's response cannot be served: ``status`` and the text the client gets."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    def __repr__(self) -> str:
        return f"ResponseError({self.status}, {self.text!r})"


# ---- request -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    body: bytes


def _strings(values: Mapping[str, list[bytes]]) -> dict[str, list[str]]:
    return {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in values.items()}


def request_object(name: str, path: str, *, method: str, uri: str, version: str, host: str, remote_ip: str,
                   headers: Iterable[tuple[str, str]], cookies: Iterable[tuple[str, str]],
                   query: Mapping[str, list[bytes]], body: bytes, form: Mapping[str, list[bytes]],
                   files: Mapping[str, list[UploadedFile]]) -> dict[str, Any]:
    """The JSON of §3.8.1 (binary parts as base64; the prelude turns them into data objects). [better]
    Credentials (``Authorization``, ``Cookie``, ``X-Auth-Token``, ``?token=``) and the server's own session
    cookies never reach the plugin; urlencoded forms are parsed."""
    parts = urlsplit(uri)
    kept_headers: dict[str, list[str]] = {}
    content_type = referer = user_agent = ""
    for key, value in headers:
        lower = key.lower()
        if lower not in _CREDENTIAL_HEADERS:
            kept_headers.setdefault(key, []).append(value)
        if lower == "content-type" and not content_type:
            content_type = value
        elif lower == "referer" and not referer:
            referer = value
        elif lower == "user-agent" and not user_agent:
            user_agent = value
    kept_cookies: dict[str, list[str]] = {}
    for key, value in cookies:
        if not _SESSION_COOKIE.match(key):
            kept_cookies.setdefault(key, []).append(value)
    kept_query = {k: v for k, v in _strings(query).items() if k != "token"}
    ctype = content_type.split(";")[0].strip().lower()
    request_body: dict[str, Any] = {"form": None, "dataBase64": base64.b64encode(body).decode("ascii")}
    if ctype == "multipart/form-data":
        request_body = {"form": {"values": _strings(form), "files": {
            name_: [{"filename": f.filename, "size": len(f.body), "dataBase64": base64.b64encode(f.body).decode(),
                     "headers": {"Content-Disposition": [f'form-data; name="{name_}"; filename="{f.filename}"'],
                                 "Content-Type": [f.content_type]}} for f in uploaded]
            for name_, uploaded in files.items()}}, "data": None}
    elif ctype == "application/x-www-form-urlencoded":  # [better] SiYuan loses these
        request_body["form"] = {"values": _strings(form), "files": {}}
    sub = "/" + path
    return {
        "url": {"user": None, "host": host, "path": unquote(parts.path), "pathname": parts.path,
                "fragment": "", "hash": "", "search": parts.query, "query": kept_query},
        "request": {"method": method, "uri": uri, "proto": version,
                    "protoMajor": 1, "protoMinor": 0 if version == "HTTP/1.0" else 1,
                    "headers": kept_headers, "cookies": kept_cookies,
                    "contentType": ctype, "contentLength": len(body) if body else -1,
                    "referer": referer, "userAgent": user_agent, "body": request_body},
        "context": {"path": sub, "fullPath": "/plugin/private/:name/*path", "clientIp": remote_ip,
                    "remoteIp": remote_ip, "remoteAddr": remote_ip,
                    "params": {"name": [name], "path": [sub]}},
        "port": None,
    }


# ---- response ----------------------------------------------------------------------------------------------

def host_owned_header(name: str) -> bool:
    """True for a response header only the host may set (CSP, cookies, CORS, cross-origin isolation, ...)."""
    return bool(_HOST_OWNED.match(name))


def cookie_scope(request_path: str, name: str) -> str:
    """The path a plugin's cookies are confined to: ``<base>/plugin/private/<name>/`` of the request's path."""
    marker = f"/plugin/private/{quote(name)}"
    at = request_path.find(marker)
    return (request_path[:at] if at > 0 else "") + marker + "/"


def plugin_cookie(record: Any, scope: str) -> str | None:
    """A Go ``http.Cookie`` record (member names case-insensitive) as a ``Set-Cookie`` value, confined to
    ``scope`` ([better]: no ``Domain``; a path outside the plugin's own becomes its own), or None for a cookie
    that would shadow the server's session cookies."""
    if not isinstance(record, dict):
        raise ResponseError(500, "invalid response format")
    c = {str(k).lower(): v for k, v in record.items()}
    name = str(c.get("name") or "")
    if not name or not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
        raise ResponseError(500, f"invalid cookie name {name!r}")
    if _SERVER_COOKIE.match(name):
        return None
    value = str(c.get("value") or "")
    if not re.fullmatch(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*", value):
        raise ResponseError(500, f"invalid cookie value for {name!r}")
    path = str(c.get("path") or "")
    if not (path == scope.rstrip("/") or path.startswith(scope)) or not re.fullmatch(r"[\x21-\x3a\x3c-\x7e]*", path):
        path = scope
    out = [f'{name}="{value}"' if c.get("quoted") else f"{name}={value}", f"Path={path}"]
    expires = c.get("expires")
    if isinstance(expires, str) and expires and not expires.startswith("0001-01-01"):
        try:
            when = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            raise ResponseError(500, f"invalid cookie expiry {expires!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        out.append("Expires=" + email.utils.format_datetime(when.astimezone(datetime.UTC), usegmt=True))
    max_age = c.get("maxage")
    if isinstance(max_age, (int, float)) and not isinstance(max_age, bool) and max_age:
        out.append(f"Max-Age={int(max_age)}" if max_age > 0 else "Max-Age=0")
    if c.get("httponly"):
        out.append("HttpOnly")
    if c.get("secure"):
        out.append("Secure")
    if c.get("samesite") in _SAME_SITE:
        out.append(f"SameSite={_SAME_SITE[c['samesite']]}")
    if c.get("partitioned"):
        out.append("Partitioned")
    return "; ".join(out)


@dataclass
class PrivateResponse:
    """A checked ``http`` handler response (§3.8.2), ready to write."""

    #: the plugin's status, 0 when it gave none
    status: int
    #: header operations in order: ``(name, value)`` appends a value, ``(name, None)`` clears the header
    headers: list[tuple[str, str | None]] = field(default_factory=list)
    #: ``Set-Cookie`` values, already confined to the plugin's path
    set_cookies: list[str] = field(default_factory=list)
    #: the plugin's headers the host owns, not applied (for the log)
    ignored_headers: list[str] = field(default_factory=list)
    #: how many cookies were dropped for shadowing the server's session cookies (for the log)
    dropped_cookies: int = 0
    #: which body: "data", "file", "string", "raw", "redirect", "proxy", "stream", or "empty"
    body_kind: str = "empty"
    #: the plugin's spec of that body (None for "empty")
    body: Any = None


_BODY_KINDS = ("data", "file", "string", "raw", "redirect", "proxy", "stream")


def check_response(name: str, res: Any, scope: str) -> PrivateResponse:
    """The plugin's ``http`` handler answer, checked; :class:`ResponseError` for one that cannot be served.
    ``scope`` is :func:`cookie_scope` of the request."""
    if not isinstance(res, dict):
        raise ResponseError(500, f"[plugin:{name}] Error occurred while handling HTTP request: invalid response format")
    status = res.get("statusCode") or 0
    if isinstance(status, bool) or not isinstance(status, (int, float)) or int(status) != status:
        raise ResponseError(500, "invalid response format")
    out = PrivateResponse(int(status))
    headers = res.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, list) for v in headers.values()):
        raise ResponseError(500, "invalid response format")
    cookies = res.get("cookies") or []
    if not isinstance(cookies, list):
        raise ResponseError(500, "invalid response format")
    for record in cookies:
        cookie = plugin_cookie(record, scope)
        if cookie is None:
            out.dropped_cookies += 1
        else:
            out.set_cookies.append(cookie)
    for key, values in headers.items():
        if not isinstance(key, str) or not _HEADER_NAME.match(key):
            raise ResponseError(500, f"[plugin:{name}] invalid response header name {key!r}")
        if host_owned_header(key) or key.lower() in HOP_BY_HOP:
            out.ignored_headers.append(key)
            continue
        out.headers.extend((key, None if v == "" else str(v)) for v in values)  # [better] multi-value: appended
    body = res.get("body") or {}
    if not isinstance(body, dict):
        raise ResponseError(500, "invalid response format")
    for kind in _BODY_KINDS:
        if body.get(kind) is not None:
            out.body_kind, out.body = kind, body[kind]
            break
    if out.body_kind == "redirect":
        out.body = redirect_location(name, out.status, out.body)
    return out


def redirect_location(name: str, status: int, spec: Any) -> str:
    if not (300 <= status <= 308 or status == 201):
        raise ResponseError(500, f"[plugin:{name}] invalid redirect status {status}: use 300-308 or 201")
    location = spec.get("location") if isinstance(spec, dict) else None
    if not isinstance(location, str) or not location:
        raise ResponseError(500, f"[plugin:{name}] redirect.location must be a non-empty string")
    return location


def data_body(spec: Any, callback: str) -> tuple[str, str]:
    """A ``body.data`` response as ``(content type, text)``, the way gin renders each kind; ``callback`` is the
    request's ``?callback=`` (JSONP)."""
    kind = spec.get("type", "JSON") if isinstance(spec, dict) else None
    data = spec.get("data") if isinstance(spec, dict) else None
    ctype = "application/json; charset=utf-8"
    if kind in ("JSON", "AsciiJSON", "IndentedJSON", "PureJSON", "SecureJSON"):
        text = json.dumps(data, indent=4 if kind == "IndentedJSON" else None, ensure_ascii=kind == "AsciiJSON",
                          separators=None if kind == "IndentedJSON" else (",", ":"))
        if kind == "SecureJSON" and isinstance(data, list):
            text = "while(1);" + text
    elif kind == "JSONP":
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        if callback:
            text = f"{callback}({text});"
            ctype = "application/javascript; charset=utf-8"
    else:
        raise ResponseError(500, "Unsupported serialized data type")
    return ctype, text


def raw_body(spec: Any) -> tuple[str, bytes]:
    """A ``body.raw`` response as ``(content type, bytes)``."""
    data = base64.b64decode(spec.get("data", "")) if spec.get("base64") else str(spec.get("data", "")).encode()
    return spec.get("contentType") or "application/octet-stream", data


def go_format(fmt: str, values: list[Any]) -> str:
    """Go's ``fmt.Sprintf`` for the values a plugin can pass (all numbers are doubles, as in SiYuan)."""
    it = iter(values)

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        try:
            v = next(it)
        except StopIteration:
            return f"%!{m.group(0)[-1]}(MISSING)"
        return v if isinstance(v, str) else json.dumps(v) if not isinstance(v, (int, float)) else f"{v:g}"

    return re.sub(r"%[-+# 0-9.]*[vsdqfgetxX%]", sub, fmt)


#: :func:`single_range` of a range that does not overlap the file (HTTP 416)
UNSATISFIABLE = (-1, -1)


def single_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` as a half-open range; other forms serve the whole file."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip(), re.ASCII)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1, size) if m.group(2) else size
    else:
        start, end = max(0, size - int(m.group(2))), size
    if start >= size or start >= end:
        return UNSATISFIABLE
    return start, end
