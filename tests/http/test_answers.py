"""The connection layer's own answers."""

from __future__ import annotations

from twisted_stream._http._answers import REASONS, answer


def test_answer_is_a_complete_closing_response() -> None:
    """Status line with RFC 9110's reason phrase, Date, Connection: close, a plain-text
    body with its length, Server and Retry-After when given."""
    raw = answer(431, "too big", server=b"twisted_stream", retry_after=None)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b"Connection: close" in lines
    assert b"Server: twisted_stream" in lines
    assert any(line.startswith(b"Date: ") for line in lines)
    assert b"Content-Length: %d" % len(body) in lines
    assert body == b"431 Request Header Fields Too Large: too big\n"
    refused = answer(503, "busy", retry_after=5)
    assert b"\r\nRetry-After: 5\r\n" in refused
    assert b"\r\nServer:" not in refused
    assert set(REASONS) >= {400, 408, 413, 414, 431, 501, 503}
