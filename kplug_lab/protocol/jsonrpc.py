"""JSON-RPC 2.0 as SiYuan reads and answers it (spec §5.3/§5.4), as data in and text out.

kplug_lab's [better] items are here too: per-entry encoding errors, body size and batch limits. Nothing here runs
a call: :func:`parse` turns a body into requests (or the text to answer at once), :func:`answer` turns one call's
outcome into its response text. The code that runs the calls, concurrently for a batch, is
:mod:`kplug_lab.host.calls`; the project's own dispatch rather than a library's is docs/adr/0001.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import INTERNAL_ERROR, KplugError

__all__ = [
    "BAD_PARAMS",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGES",
    "METHOD_NOT_FOUND",
    "NO_PARAMS",
    "PARSE_ERROR",
    "Limits",
    "Request",
    "answer",
    "answer_bad_params",
    "encode",
    "encode_batch",
    "error_response",
    "parse",
    "validate",
]

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    -32001: "Plugin not loaded",
    -32002: "Plugin not running",
}


class _NoParams:
    """The ``params`` of a request that has none. Not ``None``: ``"params": null`` is a different request (it
    is answered -32602), and a JS method called without params gets no argument at all, not ``null``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_PARAMS"


NO_PARAMS: Any = _NoParams()


class _BadParams:
    """The ``params`` of a request whose ``params`` member is neither an array nor an object: answered -32602
    with the request's id, without calling anything."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BAD_PARAMS"


BAD_PARAMS: Any = _BadParams()

_ABSENT = object()


@dataclass
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 1000
    call_timeout: float | None = None  # None: the host's default


@dataclass
class Request:
    method: str
    params: Any  # list, dict, NO_PARAMS or BAD_PARAMS
    id: Any  # absent for notifications

    @property
    def is_notification(self) -> bool:
        return self.id is _ABSENT


def error_response(code: int, data: Any = None, id_: Any = None, message: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message or MESSAGES.get(code, "Server error")}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


_MEMBERS = frozenset({"jsonrpc", "method", "params", "id"})
#: the non-ASCII letters Go's ``bytes.EqualFold`` takes for ASCII ones in these names (Kelvin sign, long s)
_GO_FOLD = str.maketrans({"\u212a": "k", "\u017f": "s"})


def _go_fold(name: str) -> str:
    return name.translate(_GO_FOLD).lower() if not name.isascii() else name.lower()


class _Members(dict):  # type: ignore[type-arg]
    """A JSON object that remembers its members in order, duplicates included (see :func:`_go_members`)."""

    pairs: list[tuple[str, Any]]

    @classmethod
    def of(cls, pairs: list[tuple[str, Any]]) -> _Members:
        obj = cls(pairs)
        obj.pairs = pairs
        return obj


def _needs_folding(obj: dict[str, Any]) -> bool:
    return any(k not in _MEMBERS and _go_fold(k) in _MEMBERS for k in obj)


def _go_members(obj: dict[str, Any]) -> dict[str, Any]:
    """The request members as Go's decoder fills its struct: names matched case-insensitively, each member in
    order, so the last of several spellings of one name wins (changes §3). Exact names only: as it came."""
    if not _needs_folding(obj):
        return obj
    folded: dict[str, Any] = {}
    for key, value in obj.pairs if isinstance(obj, _Members) else obj.items():
        name = _go_fold(key)
        if name in _MEMBERS:
            folded[name] = value
    return folded


def validate(obj: Any) -> Request | dict[str, Any]:
    """A Request, or the error response for an invalid one (id null, per SiYuan)."""
    if isinstance(obj, dict):
        obj = _go_members(obj)

    def bad(reason: str) -> dict[str, Any]:
        return error_response(INVALID_REQUEST, f"RPC request is not a valid JSON-RPC object: {reason}")

    if not isinstance(obj, dict):
        return bad(f"json: cannot unmarshal {_json_type(obj)} into Go value of type jsonrpc.Request")
    if "jsonrpc" not in obj:
        return bad("missing jsonrpc field")
    if obj["jsonrpc"] != "2.0":
        return bad(f"invalid jsonrpc version: {_go_repr(obj['jsonrpc'])}")
    method = obj.get("method")
    if method is None:
        return bad("missing method field")
    if not isinstance(method, str):
        return bad(f"json: cannot unmarshal {_json_type(method)} into Go struct field Request.method of type string")
    id_ = obj.get("id", _ABSENT)
    if id_ is not _ABSENT and id_ is not None and (isinstance(id_, bool) or not isinstance(id_, (str, int, float))):
        return bad("invalid id field: must be string, number, null or omitted")
    params = obj.get("params", _ABSENT)
    if params is _ABSENT:
        params = NO_PARAMS
    elif not isinstance(params, (list, dict)):
        params = BAD_PARAMS
    return Request(method, params, id_)


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if v is None:
        return "null"
    return "object"


def _go_repr(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def answer_bad_params(req: Request) -> str | None:
    """The answer to a request whose params are :data:`BAD_PARAMS` (None for a notification)."""
    if req.is_notification:
        return None
    return encode(error_response(INVALID_PARAMS, "Invalid params: must be array or object if present", req.id))


def answer(req: Request, result: Any, error: BaseException | None) -> str | None:
    """The encoded response to a call's outcome (``result``, or ``error`` if it failed), None for a notification.

    A :class:`~kplug_lab.errors.KplugError` is answered with its code and message; any other exception is a fault
    of the host, answered -32603 without its text (the caller logs it)."""
    if isinstance(error, KplugError):
        if req.is_notification:
            return None
        return encode(error_response(error.code, str(error) if error.code not in (-32001, -32002) else None, req.id,
                                     message=MESSAGES.get(error.code, "Server error")))
    if error is not None:
        if req.is_notification:
            return None
        return encode(error_response(INTERNAL_ERROR, f'error invoking method "{req.method}": internal host error',
                                     req.id))
    if req.is_notification:
        return None
    response = {"jsonrpc": "2.0", "result": result, "id": req.id}
    try:  # encoded once, here: a result that cannot be encoded fails only this entry [better]
        return _utf8_safe(_STRICT.encode(response), response)
    except (TypeError, ValueError, RecursionError) as exc:
        return encode(error_response(INTERNAL_ERROR, f'error encoding the result of "{req.method}": {exc}', req.id))


def encode_batch(responses: list[str]) -> str | None:
    """The answer to a batch from its entries' answers in request order; None when there is none (HTTP 204)."""
    return "[" + ",".join(responses) + "]" if responses else None


