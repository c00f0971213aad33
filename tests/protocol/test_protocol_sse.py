"""Server-Sent Events, data in and data out: :mod:`kplug_lab.protocol.sse`."""

from __future__ import annotations

import pytest

from kplug_lab.protocol.sse import EventStreamParser, ServerSentEvent, encode_event


def _feed(*chunks: bytes) -> tuple[EventStreamParser, list[ServerSentEvent]]:
    parser = EventStreamParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return parser, events


def test_events_are_dispatched_on_a_blank_line_with_their_type_data_and_id() -> None:
    _, events = _feed(b"event: note\ndata: a\ndata:b\nid: 7\n\n: comment\ndata\n\n")
    assert events == [ServerSentEvent("a\nb", "note", "7"), ServerSentEvent("", "message", "7")]


@pytest.mark.parametrize("value", ["\u0663\u0660\u0660", "\u00b2", "\uff13", "-5", " 5", "+5", "5 ", "1_000", "", "5s"])
def test_a_retry_that_is_not_only_ascii_digits_is_ignored_and_the_stream_goes_on(value: str) -> None:
    parser, events = _feed(("retry: 1500\n\nretry: " + value + "\ndata: still here\n\n").encode())
    assert parser.retry_ms == 1500
    assert events == [ServerSentEvent("still here")]


def test_a_retry_of_ascii_digits_sets_the_reconnection_time() -> None:
    parser, _ = _feed(b"retry:0042\n")
    assert parser.retry_ms == 42


def test_only_cr_lf_and_crlf_end_lines_even_split_across_chunks() -> None:
    _, events = _feed(b"data: a\xe2\x80\xa8b\x0cc\r", b"\ndata: d\r\r", b"data: e\r\n", b"\r\n")
    assert events == [ServerSentEvent("a\u2028b\x0cc\nd"), ServerSentEvent("e")]


def test_utf8_split_across_chunks_and_a_leading_bom_are_read_as_the_standard_says() -> None:
    _, events = _feed(b"\xef\xbb", b"\xbfdata: \xc3", b"\xa9\xff\n\n")
    assert events == [ServerSentEvent("é\ufffd")]


def test_the_last_event_id_changes_only_when_an_event_is_dispatched_and_survives_a_reconnect() -> None:
    parser = EventStreamParser()
    assert parser.feed(b"id: 1\ndata: one\n\nid: 2\ndata: half") == [ServerSentEvent("one", "message", "1")]
    assert parser.last_event_id == "1"
    parser.end_of_stream()  # the half-received event is dropped, its id with it
    assert parser.feed(b"\ndata: next\n\n") == [ServerSentEvent("next", "message", "1")]
    assert parser.feed(b"id\n\n") == [] and parser.last_event_id == ""  # an empty id resets it
    assert parser.feed(b"id: a\0b\ndata: x\n\n") == [ServerSentEvent("x", "message", "")]  # NUL: ignored


def test_an_event_encodes_as_gin_writes_it_and_parses_back() -> None:
    text = encode_event({"id": "1\n2", "event": "tick", "retry": 2500.7,
                         "data": {"json": {"html": "<a&b>", "sep": "\u2028"}}})
    assert text == ('id:1\\n2\nevent:tick\nretry:2500\n'
                    'data:{"html":"\\u003ca\\u0026b\\u003e","sep":"\\u2028"}\n\n')
    parser, events = _feed(text.encode())
    assert events == [ServerSentEvent('{"html":"\\u003ca\\u0026b\\u003e","sep":"\\u2028"}', "tick", "1\\n2")]
    assert parser.retry_ms == 2500


def test_text_data_becomes_one_data_line_per_line_and_bad_retries_are_left_out() -> None:
    text = encode_event({"retry": True, "data": {"text": "a\nb\rc"}})
    assert text == "data:a\ndata:b\\rc\n\n"
    assert _feed(text.encode())[1] == [ServerSentEvent("a\nb\\rc")]
    assert encode_event({"retry": 0, "data": {}}) == "data:\n\n"
