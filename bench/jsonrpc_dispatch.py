"""JSON-RPC dispatch: pjrpc vs kplug_lab's own (``protocol/jsonrpc.py``, run by ``host/calls.py``) vs bare
``json``, in one run.

Two questions, answered on the same requests:

1. Conformance: can pjrpc produce SiYuan's exact wire (spec §5.3/§5.4)? pjrpc is used the way it would be
   integrated: an ``AsyncDispatcher`` with the ``ParallelAsyncExecutor`` (batch entries concurrently) and a
   middleware that sends every request to the host (plugin methods are bound at run time inside JavaScript, so
   a static method registry cannot hold them), mapping host errors to SiYuan's codes and ``data`` texts.
2. Cost: microseconds per dispatch for a single call, a batch of 10, a method-not-found error and an invalid
   request, against bare ``json.loads`` + ``json.dumps`` of a hand-built response.

Usage: ``python bench/jsonrpc_dispatch.py [--json OUT] [--quick]``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pjrpc
from _common import arg_parser, format_table, write_json
from pjrpc.common import UNSET, Response
from pjrpc.server import AsyncDispatcher
from pjrpc.server import exceptions as pj_errors
from pjrpc.server.dispatcher import ParallelAsyncExecutor

from kplug_lab.errors import MethodNotFound
from kplug_lab.host.calls import process
from kplug_lab.host.runtime.api import NO_PARAMS

PLUGIN = "p"
NO_PARAMS_RESULT = "<called without params>"


class Host:
    """The host side of both dispatchers: ``echo``, ``unencodable`` and ``sleepy`` (which records overlap)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0

    async def call(self, method: str, params: Any) -> Any:
        if method == "echo":
            if params is NO_PARAMS or params is None:
                return NO_PARAMS_RESULT
            return params[0] if isinstance(params, list) and len(params) == 1 else params
        if method == "unencodable":
            return math.nan
        if method == "sleepy":
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await asyncio.sleep(0.01)
            self.in_flight -= 1
            return "slept"
        raise MethodNotFound(f"method [{method}] not found in plugin [{PLUGIN}]")


def make_pjrpc(host: Host) -> Callable[[str], Awaitable[str | None]]:
    async def to_host(request: pjrpc.Request, context: Any, handler: Any) -> Any:
        try:
            result = await host.call(request.method, request.params)
        except MethodNotFound as exc:
            raise pj_errors.MethodNotFoundError(data=str(exc)) from None
        return UNSET if request.id is None else Response(id=request.id, result=result)

    dispatcher: AsyncDispatcher[None] = AsyncDispatcher(executor=ParallelAsyncExecutor(), middlewares=[to_host])

    async def dispatch(body: str) -> str | None:
        try:
            out = await dispatcher.dispatch(body, None)
        except Exception as exc:  # the finding is that it raises at all
            return f"<raised {type(exc).__name__}: {exc}>"
        return None if out is None else out[0]

    return dispatch


def make_ours(host: Host) -> Callable[[str], Awaitable[str | None]]:
    async def dispatch(body: str) -> str | None:
        return await process(body, host.call, plugin=PLUGIN)

    return dispatch


def bare_json(body: str) -> str:
    req = json.loads(body)
    return json.dumps({"jsonrpc": "2.0", "result": req["params"][0], "id": req["id"]})


