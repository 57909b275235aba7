"""The Server-Sent Events wire format (``twisted_stream._events._sse``): exact bytes,
injection attempts, and what a parser following the WHATWG rules makes of them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_stream import ChunkTypeError
from twisted_stream._events._sse import Event, convert_event, encode_data
from twisted_stream._sources._heartbeat import HEARTBEAT

# A parser following the WHATWG "event stream interpretation" rules, to check what a browser
# makes of the bytes.


@dataclass
class Parsed:
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, data, lastEventId) of each dispatched event."""
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


def parse_sse(text: str) -> Parsed:
    """Interpret a complete event stream as EventSource does (an unterminated last line is
    ignored, as it would still be pending)."""
    out = Parsed()
    data: list[str] = []
    event_type = ""
    last_id = ""
    lines = re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff"))
    for line in lines[:-1]:
        if line == "":
            if data:
                out.events.append((event_type or "message", "\n".join(data), last_id))
            data = []
            event_type = ""
            continue
        if line.startswith(":"):
            out.comments.append(line[1:])
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            out.retry = int(value)
    return out


# Raw HTTP helpers.


# The wire format.


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (Event("hello"), b"data: hello\n\n"),
        (Event(""), b"data: \n\n"),
        (Event("a\nb\nc"), b"data: a\ndata: b\ndata: c\n\n"),
        (Event("a\r\nb\rc\n"), b"data: a\ndata: b\ndata: c\ndata: \n\n"),
        (Event("\n"), b"data: \ndata: \n\n"),
        (Event(" lead"), b"data:  lead\n\n"),
        (Event("x", event="update"), b"event: update\ndata: x\n\n"),
        (Event("x", id="42"), b"id: 42\ndata: x\n\n"),
        (Event("x", id=""), b"id: \ndata: x\n\n"),
        (Event("x", retry=2500), b"retry: 2500\ndata: x\n\n"),
        (
            Event("one\ntwo", event="e", id="7", retry=0),
            b"id: 7\nevent: e\nretry: 0\ndata: one\ndata: two\n\n",
        ),
        (Event("caf\u00e9 \u2603"), "data: caf\u00e9 \u2603\n\n".encode()),
        (Event("data: fake\n\nevent: evil"), b"data: data: fake\ndata: \ndata: event: evil\n\n"),
    ],
)
def test_wire_format_exact_bytes(event: Event, wire: bytes) -> None:
    """Each event serialises to exactly these bytes (UTF-8, one data: line per line)."""
    assert event.encode() == wire


def test_a_str_item_is_one_events_data() -> None:
    """A str item encodes like an Event with only that data; bytes pass as they are."""
    assert encode_data("a\r\nb") == b"data: a\ndata: b\n\n"
    assert convert_event("a\nb") == Event("a\nb").encode()
    assert convert_event(Event("x", id="1")) == b"id: 1\ndata: x\n\n"
    assert convert_event(b": raw\n\n") == b": raw\n\n"
    with pytest.raises(ChunkTypeError, match="int"):
        convert_event(42)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "a\0b", "x\ndata: injected"])
@pytest.mark.parametrize("name", ["event", "id"])
def test_event_and_id_with_cr_lf_or_nul_are_rejected(name: str, bad: str) -> None:
    """CR, LF or NUL in ``event`` or ``id`` would inject fields or events: ValueError."""
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Event("data", **{name: bad})


@pytest.mark.parametrize("retry", [1.5, "100", True, None])
def test_retry_must_be_an_integer(retry: Any) -> None:
    """``retry`` is an int of milliseconds (None means absent); negative is refused."""
    if retry is None:
        assert Event("x", retry=None).encode() == b"data: x\n\n"
        return
    with pytest.raises(TypeError, match="retry"):
        Event("x", retry=retry)


def test_negative_retry_and_non_str_fields_are_refused() -> None:
    """A negative retry is a ValueError; data, event and id must be str."""
    with pytest.raises(ValueError):
        Event("x", retry=-1)
    with pytest.raises(TypeError):
        Event(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Event("x", id=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Event("x", event=1)  # type: ignore[arg-type]


def test_events_are_immutable_values() -> None:
    """Events compare by their fields and cannot be changed after their bytes are made."""
    assert Event("x", id="1") == Event("x", id="1")
    assert Event("x", id="1") != Event("x", id="2")
    with pytest.raises(AttributeError):
        Event("x").data = "y"  # type: ignore[misc]


FIELD_TEXT = st.text().filter(lambda s: not ({"\r", "\n", "\0"} & set(s)))


@given(
    data=st.text(),
    event=st.one_of(st.none(), FIELD_TEXT),
    id_=st.one_of(st.none(), FIELD_TEXT),
    retry=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
)
def test_a_parser_reads_back_exactly_one_event(
    data: str, event: str | None, id_: str | None, retry: int | None
) -> None:
    """Whatever the data (any line breaks, field-like text, colons, spaces), an EventSource
    parser sees exactly one event with that data (line breaks normalised to LF), its type
    and its id, and the retry."""
    parsed = parse_sse(Event(data, event=event, id=id_, retry=retry).encode().decode("utf-8"))
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert parsed.events == [(event or "message", normalised, id_ or "")]
    assert parsed.retry == retry
    assert parsed.comments == []


def test_the_heartbeat_is_a_comment_that_dispatches_nothing() -> None:
    """The heartbeat bytes are a comment: no event, and they do not disturb the next one."""
    parsed = parse_sse((HEARTBEAT + Event("x").encode() + HEARTBEAT).decode())
    assert parsed.events == [("message", "x", "")]
    assert parsed.comments == ["", ""]