_STRICT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_STRICT_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _utf8_safe(text: str, value: Any) -> str:
    """``text`` unless it holds a lone surrogate (a JS string may), which UTF-8 cannot carry: then ``value``
    encoded with every non-ASCII character escaped, which JSON can carry (``"\\ud800"``)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _STRICT_ASCII.encode(value)
    return text


def encode(value: Any) -> str:
    """``value`` as compact JSON text that UTF-8 can carry."""
    return _utf8_safe(json.dumps(value, ensure_ascii=False, separators=(",", ":")), value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def _float64_int(text: str) -> int:
    if len(text) > 308:  # past float64's range, where a JS number (and Go's decoder) cannot follow
        _finite_float(text)
    return int(text)


def parse(body: bytes | str, limits: Limits) -> Request | list[Any] | str:
    """The parsed body: a :class:`Request`, a batch (a list of at least one entry, each still to
    :func:`validate`), or the response text to send at once (an error answered without any call)."""
    size = len(body)
    if size > limits.max_body_bytes:
        return encode(error_response(INVALID_REQUEST,
                                     f"RPC request is too large: {size} bytes, the limit is {limits.max_body_bytes}"))
    try:
        # strict JSON as Go parses it: no NaN/Infinity, no number beyond a float64
        parsed = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float,
                            parse_int=_float64_int)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return encode(error_response(PARSE_ERROR, "RPC request is not valid JSON"))
    if any(isinstance(o, dict) and _needs_folding(o) for o in (parsed if isinstance(parsed, list) else [parsed])):
        # a member spelled in another case: Go takes the members in order, which a dict has lost for duplicates
        parsed = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float,
                            parse_int=_float64_int, object_pairs_hook=_Members.of)
    if parsed is None or (isinstance(parsed, list) and not parsed):
        return encode(error_response(INVALID_REQUEST, "RPC request is not allowed to be an empty array"))
    if isinstance(parsed, list):
        if len(parsed) > limits.max_batch:
            return encode(error_response(
                INVALID_REQUEST, f"RPC batch has {len(parsed)} requests, the limit is {limits.max_batch}"))
        return parsed
    item = validate(parsed)
    return item if isinstance(item, Request) else encode(item)
