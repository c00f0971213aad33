"""Running the calls of one JSON-RPC body on the host's asyncio loop.

All parsing and encoding is :mod:`kplug_lab.protocol.jsonrpc`; this module only runs what it parsed: one call, or
a batch's calls concurrently, answering in request order. Two callers use it: the wire (``rpc/handlers.py``, for
HTTP and WebSocket) and the host's answering of a plugin's own ``siyuan.client.fetch("/api/plugin/rpc/<name>")``
(``route_answers.py``), which involves no HTTP at all.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import KplugError
from ..protocol import jsonrpc
from ..protocol.jsonrpc import BAD_PARAMS, Limits, Request

__all__ = ["NOTIFICATION", "Caller", "process", "start"]

#: true while a caller runs a notification (no ``id``): SiYuan runs those under the plugin's context, so a
#: transport that cancels calls when its client goes away leaves them alone (changes §3)
NOTIFICATION: contextvars.ContextVar[bool] = contextvars.ContextVar("kplug_notification", default=False)

log = logging.getLogger("kplug_lab.rpc")

Caller = Callable[[str, Any], Awaitable[Any]]


def _answer(req: Request, plugin: str, result: Any, error: BaseException | None) -> str | None:
    if error is not None and not isinstance(error, KplugError):
        log.error("plugin [%s]: method %s failed inside the host", plugin, req.method, exc_info=error)
    return jsonrpc.answer(req, result, error)


async def _run_one(req: Request, caller: Caller, plugin: str) -> str | None:
    """The encoded response to one valid request, or None for a notification."""
    if req.params is BAD_PARAMS:
        return jsonrpc.answer_bad_params(req)
    NOTIFICATION.set(req.is_notification)  # this coroutine's own context: a batch runs each entry in a task
    try:
        result = await caller(req.method, req.params)
    except Exception as exc:
        return _answer(req, plugin, None, exc)
    return _answer(req, plugin, result, None)


async def _run_batch(batch: list[Any], caller: Caller, plugin: str) -> str | None:
    items = [jsonrpc.validate(x) for x in batch]
    tasks = [asyncio.ensure_future(_run_one(it, caller, plugin)) if isinstance(it, Request) else None
             for it in items]
    responses: list[str] = []
    for it, task in zip(items, tasks, strict=True):
        if task is None:
            responses.append(jsonrpc.encode(it))
        else:
            res = await task
            if res is not None:
                responses.append(res)
    return jsonrpc.encode_batch(responses)


async def process(body: bytes | str, caller: Caller, *, plugin: str = "", limits: Limits | None = None) -> str | None:
    """Answer one JSON-RPC body. ``None`` means: nothing to send (HTTP 204)."""
    read = jsonrpc.parse(body, limits or Limits())
    if isinstance(read, Request):
        return await _run_one(read, caller, plugin)
    if isinstance(read, str):
        return read
    return await _run_batch(read, caller, plugin)


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
    read = jsonrpc.parse(body, limits or Limits())
    if isinstance(read, list):
        batch_items = read

        async def batch() -> None:
            text = await _run_batch(batch_items, caller, plugin)
            if text is not None:
                reply(text)

        return asyncio.ensure_future(batch())
    if isinstance(read, str):
        reply(read)
        return None
    req = read
    if req.params is BAD_PARAMS:
        text = jsonrpc.answer_bad_params(req)
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
