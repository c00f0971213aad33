"""The private routes' request and response model (spec §3.8), data in and data out:
:mod:`kplug_lab.protocol.private`."""

from __future__ import annotations

from typing import Any

import pytest

from kplug_lab.protocol.private import (
    PAGE_CSP,
    UNSATISFIABLE,
    ResponseError,
    UploadedFile,
    check_response,
    cookie_scope,
    data_body,
    go_format,
    plugin_cookie,
    request_object,
    single_range,
)

SCOPE = "/base/plugin/private/p/"


def _request(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "method": "POST", "uri": "/plugin/private/p/x?token=secret&a=1", "version": "HTTP/1.1", "host": "h",
        "remote_ip": "127.0.0.1", "headers": [("Content-Type", "application/x-www-form-urlencoded"),
                                              ("Authorization", "Token t"), ("Cookie", "siyuan=s; mine=1"),
                                              ("X-Auth-Token", "j"), ("Accept", "a"), ("Accept", "b")],
        "cookies": [("siyuan", "s"), ("_xsrf", "x"), ("username-127-0-0-1-8888", "u"), ("mine", "1")],
        "query": {"token": [b"secret"], "a": [b"1"]}, "body": b"f=v", "form": {"f": [b"v"]}, "files": {}}
    values.update(overrides)
    return request_object("p", "x", **values)


def test_the_request_object_carries_no_credentials_and_no_session_cookies() -> None:
    req = _request()
    assert req["request"]["headers"] == {"Content-Type": ["application/x-www-form-urlencoded"], "Accept": ["a", "b"]}
    assert req["request"]["cookies"] == {"mine": ["1"]}
    assert req["url"]["query"] == {"a": ["1"]}
    assert req["request"]["body"]["form"] == {"values": {"f": ["v"]}, "files": {}}
    assert req["context"]["params"] == {"name": ["p"], "path": ["/x"]}


def test_a_multipart_request_lists_its_files() -> None:
    req = _request(headers=[("Content-Type", "multipart/form-data; boundary=x")],
                   files={"up": [UploadedFile("a.txt", "text/plain", b"hi")]}, form={})
    assert req["request"]["body"]["form"]["files"]["up"][0] == {
        "filename": "a.txt", "size": 2, "dataBase64": "aGk=",
        "headers": {"Content-Disposition": ['form-data; name="up"; filename="a.txt"'], "Content-Type": ["text/plain"]}}


def test_host_owned_and_hop_by_hop_headers_are_ignored_and_the_rest_applied_in_order() -> None:
    response = check_response("p", {"statusCode": 201, "headers": {
        "Content-Security-Policy": ["default-src *"], "access-control-allow-origin": ["*"],
        "Set-Cookie": ["a=b"], "Connection": ["close"], "X-One": ["1", "2"], "X-Gone": [""]}}, SCOPE)
    assert response.status == 201
    assert response.headers == [("X-One", "1"), ("X-One", "2"), ("X-Gone", None)]
    assert response.ignored_headers == ["Content-Security-Policy", "access-control-allow-origin", "Set-Cookie",
                                        "Connection"]
    assert "allow-same-origin" not in PAGE_CSP and PAGE_CSP.startswith("sandbox ")


def test_cookies_are_confined_to_the_plugins_path_and_cannot_shadow_the_servers() -> None:
    response = check_response("p", {"cookies": [
        {"Name": "_xsrf", "Value": "x"}, {"name": "__Host-kplug-token", "value": "x"},
        {"name": "pref", "value": "1", "path": "/", "domain": "evil.example", "httpOnly": True, "sameSite": 3},
        {"name": "deep", "value": "2", "path": SCOPE + "sub"}]}, SCOPE)
    assert response.dropped_cookies == 2
    assert response.set_cookies == [f"pref=1; Path={SCOPE}; HttpOnly; SameSite=Strict", f"deep=2; Path={SCOPE}sub"]
    assert cookie_scope("/base/plugin/private/my%20p/x", "my p") == "/base/plugin/private/my%20p/"


@pytest.mark.parametrize(("res", "status", "text"), [
    ("nope", 500, "[plugin:p] Error occurred while handling HTTP request: invalid response format"),
    ({"statusCode": 1.5}, 500, "invalid response format"),
    ({"headers": {"X": "not a list"}}, 500, "invalid response format"),
    ({"headers": {"Bad Name": ["v"]}}, 500, "[plugin:p] invalid response header name 'Bad Name'"),
    ({"cookies": [{"name": "a", "value": "b;c"}]}, 500, "invalid cookie value for 'a'"),
    ({"statusCode": 200, "body": {"redirect": {"location": "/x"}}}, 500,
     "[plugin:p] invalid redirect status 200: use 300-308 or 201"),
])
def test_a_response_that_cannot_be_served_is_refused_with_a_reason(res: Any, status: int, text: str) -> None:
    with pytest.raises(ResponseError) as refused:
        check_response("p", res, SCOPE)
    assert (refused.value.status, refused.value.text) == (status, text)


def test_the_first_body_kind_present_is_the_one_served() -> None:
    response = check_response("p", {"statusCode": 302, "body": {"redirect": {"location": "/y"}, "proxy": {}}}, SCOPE)
    assert (response.body_kind, response.body) == ("redirect", "/y")
    assert check_response("p", {}, SCOPE).body_kind == "empty"
    assert plugin_cookie({"name": "ok", "value": "1", "quoted": True}, SCOPE) == f'ok="1"; Path={SCOPE}'


def test_data_bodies_render_as_gin_renders_them() -> None:
    assert data_body({"type": "SecureJSON", "data": [1]}, "") == ("application/json; charset=utf-8", "while(1);[1]")
    assert data_body({"type": "JSONP", "data": {"a": 1}}, "cb") == (
        "application/javascript; charset=utf-8", 'cb({"a":1});')
    assert data_body({"type": "AsciiJSON", "data": "é"}, "")[1] == '"\\u00e9"'
    with pytest.raises(ResponseError):
        data_body({"type": "XML", "data": 1}, "")


def test_go_format_fills_values_as_go_prints_them() -> None:
    assert go_format("%s is %d%% of %v; %x", ["a", 50.0, [1]]) == "a is 50% of [1]; %!x(MISSING)"


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-1", (0, 2)), ("bytes=5-", (5, 10)), ("bytes=-3", (7, 10)), ("bytes=2-100", (2, 10)),
    ("bytes=10-", UNSATISFIABLE), ("bytes=3-2", UNSATISFIABLE), ("bytes=0-1,3-4", None), ("bytes=-", None),
    ("bytes=\u0661-\u0662", None), ("items=0-1", None),
])
def test_a_single_byte_range_is_read_and_anything_else_serves_the_whole_file(header: str, expected: Any) -> None:
    assert single_range(header, 10) == expected
