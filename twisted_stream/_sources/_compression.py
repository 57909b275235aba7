"""gzip for streamed responses, flushed at every write so each piece is decodable at once.

:func:`maybe_compress` decides, from the request and the response headers set so far,
whether the body is gzipped; if so it fixes the headers (``Content-Encoding``, ``Vary``,
no ``Content-Length``, a distinct ``ETag``) and wraps the source in :class:`GzipSource`,
which compresses what each read returns and ends it with ``Z_SYNC_FLUSH``: the engine
writes exactly one read per write, so the client can decode every event, line or row as
soon as it arrives. Twisted's ``GzipEncoderFactory`` (through ``EncodingResourceWrapper``)
never flushes before ``finish()``; when it is active on a streamed response it is replaced
by the flushing encoder.
"""

from __future__ import annotations

import enum
import re
import zlib
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.http import NO_BODY_CODES
from twisted.web.http_headers import Headers

from .._engine._source import EOF, Heartbeat, ReadResult, Ready, SliceDeadline, Source, relay
from .._errors import ContentLengthError
from .._http._twisted import (
    default_content_type,
    drop_gzip_encoder,
    has_gzip_encoder,
    headers_sent,
    in_fake_head,
)
from .._settings import StreamSettings
from .._types import StreamRequest

COMPRESS_LEVEL = 6
"""zlib level: most of level 9's ratio for a fraction of its CPU (zlib's own default)."""

GZIP_ETAG_SUFFIX = "-gzip"
"""Appended inside the quotes of the identity ETag to name the gzip representation."""

COMPRESSIBLE_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/csv",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/sql",
        "application/rtf",
        "application/x-sh",
        "application/wasm",
        "image/svg+xml",
        "image/bmp",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "font/ttf",
        "font/otf",
        "application/vnd.ms-fontobject",
    }
)
"""Content types worth compressing besides ``text/*`` and the ``+json``/``+xml`` suffixes."""


def is_compressible(content_type: bytes | str | None) -> bool:
    """True for text-like media types (``text/*``, JSON, JavaScript, XML, SVG, event
    streams, NDJSON, CSV...); parameters such as ``charset`` are ignored."""
    if content_type is None:
        return False
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/")
        or media in COMPRESSIBLE_TYPES
        or media.endswith(("+json", "+xml"))
    )


_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\Z")