def _req(id_: Any, method: str = "echo", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id_ is not ...:
        out["id"] = id_
    out.update(extra)
    return out


def _err(code: int, message: str, data: str | None, id_: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": id_}


INVALID = "RPC request is not a valid JSON-RPC object: "
BAD_PARAMS = "Invalid params: must be array or object if present"

# (what, request body, SiYuan's answer as parsed JSON; None = nothing sent, HTTP 204)
CASES: list[tuple[str, str, Any]] = [
    ("single call", json.dumps(_req(1, params=["hi"])), {"jsonrpc": "2.0", "result": "hi", "id": 1}),
    ('"id": null is a call, answered', json.dumps(_req(None, params=["hi"])),
     {"jsonrpc": "2.0", "result": "hi", "id": None}),
    ("notification: 204", json.dumps(_req(..., params=["hi"])), None),
    ("params absent: called without params", json.dumps(_req(1)), {"jsonrpc": "2.0", "result": NO_PARAMS_RESULT,
                                                                    "id": 1}),
    ('"params": null -> -32602 with the id', json.dumps(_req(1, params=None)),
     _err(-32602, "Invalid params", BAD_PARAMS, 1)),
    ("numeric id 1.5 echoed", json.dumps(_req(1.5, params=[1])), {"jsonrpc": "2.0", "result": 1, "id": 1.5}),
    ("boolean id rejected, id null", json.dumps(_req(True, params=[1])),
     _err(-32600, "Invalid Request", INVALID + "invalid id field: must be string, number, null or omitted")),
    ("missing jsonrpc: data text", '{"id":1,"method":"echo"}',
     _err(-32600, "Invalid Request", INVALID + "missing jsonrpc field")),
    ("missing method: data text", '{"jsonrpc":"2.0","id":1}',
     _err(-32600, "Invalid Request", INVALID + "missing method field")),
    ("invalid JSON: data text", "{x", _err(-32700, "Parse error", "RPC request is not valid JSON")),
    ("empty batch: data text", "[]",
     _err(-32600, "Invalid Request", "RPC request is not allowed to be an empty array")),
    ("literal null: empty-batch error", "null",
     _err(-32600, "Invalid Request", "RPC request is not allowed to be an empty array")),
    ("method not found: data text", json.dumps(_req(2, "nope")),
     _err(-32601, "Method not found", f"method [nope] not found in plugin [{PLUGIN}]", 2)),
    ("batch: a bad entry answered in place", json.dumps([_req(1, params=[1]), 5, _req(2, params=[2])]),
     [{"jsonrpc": "2.0", "result": 1, "id": 1},
      _err(-32600, "Invalid Request",
           INVALID + "json: cannot unmarshal number into Go value of type jsonrpc.Request"),
      {"jsonrpc": "2.0", "result": 2, "id": 2}]),
    ("batch: duplicate ids both answered", json.dumps([_req(1, params=["a"]), _req(1, params=["b"])]),
     [{"jsonrpc": "2.0", "result": "a", "id": 1}, {"jsonrpc": "2.0", "result": "b", "id": 1}]),
    ("[better] unencodable result fails that entry only",
     json.dumps([_req(1, "unencodable"), _req(2, params=["ok"])]),
     [_err(-32603, "Internal error",
           'error encoding the result of "unencodable": Out of range float values are not JSON compliant', 1),
      {"jsonrpc": "2.0", "result": "ok", "id": 2}]),
]


def _parse(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


async def conformance(name: str, dispatch: Callable[[str], Awaitable[str | None]]) -> list[tuple[str, bool, Any]]:
    rows = []
    for what, body, expected in CASES:
        got = _parse(await dispatch(body))
        rows.append((what, got == expected, got))
    return rows


async def batch_concurrency(make: Callable[[Host], Callable[[str], Awaitable[str | None]]]) -> int:
    host = Host()
    await make(host)(json.dumps([_req(i, "sleepy") for i in range(5)]))
    return host.max_in_flight


async def per_dispatch_us(fn: Callable[[str], Awaitable[Any]], body: str, n: int) -> float:
    for _ in range(min(200, n)):
        await fn(body)
    best = math.inf
    for _ in range(3):  # best of three: the machine is shared
        t0 = time.perf_counter()
        for _ in range(n):
            await fn(body)
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


async def main() -> int:
    args = arg_parser(__doc__, quick="fewer iterations").parse_args()
    n = 500 if args.quick else 5000

    host = Host()
    impls = {"pjrpc": make_pjrpc(host), "kplug": make_ours(host)}

    results = {name: await conformance(name, fn) for name, fn in impls.items()}
    failures: dict[str, list[dict[str, Any]]] = {name: [] for name in impls}
    rows = [("case", *impls)]
    for i, (what, _, expected) in enumerate(CASES):
        marks = []
        for name in impls:
            _, ok, got = results[name][i]
            marks.append("ok" if ok else "DIFF")
            if not ok:
                failures[name].append({"case": what, "expected": expected, "got": got})
        rows.append((what, *marks))
    concurrency = {name: await batch_concurrency(make) for name, make in
                   (("pjrpc", make_pjrpc), ("kplug", make_ours))}
    rows.append(("batch of 5 slow calls: max in flight", *(str(concurrency[name]) for name in impls)))
    print("Conformance with SiYuan's wire (spec §5.3/§5.4):")
    print(format_table(rows, right=(1, 2), indent="  "))

    async def bare(body: str) -> str:
        return bare_json(body)

    bodies = {
        "single": json.dumps(_req(1, params=["hi"])),
        "batch10": json.dumps([_req(i, params=[i]) for i in range(10)]),
        "not_found": json.dumps(_req(1, "nope")),
        "invalid": '{"id":1,"method":"echo"}',
    }
    metrics: dict[str, Any] = {}
    rows = [("request", "bare json", "pjrpc", "kplug", "pjrpc/kplug")]
    for label, body in bodies.items():
        row: dict[str, float] = {}
        if label == "single":
            row["bare"] = await per_dispatch_us(bare, body, n)
        for name, fn in impls.items():
            row[name] = await per_dispatch_us(fn, body, n)
        for k, v in row.items():
            metrics[f"{label}_{k}_us"] = round(v, 2)
        rows.append((label, f"{row['bare']:.1f}" if "bare" in row else "", f"{row['pjrpc']:.1f}",
                     f"{row['kplug']:.1f}", f"{row['pjrpc'] / row['kplug']:.2f}"))
    print(f"\nCost per dispatch (us, best of 3 x {n}):")
    print(format_table(rows, right=(1, 2, 3, 4), indent="  "))

    for name in impls:
        metrics[f"{name}_conformance_passed"] = sum(1 for _, ok, _ in results[name] if ok)
        metrics[f"{name}_batch_max_in_flight"] = concurrency[name]
    metrics["conformance_cases"] = len(CASES)
    print(f"\npjrpc {importlib.metadata.version('pjrpc')}: "
          f"{metrics['pjrpc_conformance_passed']}/{len(CASES)} cases as SiYuan answers; "
          f"kplug: {metrics['kplug_conformance_passed']}/{len(CASES)}")
    write_json(args.json, {"metrics": metrics, "differences": failures})
    return 0 if metrics["kplug_conformance_passed"] == len(CASES) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
