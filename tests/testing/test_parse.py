"""Reading a response out of what a client received (``twisted_stream.testing._parse``),
whole or cut anywhere."""

from __future__ import annotations

import pytest

from twisted_stream.testing._parse import dechunk, parse_response

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


def test_nothing_before_the_end_of_the_head() -> None:
    """Until the blank line after the headers there is no status, no header, no body."""
    parsed = parse_response(HEAD)
    assert parsed.code is None and not parsed.complete and parsed.body == b""
    assert list(parsed.headers.getAllRawHeaders()) == []


def test_a_chunked_body_is_decoded_as_far_as_it_arrived() -> None:
    """Chunk sizes (hex, extensions ignored) and CRLFs are removed; a chunk cut in the
    middle counts for its part; the body is complete with the last chunk and an empty
    trailer section, or trailer fields and the blank line."""
    raw = HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n10\r\n0123456789abcdef\r\n"
    for cut in range(len(HEAD) + 30, len(raw)):
        parsed = parse_response(raw[:cut])
        assert b"hello0123456789abcdef".startswith(parsed.body)
        assert not parsed.complete
    assert parse_response(raw).body == b"hello0123456789abcdef"
    assert not parse_response(raw + b"0\r\n").complete
    assert parse_response(raw + b"0\r\n\r\n").complete
    assert not parse_response(raw + b"0\r\nX-Sum: 1\r\n").complete
    assert parse_response(raw + b"0\r\nX-Sum: 1\r\n\r\n").complete
    assert parse_response(raw + b"0\r\n\r\n").headers.getRawHeaders(b"content-type") == [
        b"text/plain"
    ]


def test_content_length_and_close_delimited_bodies() -> None:
    """A body with Content-Length is complete at that length (no more is taken); one with
    neither length nor chunking only when the server closed the connection cleanly."""
    raw = HEAD + b"Content-Length: 5\r\n\r\nhel"
    assert (parse_response(raw).body, parse_response(raw).complete) == (b"hel", False)
    whole = parse_response(raw + b"loEXTRA")
    assert (whole.body, whole.complete) == (b"hello", True)
    raw = b"HTTP/1.0 200 OK\r\n\r\nall of it"
    assert not parse_response(raw).complete
    assert parse_response(raw, closed_cleanly=True).complete
    assert parse_response(raw).body == b"all of it"


def test_bodiless_answers_and_interim_responses() -> None:
    """A HEAD answer, 204 and 304 have no body whatever their headers say; a 100 Continue
    before the response is skipped."""
    raw = HEAD + b"Content-Length: 10\r\n\r\n"
    assert parse_response(raw, head=True).complete
    assert parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").complete
    assert parse_response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n").complete
    parsed = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n" + raw + b"0123456789")
    assert (parsed.code, parsed.body, parsed.complete) == (200, b"0123456789", True)


def test_what_is_not_http_is_an_error() -> None:
    """A status line that is not HTTP/1.x, a bad chunk size or an unknown transfer coding
    raise ValueError rather than parse as something."""
    with pytest.raises(ValueError, match="status line"):
        parse_response(b"SSH-2.0\r\n\r\n")
    with pytest.raises(ValueError, match="chunk size"):
        dechunk(b"zz\r\n")
    with pytest.raises(ValueError, match="transfer coding"):
        parse_response(HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n")
