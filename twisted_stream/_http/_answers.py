"""The answers the connection layer gives by itself, before any resource runs, and the
reason phrases of every status we send.

Each answer is a complete response that closes the connection (``Connection: close``, a
``Content-Length``, a one-line plain-text body), with the reason phrases of RFC 9110 §15.
Twisted's own table (``twisted.web.http.RESPONSES``) keeps older phrases for a few codes
(``Request Time-out``, ``Request Entity Too Large``, ...): :data:`REASONS` is the one we
use, in status lines (:func:`modern_reason`, applied by our channel to every response) and
in the bodies of our answers alike, so the two never disagree.
"""

from __future__ import annotations

from twisted.web.http import RESPONSES, datetimeToString

REASONS = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    203: b"Non-Authoritative Information",
    204: b"No Content",
    205: b"Reset Content",
    206: b"Partial Content",
    300: b"Multiple Choices",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    305: b"Use Proxy",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    402: b"Payment Required",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    407: b"Proxy Authentication Required",
    408: b"Request Timeout",
    409: b"Conflict",
    410: b"Gone",
    411: b"Length Required",
    412: b"Precondition Failed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable",
    417: b"Expectation Failed",
    421: b"Misdirected Request",
    422: b"Unprocessable Content",
    426: b"Upgrade Required",
    429: b"Too Many Requests",  # RFC 6585
    431: b"Request Header Fields Too Large",  # RFC 6585
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}
"""RFC 9110 §15's reason phrase of each status it defines (and RFC 6585's 429 and 431)."""

_OUTDATED = {
    (b"%d" % code, RESPONSES[code]): phrase
    for code, phrase in REASONS.items()
    if code in RESPONSES and RESPONSES[code] != phrase
}
"""(code, Twisted's default phrase) -> RFC 9110's, where they differ."""


def reason(code: int) -> bytes:
    """The reason phrase of ``code`` (RFC 9110's; Twisted's for a code it does not define)."""
    return REASONS.get(code) or RESPONSES.get(code, b"Unknown Status")


def modern_reason(code: bytes, phrase: bytes) -> bytes:
    """``phrase`` for a status line of ``code``, RFC 9110's instead when it is Twisted's
    outdated default for that code (an application's own phrase stays)."""
    return _OUTDATED.get((code, phrase), phrase)


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
