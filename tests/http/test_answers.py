"""The connection layer's own answers."""

from __future__ import annotations

from twisted_stream._http._answers import REASONS, answer, modern_reason, reason


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


def test_reason_phrases_are_rfc_9110s() -> None:
    """Every status our connection layer and bodies answer has RFC 9110's phrase, including
    those Twisted's own table still spells the old way; Twisted's outdated default phrases
    are replaced, any other phrase is kept."""
    assert reason(408) == b"Request Timeout"
    assert reason(413) == b"Content Too Large"
    assert reason(414) == b"URI Too Long"
    assert reason(411) == b"Length Required"
    assert reason(417) == b"Expectation Failed"
    assert reason(505) == b"HTTP Version Not Supported"
    assert reason(507) == b"Insufficient Storage Space"  # not RFC 9110's: Twisted's
    assert modern_reason(b"413", b"Request Entity Too Large") == b"Content Too Large"
    assert modern_reason(b"408", b"Request Time-out") == b"Request Timeout"
    assert modern_reason(b"413", b"Too Big") == b"Too Big"
    assert modern_reason(b"200", b"OK") == b"OK"
    for code in (400, 408, 411, 413, 414, 415, 417, 431, 501, 503, 505):
        phrase = reason(code)
        assert answer(code, "x").startswith(b"HTTP/1.1 %d %s\r\n" % (code, phrase))
