"""JSON-RPC 2.0 processing of one HTTP body or WebSocket message, exactly as SiYuan answers (spec §5.3/§5.4),
plus kplug_lab's [better] items: per-call timeouts, per-entry encoding errors, size and batch limits.

It knows nothing about HTTP: :func:`process` takes bytes and a callable that runs one method, and returns the
response text, or ``None`` when there is nothing to send (HTTP 204). It lives in ``host/`` because two callers
need it: the wire (``rpc/dispatch.py`` re-exports it for the tornado handlers) and a plugin's own
``siyuan.client.fetch("/api/plugin/rpc/<name>")``, which the host answers without any HTTP (``plugin_routes.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import INTERNAL_ERROR, KplugError
from .api import NO_PARAMS

__all__ = [
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGES",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "Caller",
    "Limits",
    "Request",
    "error_response",
    "process",
    "start",
]

log = logging.getLogger("kplug_lab.rpc")

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

_ABSENT = object()


@dataclass
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 1000
    call_timeout: float | None = None  # None: the host's default


@dataclass
class Request:
    method: str
    params: Any  # list, dict or NO_PARAMS
    id: Any  # _ABSENT for notifications

    @property
    def is_notification(self) -> bool:
        return self.id is _ABSENT


Caller = Callable[[str, Any], Awaitable[Any]]


def error_response(code: int, data: Any = None, id_: Any = None, message: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message or MESSAGES.get(code, "Server error")}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


def _validate(obj: Any) -> Request | dict[str, Any]:
    """A Request, or the error response for an invalid one (id null, per SiYuan)."""
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
        return Request(method, _BadParams, id_)
    return Request(method, params, id_)


class _BadParamsType:
    pass


_BadParams = _BadParamsType()


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


async def _run_one(req: Request, caller: Caller, plugin: str) -> str | None:
    """The encoded response to one valid request, or None for a notification."""
    if req.params is _BadParams:
        return _bad_params(req)
    try:
        result = await caller(req.method, req.params)
    except Exception as exc:
        return _answer(req, plugin, None, exc)
    return _answer(req, plugin, result, None)


def _bad_params(req: Request) -> str | None:
    if req.is_notification:
        return None
    return _dumps(error_response(INVALID_PARAMS, "Invalid params: must be array or object if present", req.id))


def _answer(req: Request, plugin: str, result: Any, error: BaseException | None) -> str | None:
    """The encoded response to a call's outcome (``result``, or ``error`` if it failed), None for a notification."""
    if isinstance(error, KplugError):
        if req.is_notification:
            return None
        return _dumps(error_response(error.code, str(error) if error.code not in (-32001, -32002) else None, req.id,
                                     message=MESSAGES.get(error.code, "Server error")))
    if error is not None:
        log.error("plugin [%s]: method %s failed inside the host", plugin, req.method, exc_info=error)
        if req.is_notification:
            return None
        return _dumps(error_response(INTERNAL_ERROR, f'error invoking method "{req.method}": internal host error',
                                     req.id))
    if req.is_notification:
        return None
    response = {"jsonrpc": "2.0", "result": result, "id": req.id}
    try:  # encoded once, here: a result that cannot be encoded fails only this entry [better]
        return _utf8_safe(_STRICT.encode(response), response)
    except (TypeError, ValueError, RecursionError) as exc:
        return _dumps(error_response(INTERNAL_ERROR, f'error encoding the result of "{req.method}": {exc}', req.id))


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


def _dumps(value: Any) -> str:
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


def _read(body: bytes | str, limits: Limits) -> Any:
    """The parsed body: a list of at least one entry (a batch), a :class:`Request`, or the response text to send
    (an error answered without any call)."""
    size = len(body)
    if size > limits.max_body_bytes:
        return _dumps(error_response(INVALID_REQUEST,
                                     f"RPC request is too large: {size} bytes, the limit is {limits.max_body_bytes}"))
    try:
        # strict JSON as Go parses it: no NaN/Infinity, no number beyond a float64
        parsed = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float,
                            parse_int=_float64_int)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _dumps(error_response(PARSE_ERROR, "RPC request is not valid JSON"))
    if parsed is None or (isinstance(parsed, list) and not parsed):
        return _dumps(error_response(INVALID_REQUEST, "RPC request is not allowed to be an empty array"))
    if isinstance(parsed, list):
        if len(parsed) > limits.max_batch:
            return _dumps(error_response(
                INVALID_REQUEST, f"RPC batch has {len(parsed)} requests, the limit is {limits.max_batch}"))
        return parsed
    item = _validate(parsed)
    return item if isinstance(item, Request) else _dumps(item)


async def process(body: bytes | str, caller: Caller, *, plugin: str = "", limits: Limits | None = None) -> str | None:
    """Answer one JSON-RPC body. ``None`` means: nothing to send (HTTP 204)."""
    read = _read(body, limits or Limits())
    if isinstance(read, Request):
        return await _run_one(read, caller, plugin)
    if not isinstance(read, list):
        return read  # type: ignore[no-any-return]
    return await _run_batch(read, caller, plugin)


async def _run_batch(batch: list[Any], caller: Caller, plugin: str) -> str | None:
    items = [_validate(x) for x in batch]
    tasks = [asyncio.ensure_future(_run_one(it, caller, plugin)) if isinstance(it, Request) else None
             for it in items]
    responses: list[str] = []
    for it, task in zip(items, tasks, strict=True):
        if task is None:
            responses.append(_dumps(it))
        else:
            res = await task
            if res is not None:
                responses.append(res)
    return "[" + ",".join(responses) + "]" if responses else None


def start(body: bytes | str, start_call: Callable[[str, Any], asyncio.Future[Any]], caller: Caller,
          reply: Callable[[str], None], *, plugin: str = "",
          limits: Limits | None = None) -> asyncio.Future[Any] | None:
    """:func:`process` for a transport that answers from callbacks (the WebSocket handler): a single request is
    answered from its call's done-callback, with no task and no coroutine (ADR 0004: a task per pipelined message
    was a large share of the loop thread's work); a batch is answered as :func:`process` answers it, in a task.

    ``start_call(method, params)`` starts a call and returns the future of its result (raising at once is fine);
    ``caller`` is the same as a coroutine, for batches. ``reply`` gets the response text, if there is one.
    Returns the future of the work still to do (cancel it to drop the answer), or None if it is all done.
    """
    read = _read(body, limits or Limits())
    if isinstance(read, list):
        async def batch() -> None:
            text = await _run_batch(read, caller, plugin)
            if text is not None:
                reply(text)

        return asyncio.ensure_future(batch())
    if not isinstance(read, Request):
        reply(read)
        return None
    req = read
    if req.params is _BadParams:
        text = _bad_params(req)
    else:
        try:
            call = start_call(req.method, req.params)
        except Exception as exc:
            text = _answer(req, plugin, None, exc)
        else:
            call.add_done_callback(lambda done: _reply_outcome(req, plugin, done, reply))
            return call
    if text is not None:
        reply(text)
    return None


def _reply_outcome(req: Request, plugin: str, done: asyncio.Future[Any], reply: Callable[[str], None]) -> None:
    if done.cancelled():
        return
    error = done.exception()
    text = _answer(req, plugin, None if error is not None else done.result(), error)
    if text is not None:
        reply(text)
