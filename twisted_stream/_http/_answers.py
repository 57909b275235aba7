"""The answers the connection layer gives by itself, before any resource runs.

Each is a complete response that closes the connection (``Connection: close``, a
``Content-Length``, a one-line plain-text body), with the reason phrases of RFC 9110 §15.
"""

from __future__ import annotations

from twisted.web.http import datetimeToString

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    503: b"Service Unavailable",
}


def answer(
    status: int, detail: str, *, server: bytes = b"", retry_after: int | None = None
) -> bytes:
    """The bytes of a closing ``status`` response whose body says ``detail``."""
    reason = REASONS[status]
    body = b"%d %s: %s\n" % (status, reason, detail.encode("utf-8", "replace"))
    lines = [
        b"HTTP/1.1 %d %s" % (status, reason),
        b"Date: " + datetimeToString(),
        b"Connection: close",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: %d" % len(body),
    ]
    if server:
        lines.append(b"Server: " + server)
    if retry_after is not None:
        lines.append(b"Retry-After: %d" % retry_after)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
