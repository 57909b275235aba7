"""A chunked transfer-coding decoder for upstream responses (RFC 9112 §7.1), with the rules
of Twisted's ``_ChunkedTransferDecoder`` (``web/http.py``) and a fraction of its cost.

Twisted's decoder deletes each parsed piece from the front of a ``bytearray`` and calls
back once per chunk: a read holding a thousand 100-byte chunks costs a thousand copies of
the rest of the buffer and a thousand calls. :class:`ChunkedDecoder` scans each read with
offsets and hands the data of all its chunks over in one call. What it accepts and refuses
is Twisted's: hexadecimal sizes without sign or prefix, size lines of at most
``maxChunkSizeLineLength`` bytes, extension characters of ``_chunkExtChars``, ``CRLF`` after
each chunk, at most 64 KiB of trailer fields (read and dropped), ``_DataLoss`` when the
connection ends before the last chunk. ``tests/http/test_chunked.py`` checks it against
Twisted's decoder.

Except in one place, where Twisted's rule lets a message end in two places: Twisted takes
anything up to a CRLF as a trailer line, bare LF and CR included, so ``0\r\nX: a\n\r\n``
ends a body for a peer that accepts a bare LF as a line end (RFC 9112 §2.2 lets it) and not
for Twisted, which then reads the next message's head as trailers (request smuggling, or a
desynchronised upstream connection). Here every trailer line must be a field line (RFC 9112
§7.1.2: a token, a colon, a value without NUL, CR or LF), or the body is malformed, as soon
as a bad byte is seen; :func:`strict_trailers` makes Twisted's own decoder (request bodies)
check the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.web.http import (
    _ChunkedTransferDecoder,
    _chunkExtChars,
    _DataLoss,
    _MalformedChunkedDataError,
    maxChunkSizeLineLength,
)

MAX_TRAILER_SIZE = 2**16
"""Bytes of trailer fields accepted (Twisted's ``_maxTrailerHeadersSize``)."""

_HEX = re.compile(rb"[0-9a-fA-F]+")
_FIELD_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00\r\n]*")
"""``field-name ":" field-value`` (RFC 9112 §5.1, RFC 9110 §5.5), without obs-fold."""
_SIZE, _BODY, _CRLF, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Decodes a chunked body: ``dataCallback(data)`` with the data of each read, then
    ``finishCallback(rest)`` once, with what followed the body. Raises
    ``_MalformedChunkedDataError`` for a malformed body (after handing over the data
    before the fault) and ``_DataLoss`` from :meth:`noMoreData` before the end."""

    def __init__(
        self, dataCallback: Callable[[bytes], object], finishCallback: Callable[[bytes], object]
    ) -> None:
        self.dataCallback = dataCallback
        self.finishCallback = finishCallback
        self._state = _SIZE
        self._length = 0
        """Bytes of the current chunk still to come."""
        self._pending = b""
        """An unfinished size line, trailer line or CRLF, carried to the next read."""
        self._trailer_size = 0

    def dataReceived(self, data: bytes) -> None:
        if not data:
            return
        if self._state == _DONE:
            raise RuntimeError("ChunkedDecoder.dataReceived called after the last chunk")
        if self._pending:
            data, self._pending = self._pending + data, b""
        out: list[bytes] = []
        try:
            rest = self._parse(data, out)
        finally:
            if out:
                self.dataCallback(out[0] if len(out) == 1 else b"".join(out))
        if rest is not None:
            self.finishCallback(rest)

    def noMoreData(self) -> None:
        if self._state != _DONE:
            raise _DataLoss("the connection ended before the last chunk of the body")

    def _parse(self, data: bytes, out: list[bytes]) -> bytes | None:
        """Parse ``data``, adding chunk data to ``out``; what follows the body once it
        ended, else None."""
        at, end = 0, len(data)
        state = self._state
        try:
            while at < end:
                if state == _BODY:
                    length = self._length
                    if end - at >= length:
                        out.append(data[at : at + length])
                        at += length
                        state = _CRLF
                    else:
                        out.append(data[at:] if at else data)
                        self._length = length - (end - at)
                        at = end
                elif state == _CRLF:
                    if end - at < 2:
                        self._pending = data[at:]
                        break
                    if not data.startswith(b"\r\n", at):
                        raise _MalformedChunkedDataError("Chunk did not end with CRLF")
                    at += 2
                    state = _SIZE
                elif state == _SIZE:
                    eol = data.find(b"\r\n", at)
                    if eol - at >= maxChunkSizeLineLength or (
                        eol == -1 and end - at > maxChunkSizeLineLength
                    ):
                        raise _MalformedChunkedDataError(
                            f"Chunk size line exceeds maximum of {maxChunkSizeLineLength} bytes."
                        )
                    if eol == -1:
                        self._pending = data[at:]
                        break
                    semicolon = data.find(b";", at, eol)
                    if semicolon == -1:
                        semicolon = eol
                    size = data[at:semicolon]
                    if not _HEX.fullmatch(size):
                        raise _MalformedChunkedDataError("Chunk-size must be an integer.")
                    extension = data[semicolon + 1 : eol]
                    if extension and extension.translate(None, _chunkExtChars):
                        raise _MalformedChunkedDataError(
                            f"Invalid characters in chunk extensions: {extension!r}."
                        )
                    at = eol + 2
                    length = int(size, 16)
                    if not length:
                        state = _TRAILER
                        continue
                    stop = at + length
                    if stop + 2 <= end and data.startswith(b"\r\n", stop):
                        out.append(data[at:stop])  # the common case: the whole chunk is here
                        at = stop + 2
                        continue
                    self._length = length
                    state = _BODY
                else:  # _TRAILER
                    eol = data.find(b"\r\n", at)
                    if eol == -1:
                        check_trailer_part(data[at:])
                        least = self._trailer_size + end - at + (1 if data.endswith(b"\r") else 2)
                        if least > MAX_TRAILER_SIZE:
                            raise _MalformedChunkedDataError("Trailer headers data is too long.")
                        self._pending = data[at:]
                        break
                    if eol > at:
                        check_trailer_line(data[at:eol])
                        self._trailer_size += eol - at + 2
                        if self._trailer_size > MAX_TRAILER_SIZE:
                            raise _MalformedChunkedDataError("Trailer headers data is too long.")
                        at = eol + 2
                        continue
                    state = _DONE
                    return data[eol + 2 :]
            return None
        finally:
            self._state = state


def check_trailer_line(line: bytes) -> None:
    """Raise ``_MalformedChunkedDataError`` unless ``line`` (without its CRLF) is a field
    line: a token, a colon, and a value without NUL, CR or LF."""
    if not _FIELD_LINE.fullmatch(line):
        raise _MalformedChunkedDataError(f"Invalid trailer field line: {line[:80]!r}.")


def check_trailer_part(part: bytes) -> None:
    """Raise ``_MalformedChunkedDataError`` if ``part``, the start of a trailer line whose
    CRLF has not come yet, already holds a LF, or a CR that is not its last byte: a line
    end of its own that another parser would take (RFC 9112 §2.2)."""
    if b"\n" in part or b"\r" in part[:-1]:
        raise _MalformedChunkedDataError(f"Bare CR or LF in the trailer section: {part[:80]!r}.")


def strict_trailers(decoder: _ChunkedTransferDecoder) -> None:
    """Make Twisted's chunked ``decoder`` refuse a trailer line that is not a field line
    (:func:`check_trailer_line`, :func:`check_trailer_part`) before it takes it: the
    ``_MalformedChunkedDataError`` raised is Twisted's 400 for malformed framing."""
    parse = decoder._dataReceived_TRAILER

    def trailer() -> bool:
        # Twisted's ``_start`` (no CRLF before it) is meant for this state too but is never
        # moved in it: moved here, each read is scanned once, by us and by Twisted, so a
        # line sent a byte at a time costs its length, not its square.
        buffer = decoder._buffer
        start = decoder._start
        eol = buffer.find(b"\r\n", start)
        if eol == -1:
            check_trailer_part(bytes(buffer[start:]))
        elif eol:
            check_trailer_line(bytes(buffer[:eol]))
        go_on: bool = parse()
        if eol == -1:
            decoder._start = max(len(decoder._buffer) - 1, 0)  # a CR last may be a CRLF's
        return go_on

    # The decoder looks its state's method up by name on each step.
    hooked: Any = decoder
    hooked._dataReceived_TRAILER = trailer