def accepts_gzip(accept_encoding: Sequence[bytes] | None) -> bool:
    """Whether the ``Accept-Encoding`` field values accept gzip.

    ``gzip`` (or its alias ``x-gzip``) with a q-value above 0, or ``*`` above 0 when gzip is
    not named. ``gzip;q=0`` refuses it; a malformed q-value counts as 0; no header at all
    is taken as "identity only", as every browser sends the header.
    """
    if not accept_encoding:
        return False
    gzip_q: float | None = None
    any_q: float | None = None
    for member in b",".join(accept_encoding).decode("latin-1").split(","):
        coding, *params = member.split(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.match(value) else 0.0
        if coding in ("gzip", "x-gzip"):
            gzip_q = q if gzip_q is None else max(gzip_q, q)
        elif coding == "*":
            any_q = q if any_q is None else max(any_q, q)
    if gzip_q is not None:
        return gzip_q > 0
    return any_q is not None and any_q > 0


def gzip_etag(etag: bytes) -> bytes | None:
    """The ETag of the gzip form of a representation tagged ``etag``: ``"abc"`` becomes
    ``"abc-gzip"``, ``W/"abc"`` becomes ``W/"abc-gzip"``; None for a malformed tag."""
    found = re.fullmatch(rb'\s*(W/)?"([^"]*)"\s*', etag)
    if found is None:
        return None
    weak = found.group(1) or b""
    return weak + b'"' + found.group(2) + GZIP_ETAG_SUFFIX.encode() + b'"'


class GzipSource:
    """Wraps a source: each read's bytes are compressed and ``Z_SYNC_FLUSH``-ed, so every
    write the engine makes is decodable on its own; the gzip trailer follows the source's
    end. With ``declared`` (the identity ``Content-Length`` that compression removed) a
    source producing another length fails as it would have uncompressed, so the client
    sees a truncated body instead of a complete-looking one."""

    def __init__(
        self, source: Source, *, level: int = COMPRESS_LEVEL, declared: int | None = None
    ) -> None:
        self._source = source
        self._compressor: Any = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self._declared = declared
        self._produced = 0
        self._ended = False

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        if self._ended:
            return EOF
        result = self._source.read(limit, deadline)
        if isinstance(result, Deferred):
            return relay(result, self._encode)
        return self._encode(result)

    def _encode(self, data: Ready) -> Ready:
        if self._compressor is None:
            return EOF  # closed while the source was busy
        declared = self._declared
        if data is EOF:
            if declared is not None and self._produced != declared:
                raise ContentLengthError(declared, self._produced)
            self._ended = True
            tail: bytes = self._compressor.flush(zlib.Z_FINISH)
            return tail
        if not data:
            return b""
        self._produced += len(data)
        if declared is not None and self._produced > declared:
            raise ContentLengthError(declared, None)
        compressed: bytes = self._compressor.compress(data)
        encoded = compressed + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        # A compressed keep-alive is still only a keep-alive (it must not reset idle_timeout).
        return Heartbeat(encoded) if type(data) is Heartbeat else encoded

    def close(self) -> Deferred[None] | None:
        self._compressor = None
        return self._source.close()


class Encoding(enum.Enum):
    """How a response's content coding is chosen (:func:`choose_encoding`)."""

    FIXED = "fixed"
    """Not negotiated: compression is off, the type is not compressible, or the resource
    encoded the body itself. No ``Vary``."""
    IDENTITY = "identity"
    """Negotiated, and identity is chosen (gzip refused, a range, no body): ``Vary``."""
    GZIP = "gzip"
    """Negotiated, and gzip is chosen: ``Vary``, ``Content-Encoding: gzip``, the gzip ETag."""


def choose_encoding(
    request: StreamRequest, settings: StreamSettings, content_type: bytes | str | None = None
) -> Encoding:
    """How the response to ``request`` is encoded, from the request and the response headers
    set so far; nothing is changed. ``content_type`` defaults to the response's.

    Negotiated when ``settings.compress`` is on for a compressible content type, or when
    Twisted's gzip encoder was applied to the resource (whatever the type), unless the
    resource set a ``Content-Encoding`` itself. Then gzip is chosen when ``Accept-Encoding``
    accepts it and the response is not a range (206 or ``Content-Range``) nor a 204 or 304.
    A HEAD request is answered as its GET would be (RFC 9110 §9.3.2): gzip too.
    """
    headers = request.responseHeaders
    twisted_gzip = has_gzip_encoder(request)
    if not (settings.compress or twisted_gzip):
        return Encoding.FIXED
    if content_type is None:
        content_type = headers.getRawHeaders(b"content-type", [None])[-1]
        if content_type is None:
            content_type = default_content_type(request)
    if not (twisted_gzip or is_compressible(content_type)):
        return Encoding.FIXED
    codings = _codings(headers)
    if twisted_gzip and codings and codings[-1] == "gzip":
        codings.pop()  # the encoder's own, replaced by ours
    if any(c != "identity" for c in codings):
        return Encoding.FIXED  # the resource encoded the body itself
    if request.code == 206 or headers.hasHeader(b"content-range"):
        return Encoding.IDENTITY
    if request.code in NO_BODY_CODES:
        return Encoding.IDENTITY
    if not accepts_gzip(request.requestHeaders.getRawHeaders(b"accept-encoding")):
        return Encoding.IDENTITY
    return Encoding.GZIP


def maybe_compress(request: StreamRequest, source: Source, settings: StreamSettings) -> Source:
    """Return ``source``, wrapped in a flushing gzip encoder when the response is gzipped.

    :func:`choose_encoding` decides. ``Vary: Accept-Encoding`` is added to every response
    whose encoding was negotiated, gzipped or not. A gzipped one gets ``Content-Encoding:
    gzip``, a distinct ``ETag`` (:func:`gzip_etag`), and loses ``Content-Length`` and
    ``Accept-Ranges`` (ranges are served from the identity form only). A HEAD request gets
    exactly those headers, and no encoder: it has no body.

    A Twisted ``_GzipEncoder`` on the request (``EncodingResourceWrapper`` with
    ``GzipEncoderFactory``) would hold the body until the end: it is always removed, and
    the flushing encoder takes its place when gzip is chosen.
    """
    if headers_sent(request):
        return source  # the headers are out: too late to choose an encoding
    encoding = choose_encoding(request, settings)
    _drop_twisted_gzip(request)
    if encoding is Encoding.FIXED:
        return source
    headers = request.responseHeaders
    add_vary(headers)
    if encoding is Encoding.IDENTITY:
        return source
    declared = _content_length(headers)
    headers.setRawHeaders(b"content-encoding", [b"gzip"])
    headers.removeHeader(b"content-length")
    headers.removeHeader(b"accept-ranges")
    etag = headers.getRawHeaders(b"etag", [None])[-1]
    if etag is not None:
        changed = gzip_etag(etag)
        if changed is None:
            headers.removeHeader(b"etag")
        else:
            headers.setRawHeaders(b"etag", [changed])
    if request.method == b"HEAD" or in_fake_head(request):
        return source  # the headers GET would send; there is no body to encode
    return GzipSource(source, declared=declared)


def _drop_twisted_gzip(request: StreamRequest) -> bool:
    """Remove Twisted's non-flushing gzip encoder and the ``gzip`` it appended to
    ``Content-Encoding``; True if there was one."""
    if not drop_gzip_encoder(request):
        return False
    headers = request.responseHeaders
    codings = _codings(headers)
    if codings and codings[-1] == "gzip":
        codings.pop()
        if codings:
            headers.setRawHeaders(b"content-encoding", [", ".join(codings).encode("latin-1")])
        else:
            headers.removeHeader(b"content-encoding")
    return True


def _codings(headers: Headers) -> list[str]:
    values = headers.getRawHeaders(b"content-encoding", [])
    joined = b",".join(values).decode("latin-1")
    return [c.strip().lower() for c in joined.split(",") if c.strip()]


def add_vary(headers: Headers) -> None:
    """Add ``Accept-Encoding`` to ``Vary``, keeping what is there (``*`` covers it)."""
    values: Sequence[bytes] = headers.getRawHeaders(b"vary", [])
    names = {v.strip().lower() for value in values for v in value.split(b",")}
    if b"accept-encoding" in names or b"*" in names:
        return
    kept = [value.strip() for value in values if value.strip()]
    headers.setRawHeaders(b"vary", [b", ".join([*kept, b"Accept-Encoding"])])


def _content_length(headers: Headers) -> int | None:
    value = headers.getRawHeaders(b"content-length", [None])[-1]
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None
