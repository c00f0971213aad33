"""JSON-RPC as SiYuan answers it (spec §5.3), data in and text out: :mod:`kplug_lab.protocol.jsonrpc`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kplug_lab.errors import MethodNotFound, PluginCallError, PluginNotRunning
from kplug_lab.protocol.jsonrpc import (
    BAD_PARAMS,
    NO_PARAMS,
    Limits,
    Request,
    answer,
    answer_bad_params,
    encode_batch,
    parse,
    validate,
)


def _parsed(body: str | bytes, limits: Limits | None = None) -> Any:
    read = parse(body, limits or Limits())
    return json.loads(read) if isinstance(read, str) else read


@pytest.mark.parametrize(("body", "code", "data"), [
    ("{not json", -32700, "RPC request is not valid JSON"),
    ('{"jsonrpc":"2.0","id":1,"method":"m","params":[NaN]}', -32700, "RPC request is not valid JSON"),
    ("1" + "0" * 400, -32700, "RPC request is not valid JSON"),  # beyond a float64, as Go refuses it
    ("[]", -32600, "RPC request is not allowed to be an empty array"),
    ("null", -32600, "RPC request is not allowed to be an empty array"),
    ('{"jsonrpc":"1.0","id":7,"method":"m"}', -32600,
     "RPC request is not a valid JSON-RPC object: invalid jsonrpc version: 1.0"),
    ('{"jsonrpc":"2.0","id":7}', -32600, "RPC request is not a valid JSON-RPC object: missing method field"),
    ('{"jsonrpc":"2.0","id":7,"method":5}', -32600, "RPC request is not a valid JSON-RPC object: json: cannot "
     "unmarshal number into Go struct field Request.method of type string"),
    ('{"jsonrpc":"2.0","id":[1],"method":"m"}', -32600,
     "RPC request is not a valid JSON-RPC object: invalid id field: must be string, number, null or omitted"),
    ('"text"', -32600, "RPC request is not a valid JSON-RPC object: json: cannot unmarshal string into Go value "
     "of type jsonrpc.Request"),
])
def test_a_body_answered_without_any_call_has_siyuans_error_and_a_null_id(body: str, code: int, data: str) -> None:
    assert _parsed(body) == {"jsonrpc": "2.0", "error": {"code": code, "message": _message(code), "data": data},
                             "id": None}


def _message(code: int) -> str:
    return {-32700: "Parse error", -32600: "Invalid Request"}[code]


def test_a_body_over_the_size_limit_or_a_batch_over_the_count_limit_is_refused_before_parsing() -> None:
    big = _parsed('{"jsonrpc":"2.0","id":1,"method":"m"}', Limits(max_body_bytes=10))
    assert big["error"]["data"] == "RPC request is too large: 37 bytes, the limit is 10"
    batch = _parsed('[{"jsonrpc":"2.0","id":1,"method":"m"},{"jsonrpc":"2.0","id":2,"method":"m"}]',
                    Limits(max_batch=1))
    assert batch["error"]["data"] == "RPC batch has 2 requests, the limit is 1"


def test_a_request_without_params_is_told_apart_from_one_with_null_params() -> None:
    without = parse('{"jsonrpc":"2.0","id":1,"method":"m"}', Limits())
    null = parse('{"jsonrpc":"2.0","id":1,"method":"m","params":null}', Limits())
    assert isinstance(without, Request) and without.params is NO_PARAMS
    assert isinstance(null, Request) and null.params is BAD_PARAMS
    assert json.loads(answer_bad_params(null) or "") == {"jsonrpc": "2.0", "id": 1, "error": {
        "code": -32602, "message": "Invalid params", "data": "Invalid params: must be array or object if present"}}


def test_a_notification_has_no_id_and_gets_no_answer_whatever_happens() -> None:
    note = validate({"jsonrpc": "2.0", "method": "m", "params": {"a": 1}})
    assert isinstance(note, Request) and note.is_notification
    assert answer(note, 42, None) is None
    assert answer(note, None, MethodNotFound("no")) is None
    assert answer(note, None, RuntimeError("host bug")) is None
    null_id = validate({"jsonrpc": "2.0", "method": "m", "id": None})
    assert isinstance(null_id, Request) and not null_id.is_notification
    assert answer(null_id, 1, None) == '{"jsonrpc":"2.0","result":1,"id":null}'


def test_a_batch_is_handed_back_unvalidated_and_answered_in_request_order() -> None:
    batch = parse('[{"jsonrpc":"2.0","id":1,"method":"a"}, 5]', Limits())
    assert isinstance(batch, list) and len(batch) == 2
    first, second = validate(batch[0]), validate(batch[1])
    assert isinstance(first, Request) and isinstance(second, dict)
    assert encode_batch([answer(first, "x", None) or "", json.dumps(second, separators=(",", ":"))]) == (
        '[{"jsonrpc":"2.0","result":"x","id":1},{"jsonrpc":"2.0","error":{"code":-32600,"message":'
        '"Invalid Request","data":"RPC request is not a valid JSON-RPC object: json: cannot unmarshal number into '
        'Go value of type jsonrpc.Request"},"id":null}]')
    assert encode_batch([]) is None


def test_plugin_errors_keep_their_code_and_text_and_host_faults_leak_nothing() -> None:
    req = Request("m", NO_PARAMS, "a")
    assert json.loads(answer(req, None, PluginCallError("Error: boom")) or "")["error"] == {
        "code": -32603, "message": "Internal error", "data": "Error: boom"}
    assert json.loads(answer(req, None, PluginNotRunning("p")) or "")["error"] == {
        "code": -32002, "message": "Plugin not running"}
    assert json.loads(answer(req, None, RuntimeError("secret path /x")) or "")["error"] == {
        "code": -32603, "message": "Internal error", "data": 'error invoking method "m": internal host error'}


def test_a_result_that_json_cannot_carry_fails_only_its_own_entry() -> None:
    req = Request("m", NO_PARAMS, 3)
    failed = json.loads(answer(req, float("nan"), None) or "")
    assert failed["id"] == 3 and failed["error"]["code"] == -32603
    assert failed["error"]["data"].startswith('error encoding the result of "m":')


def test_a_lone_surrogate_from_js_is_escaped_so_the_answer_is_valid_utf8() -> None:
    text = answer(Request("m", NO_PARAMS, 1), "a\ud800é", None) or ""
    text.encode("utf-8")
    assert json.loads(text)["result"] == "a\ud800é"
