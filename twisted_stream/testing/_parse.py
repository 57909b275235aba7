"""Reading an HTTP/1.x response out of the bytes a client received (RFC 9112).

Written for what a test received, possibly cut anywhere: whatever has arrived is parsed, and
``complete`` says whether the body's framing ended (``Content-Length`` reached, the last
chunk and its trailer section, or a close-delimited body closed cleanly).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.web.http_headers import Headers

_NO_BODY = (204, 304)


@dataclass(frozen=True)
class Parsed:
    """A response as far as it arrived."""

    code: int | None = None
    """The status code; None before the status line and headers arrived whole."""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    """The body with its transfer coding (chunked framing) removed."""
    complete: bool = False


def parse_response(raw: bytes, *, head: bool = False, closed_cleanly: bool = False) -> Parsed:
    """Parse ``raw``, the bytes of one response; ``head``: it answers a HEAD request (no
    body); ``closed_cleanly``: the server closed the connection after it (which ends a body
    without ``Content-Length`` or chunking). Interim (1xx) responses are skipped. Raises
    ``ValueError`` for a status line that is not HTTP/1.x."""
    offset = 0
    while True:
        end = raw.find(b"\r\n\r\n", offset)
        if end < 0:
            return Parsed()
        status, *lines = raw[offset:end].split(b"\r\n")
        code = _status_code(status)
        offset = end + 4
        if not (100 <= code < 200) or code == 101:
            break
    headers = Headers()
    for line in lines:
        name, _, value = line.partition(b":")
        headers.addRawHeader(name.strip(), value.strip())
    rest = raw[offset:]
    if head or code in _NO_BODY or code == 101:
        return Parsed(code, headers, b"", True)
    codings = b",".join(headers.getRawHeaders(b"transfer-encoding", []))
    if codings:
        if codings.strip().lower() != b"chunked":
            raise ValueError(f"a transfer coding this client does not decode: {codings!r}")
        body, complete = dechunk(rest)
        return Parsed(code, headers, body, complete)
    length = headers.getRawHeaders(b"content-length")
    if length:
        size = int(length[-1])
        return Parsed(code, headers, rest[:size], len(rest) >= size)
    return Parsed(code, headers, rest, closed_cleanly)


def _status_code(line: bytes) -> int:
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {line[:80]!r}")
    return int(code)


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """The content of a chunked body (RFC 9112 §7.1) as far as ``data`` goes (a chunk that
    arrived in part counts for its part), and whether the body ended (the last chunk and
    the trailer section arrived). Raises ``ValueError`` for a chunk size that is not hex."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError(f"a malformed chunk size: {size_text[:20]!r}") from None
        pos = eol + 2
        if size == 0:  # the last chunk, then trailer fields up to an empty line
            return bytes(out), data.startswith(b"\r\n", pos) or data.find(b"\r\n\r\n", pos) >= 0
        out += data[pos : pos + size]
        if len(data) < pos + size + 2:
            return bytes(out), False
        pos += size + 2
