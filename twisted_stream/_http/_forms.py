"""Forms in request bodies, read as they arrive: :func:`multipart_parts`
(``multipart/form-data``, RFC 7578) and :func:`read_form`
(``application/x-www-form-urlencoded``).

Multipart bodies are parsed incrementally by python-multipart (the parser Starlette and
FastAPI use: a callback state machine fed one chunk at a time, with limits on part headers;
the ``multipart`` extra). One body chunk (``buffer_size``) is parsed at a time and only when
the application asks for more, so a form is never held in memory: what a part yields is a
slice of the chunk being parsed. Parts come in order; asking for the next part drops what
is left of the current one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.http_headers import Headers

from .._errors import MalformedRequestBody, MultipartUnavailable
from .._types import StreamRequest
from ._body import RequestBody
from ._request_body import request_body
from ._twisted import request_line

_log = Logger(namespace="twisted_stream.http")

FORM_LIMIT = 1024 * 1024
"""Default most bytes :func:`read_form` collects (1 MiB, the site's default body limit)."""

_MULTIPART = b"multipart/form-data"
_URLENCODED = b"application/x-www-form-urlencoded"


def _content_type(request: StreamRequest) -> tuple[bytes, dict[bytes, bytes]]:
    from python_multipart.multipart import parse_options_header

    return parse_options_header(request.getHeader(b"content-type") or b"")


class Part:
    """One part of a ``multipart/form-data`` body, and its data as it arrives.

    ``name`` and ``filename`` come from its ``Content-Disposition`` (UTF-8; ``filename`` is
    what the client sent, None for a plain field: never use it as a path unchecked),
    ``content_type`` from its ``Content-Type`` (None if absent), ``headers`` holds all its
    header fields. ``async for chunk in part`` yields its data in ``bytes`` chunks (at most
    the body's ``buffer_size`` each); :meth:`read` collects the rest of it.
    """

    def __init__(self, reader: MultipartReader, headers: Headers) -> None:
        self._reader = reader
        self.headers = headers
        self.ended = False
        disposition = headers.getRawHeaders(b"content-disposition", [b""])[0]
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(disposition)
        self.name: str | None = _text(options.get(b"name"))
        self.filename: str | None = _text(options.get(b"filename"))
        found = headers.getRawHeaders(b"content-type")
        self.content_type: str | None = found[0].decode("latin-1") if found else None

    def __aiter__(self) -> Part:
        return self

    async def __anext__(self) -> bytes:
        if self.ended:
            raise StopAsyncIteration
        kind, value = await self._reader.next_event()
        if kind == "data":
            assert isinstance(value, bytes)
            return value
        self.ended = True  # its end
        raise StopAsyncIteration

    def read(self) -> Deferred[bytes]:
        """The rest of this part's data (held in memory: for fields, not files)."""

        async def collect() -> bytes:
            return b"".join([chunk async for chunk in self])

        return Deferred.fromCoroutine(collect())

    def __repr__(self) -> str:
        return f"<Part name={self.name!r} filename={self.filename!r}>"


class MultipartReader:
    """The parts of a ``multipart/form-data`` body, as an async iterator of :class:`Part`."""

    def __init__(
        self, body: RequestBody | None, boundary: bytes, error: MalformedRequestBody | None = None
    ) -> None:
        from python_multipart import MultipartParser

        self._body = body
        self._error = error
        self._events: deque[tuple[str, object]] = deque()
        self._fields: list[tuple[bytes, bytes]] = []
        self._field = bytearray()
        self._value = bytearray()
        self._part: Part | None = None
        self._done = False
        callbacks: Any = {
            "on_part_begin": self._fields.clear,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self._events.append(
                ("data", data[start:end])
            ),
            "on_part_end": lambda: self._events.append(("end", None)),
            "on_end": lambda: self._events.append(("eof", None)),
        }
        self._parser = MultipartParser(boundary or b"-", callbacks)

    def _header_end(self) -> None:
        self._fields.append((bytes(self._field), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        headers = Headers()
        for name, value in self._fields:
            headers.addRawHeader(name, value)
        self._events.append(("part", headers))

    async def next_event(self) -> tuple[str, object]:
        """The next parser event (``part``, ``data``, ``end``, ``eof``), parsing one more
        chunk of the body only when none is left."""
        from python_multipart.exceptions import MultipartParseError

        body = self._body
        while not self._events:
            if self._error is not None:
                raise self._error
            if self._done or body is None:
                return "eof", None
            chunk = await body.read(body.buffer_size)
            if not chunk:
                self._done = True
                raise MalformedRequestBody(
                    "the multipart body ended before its closing boundary", body.bytes_received
                )
            try:
                self._parser.write(chunk)
            except MultipartParseError as e:
                self._done = True
                raise MalformedRequestBody(
                    f"the multipart body is malformed: {e}", body.bytes_received
                ) from None
        event = self._events.popleft()
        if event[0] == "eof":
            self._done = True
        return event

    def __aiter__(self) -> MultipartReader:
        return self

    async def __anext__(self) -> Part:
        part = self._part
        if part is not None:
            async for _ in part:  # what is left of it is dropped
                pass
        while True:
            kind, value = await self.next_event()
            if kind == "part":
                assert isinstance(value, Headers)
                self._part = Part(self, value)
                return self._part
            if kind == "eof":
                raise StopAsyncIteration


def multipart_parts(request: StreamRequest, *, max_size: int | None = None) -> AsyncIterator[Part]:
    """The parts of ``request``'s ``multipart/form-data`` body, parsed as they arrive: an
    async iterator of :class:`Part` (``async for part in multipart_parts(request)``), each
    an async iterator of its data. Memory stays at one body chunk whatever the form's size.

    ``max_size`` is that of :func:`request_body`. Iterating fails with
    :class:`~twisted_stream.MalformedRequestBody` (``415`` when the ``Content-Type`` is not
    ``multipart/form-data`` with a boundary, ``400`` when the body does not parse or ends
    early) and as reading the body does (:class:`~twisted_stream.RequestBodyTooLarge`,
    :class:`~twisted_stream.RequestBodyIncomplete`). Needs python-multipart (the
    ``multipart`` extra): without it, raises ``MultipartUnavailable`` (an ``ImportError``
    and a :class:`~twisted_stream.RequestBodyError` with ``code`` 500), which a
    :class:`~twisted_stream.StreamingResource` answers ``500`` with a plain-text line saying
    forms cannot be parsed by this server, after an error line in the log naming the extra
    to install.
    """
    try:
        import python_multipart  # noqa: F401
    except ImportError:
        _log.error(
            "{request}: multipart_parts needs python-multipart: "
            "pip install 'twisted_stream[multipart]'",
            request=request_line(request),
        )
        raise MultipartUnavailable(
            "this server cannot parse multipart/form-data bodies (python-multipart, "
            "twisted_stream's 'multipart' extra, is not installed)"
        ) from None
    kind, options = _content_type(request)
    boundary = options.get(b"boundary")
    if kind != _MULTIPART or not boundary:
        error = MalformedRequestBody(
            "the body is not multipart/form-data with a boundary", 0, code=415
        )
        return MultipartReader(None, b"", error)
    return MultipartReader(request_body(request, max_size=max_size), boundary)


def read_form(
    request: StreamRequest, *, max_size: int = FORM_LIMIT, encoding: str = "utf-8"
) -> Deferred[dict[str, list[str]]]:
    """Collect ``request``'s ``application/x-www-form-urlencoded`` body (at most
    ``max_size`` bytes, else :class:`~twisted_stream.RequestBodyTooLarge` and ``413``) into
    a dict of each field name to its values, in order, decoded with ``encoding`` as browsers
    encode forms (blank values kept). Fails with :class:`~twisted_stream.MalformedRequestBody`
    (``415``) for another ``Content-Type``."""
    if max_size <= 0:
        raise ValueError(f"max_size must be positive, not {max_size}")

    async def collect() -> dict[str, list[str]]:
        media_type = (request.getHeader(b"content-type") or b"").split(b";")[0]
        if media_type.strip().lower() != _URLENCODED:
            raise MalformedRequestBody(
                "the body is not application/x-www-form-urlencoded", 0, code=415
            )
        body = request_body(request)
        if not body.max_size or body.max_size > max_size:
            body = request_body(request, max_size=max_size)
        data = await body.read()
        text = data.decode("latin-1")  # the wire form is ASCII; percent-escapes are decoded
        return parse_qs(text, keep_blank_values=True, encoding=encoding, errors="replace")

    return Deferred.fromCoroutine(collect())


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")
