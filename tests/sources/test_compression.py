"""gzip for streamed responses (``twisted_stream._sources._compression``)."""

from __future__ import annotations

import gzip
import math
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import jinja2
import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web._newclient import ResponseFailed
from twisted.web.client import Agent, HTTPConnectionPool, PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH
from twisted.web.resource import EncodingResourceWrapper
from twisted.web.server import GzipEncoderFactory
from twisted.web.template import Element, Tag, TagLoader, renderer, tags

from twisted_stream import StreamSettings, stream, stream_events, stream_ndjson, stream_template
from twisted_stream._engine._source import EOF, SliceDeadline
from twisted_stream._errors import ContentLengthError
from twisted_stream._events._template import stream_element
from twisted_stream._sources._compression import (
    GzipSource,
    accepts_gzip,
    gzip_etag,
    is_compressible,
)
from twisted_stream._sources._sync import IteratorSource

from ..conftest import leaf
from ..rawclient import connect, get
from ..waiting import until, within

FAR = SliceDeadline(math.inf, time.monotonic)
GZIP = {"Accept-Encoding": ["gzip"]}


async def fetch(
    url: str, headers: dict[str, list[str]] | None = None, *, method: bytes = b"GET"
) -> Any:
    """A request with exactly ``headers`` (treq would add Accept-Encoding and decode)."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, pool=pool)
    return await within(agent.request(method, url.encode(), Headers(headers or {})))


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip; q=0.001", True),
        ("gzip;q=1.0", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("gzip;q=0, *", False),
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.1", True),
        ("identity", False),
        ("deflate, br", False),
        ("gzip;q=2", False),
        ("gzip;q=abc", False),
        ("gzipped", False),
        ("", False),
    ],
)
def test_accept_encoding_q_values(header: str | None, accepted: bool) -> None:
    """gzip is accepted when named (or ``*``) with a q-value above 0; q=0 and malformed
    q-values refuse it; no header means identity only."""
    values = None if header is None else [header.encode()]
    assert accepts_gzip(values) is accepted


@pytest.mark.parametrize(
    ("content_type", "compressible"),
    [
        ("text/html; charset=utf-8", True),
        ("text/event-stream", True),
        ("text/csv", True),
        ("application/json", True),
        ("application/problem+json", True),
        ("application/x-ndjson", True),
        ("application/javascript", True),
        ("application/atom+xml", True),
        ("image/svg+xml", True),
        ("image/png", False),
        ("application/octet-stream", False),
        ("application/zip", False),
        ("video/mp4", False),
        (None, False),
    ],
)
def test_compressible_types(content_type: str | None, compressible: bool) -> None:
    """Text-like media types are compressed; binary and already compressed ones are not."""
    assert is_compressible(content_type) is compressible


def test_gzip_etag_is_distinct() -> None:
    """Strong and weak ETags get a -gzip suffix inside the quotes; malformed ones None."""
    assert gzip_etag(b'"abc"') == b'"abc-gzip"'
    assert gzip_etag(b'W/"abc"') == b'W/"abc-gzip"'
    assert gzip_etag(b"abc") is None


def test_each_read_is_decodable_at_once() -> None:
    """Every read of the gzip source decompresses completely on its own, the source's end
    adds the trailer, and the whole is a valid gzip member."""
    gate: Deferred[object] = Deferred()
    src = GzipSource(IteratorSource(iter([b"event one\n", gate, b"event three\n"]), bytes))
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    parts = []
    first = src.read(65536, FAR)
    assert isinstance(first, bytes)
    parts.append(first)
    assert decoder.decompress(first) == b"event one\n"
    waiting = src.read(65536, FAR)
    assert isinstance(waiting, Deferred)
    got: list[object] = []
    waiting.addCallback(got.append)
    gate.callback(b"event two\n")
    assert isinstance(got[0], bytes)
    parts.append(got[0])
    assert decoder.decompress(got[0]) == b"event two\n"
    third = src.read(65536, FAR)
    assert isinstance(third, bytes)
    assert decoder.decompress(third) == b"event three\n"
    parts.append(third)
    tail = src.read(65536, FAR)
    assert isinstance(tail, bytes) and tail
    parts.append(tail)
    assert src.read(65536, FAR) is EOF
    assert decoder.decompress(tail) == b"" and decoder.eof
    assert gzip.decompress(b"".join(parts)) == b"event one\nevent two\nevent three\n"


def test_a_declared_length_is_still_enforced() -> None:
    """The identity Content-Length that compression removed is still checked: too few or
    too many bytes fail the source before the trailer completes the body."""
    short = GzipSource(IteratorSource(iter([b"abc"]), bytes), declared=5)
    short.read(100, FAR)
    with pytest.raises(ContentLengthError):
        short.read(100, FAR)
    long = GzipSource(IteratorSource(iter([b"abcdef"]), bytes), declared=5)
    with pytest.raises(ContentLengthError):
        long.read(100, FAR)


def serve(
    server: Any,
    make: Callable[[], object],
    *,
    before: Callable[[Any], None] | None = None,
    wrap: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> None:
    def render(request: Any) -> Any:
        if before is not None:
            before(request)
        return stream(request, make(), **kwargs)

    resource = leaf(render)
    server.serve(wrap(resource) if wrap is not None else resource)


class Reader:
    """Collects a gzipped body as it arrives and decodes it incrementally."""

    def __init__(self, response: Any) -> None:
        self.raw: list[bytes] = []
        self.decoded = b""
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.done = treq.collect(response, self._collect)

    def _collect(self, data: bytes) -> None:
        self.raw.append(data)
        self.decoded += self._decoder.decompress(data)

    async def until_decoded(self, expected: bytes) -> None:
        """Wait until exactly ``expected`` has been decoded from what arrived."""
        await until(lambda: self.decoded == expected, what=f"{expected!r} to be decoded")


async def first_then_rest(response: Any, gate: Deferred[bytes], second: bytes) -> bytes:
    """Read the body: the first event must arrive decodable while ``gate`` (the source's
    next item) has not fired; then fire it and return the whole compressed body."""
    reader = Reader(response)
    await reader.until_decoded(b"data: event-1\n\n")
    assert not gate.called
    gate.callback(second)
    await within(reader.done)
    return b"".join(reader.raw)


def events(gate: Deferred[bytes]) -> Iterator[object]:
    return iter([b"data: event-1\n\n", gate, b"data: event-3\n\n"])


@pytest_twisted.ensureDeferred
async def test_each_event_reaches_the_client_decodable(server: Any) -> None:
    """With compress on, the first event arrives gzipped and decodable while the source is
    still blocked on the second; the headers say gzip, Vary and no Content-Length."""
    gate: Deferred[bytes] = Deferred()

    def before(request: Any) -> None:
        request.setHeader(b"etag", b'"v1"')
        request.setHeader(b"vary", b"Origin")

    serve(
        server,
        lambda: events(gate),
        before=before,
        content_type="text/event-stream",
        compress=True,
    )
    response = await fetch(server.url(), GZIP)
    headers = response.headers
    assert headers.getRawHeaders("content-encoding") == ["gzip"]
    assert headers.getRawHeaders("vary") == ["Origin, Accept-Encoding"]
    assert headers.getRawHeaders("etag") == ['"v1-gzip"']
    assert response.length is UNKNOWN_LENGTH  # no Content-Length
    body = await first_then_rest(response, gate, b"data: event-2\n\n")
    assert gzip.decompress(body) == b"data: event-1\n\ndata: event-2\n\ndata: event-3\n\n"


@pytest_twisted.ensureDeferred
async def test_a_declared_length_is_dropped_when_compressing(server: Any) -> None:
    """A Content-Length given for the identity body is removed; the body is complete."""
    serve(
        server,
        lambda: [b"x" * 5000],
        content_type="text/plain",
        content_length=5000,
        compress=True,
    )
    response = await fetch(server.url(), GZIP)
    assert response.length is UNKNOWN_LENGTH  # no Content-Length
    body = await within(treq.content(response))
    assert len(body) < 5000
    assert gzip.decompress(body) == b"x" * 5000


@pytest_twisted.ensureDeferred
async def test_a_wrong_length_still_truncates(server: Any) -> None:
    """A source producing less than its declared length fails the compressed response:
    the client sees an incomplete body, not a valid gzip one."""
    serve(
        server, lambda: [b"x" * 100], content_type="text/plain", content_length=5000, compress=True
    )
    response = await fetch(server.url(), GZIP)
    with pytest.raises((ResponseFailed, PotentialDataLoss)):
        await within(treq.content(response))


@pytest.mark.parametrize("accept", [None, "gzip;q=0", "br, deflate", "*;q=0"])
@pytest_twisted.ensureDeferred
async def test_gzip_refused_gives_identity_with_vary(server: Any, accept: str | None) -> None:
    """A client that does not accept gzip gets the identity body, its Content-Length and
    ETag, and still Vary: Accept-Encoding."""

    def before(request: Any) -> None:
        request.setHeader(b"etag", b'"v1"')

    serve(
        server,
        lambda: [b"hello"],
        before=before,
        content_type="text/plain",
        content_length=5,
        compress=True,
    )
    headers = {} if accept is None else {"Accept-Encoding": [accept]}
    response = await fetch(server.url(), headers)
    assert not response.headers.hasHeader("content-encoding")
    assert response.headers.getRawHeaders("vary") == ["Accept-Encoding"]
    assert response.length == 5  # the Content-Length
    assert response.headers.getRawHeaders("etag") == ['"v1"']
    assert await within(treq.content(response)) == b"hello"


@pytest_twisted.ensureDeferred
async def test_compression_is_off_by_default(server: Any) -> None:
    """Without the compress setting nothing changes, not even Vary."""
    serve(server, lambda: [b"hello"], content_type="text/plain")
    response = await fetch(server.url(), GZIP)
    assert not response.headers.hasHeader("content-encoding")
    assert not response.headers.hasHeader("vary")
    assert await within(treq.content(response)) == b"hello"


@pytest_twisted.ensureDeferred
async def test_the_site_setting_turns_it_on(server: Any) -> None:
    """``StreamSettings(compress=True)`` on the site compresses every eligible stream."""

    def render(request: Any) -> Any:
        return stream(request, [b"hello"], content_type="application/json")

    server.serve(leaf(render), settings=StreamSettings(compress=True))
    response = await fetch(server.url(), GZIP)
    assert response.headers.getRawHeaders("content-encoding") == ["gzip"]
    assert gzip.decompress(await within(treq.content(response))) == b"hello"


@pytest_twisted.ensureDeferred
async def test_binary_types_are_not_compressed(server: Any) -> None:
    """An image is sent as is, without Vary."""
    serve(server, lambda: [b"\x89PNG"], content_type="image/png", compress=True)
    response = await fetch(server.url(), GZIP)
    assert not response.headers.hasHeader("content-encoding")
    assert not response.headers.hasHeader("vary")
    assert await within(treq.content(response)) == b"\x89PNG"


@pytest_twisted.ensureDeferred
async def test_an_encoded_body_is_left_alone(server: Any) -> None:
    """A response that already has a Content-Encoding is not compressed again."""

    def before(request: Any) -> None:
        request.setHeader(b"content-encoding", b"br")

    serve(
        server, lambda: [b"brotli bytes"], before=before, content_type="text/plain", compress=True
    )
    response = await fetch(server.url(), GZIP)
    assert response.headers.getRawHeaders("content-encoding") == ["br"]
    assert await within(treq.content(response)) == b"brotli bytes"


def partial(request: Any) -> None:
    request.setResponseCode(206)
    request.setHeader(b"content-range", b"bytes 0-4/100")


@pytest_twisted.ensureDeferred
async def test_range_responses_are_never_compressed(server: Any) -> None:
    """A 206 is sent as identity bytes with its Content-Length (with Vary)."""
    serve(
        server,
        lambda: [b"01234"],
        before=partial,
        content_type="text/plain",
        content_length=5,
        compress=True,
    )
    response = await fetch(server.url(), {**GZIP, "Range": ["bytes=0-4"]})
    assert response.code == 206
    assert not response.headers.hasHeader("content-encoding")
    assert response.length == 5  # the Content-Length
    assert response.headers.getRawHeaders("content-range") == ["bytes 0-4/100"]
    assert await within(treq.content(response)) == b"01234"


@pytest_twisted.ensureDeferred
async def test_head_carries_the_headers_of_get(server: Any) -> None:
    """Kind 2 (compression changes what a response says about itself): HEAD gets exactly
    the headers its GET would (RFC 9110 §9.3.2): Content-Encoding, Vary, and no
    Content-Length, since the gzipped GET has none (the identity length would be wrong)."""
    serve(server, lambda: [b"hello"], content_type="text/plain", content_length=5, compress=True)
    extra = "Accept-Encoding: gzip\r\nConnection: close\r\n"
    raw = await connect(server.port, get(method="HEAD", extra=extra))
    await within(raw.closed)
    head = bytes(raw.received).lower()
    assert head.startswith(b"http/1.1 200") and head.endswith(b"\r\n\r\n")
    assert b"\r\ncontent-encoding: gzip\r\n" in head
    assert b"content-length" not in head
    assert b"\r\nvary: accept-encoding\r\n" in head


@pytest_twisted.ensureDeferred
async def test_head_without_gzip_keeps_the_identity_length(server: Any) -> None:
    """Kind 2 (compression changes what a response says about itself): a HEAD from a
    client that does not accept gzip gets the identity Content-Length its GET gets, and
    Vary."""
    serve(server, lambda: [b"hello"], content_type="text/plain", content_length=5, compress=True)
    raw = await connect(server.port, get(method="HEAD", extra="Connection: close\r\n"))
    await within(raw.closed)
    head = bytes(raw.received).lower()
    assert b"content-encoding" not in head
    assert b"\r\ncontent-length: 5\r\n" in head
    assert b"\r\nvary: accept-encoding\r\n" in head


def twisted_gzip(resource: Any) -> Any:
    return EncodingResourceWrapper(resource, [GzipEncoderFactory()])


@pytest_twisted.ensureDeferred
async def test_twisted_gzip_wrapper_delivers_each_event(server: Any) -> None:
    """Under Twisted's EncodingResourceWrapper + GzipEncoderFactory (and compress off) the
    first event still arrives, decodable, before the second is produced."""
    gate: Deferred[bytes] = Deferred()
    serve(server, lambda: events(gate), wrap=twisted_gzip, content_type="text/event-stream")
    response = await fetch(server.url(), GZIP)
    assert response.headers.getRawHeaders("content-encoding") == ["gzip"]
    assert response.headers.getRawHeaders("vary") == ["Accept-Encoding"]
    body = await first_then_rest(response, gate, b"data: event-2\n\n")
    assert gzip.decompress(body) == b"data: event-1\n\ndata: event-2\n\ndata: event-3\n\n"


@pytest_twisted.ensureDeferred
async def test_twisted_gzip_wrapper_honours_q_zero(server: Any) -> None:
    """Twisted's encoder would gzip for ``gzip;q=0``; the replacement sends identity."""
    serve(server, lambda: [b"hello"], wrap=twisted_gzip, content_type="text/plain")
    response = await fetch(server.url(), {"Accept-Encoding": ["gzip;q=0"]})
    assert not response.headers.hasHeader("content-encoding")
    assert await within(treq.content(response)) == b"hello"


@pytest_twisted.ensureDeferred
async def test_twisted_gzip_wrapper_leaves_ranges_alone(server: Any) -> None:
    """Under Twisted's gzip wrapper a 206 is still sent as identity bytes."""
    serve(
        server,
        lambda: [b"01234"],
        before=partial,
        wrap=twisted_gzip,
        content_type="text/plain",
        content_length=5,
    )
    response = await fetch(server.url(), {**GZIP, "Range": ["bytes=0-4"]})
    assert response.code == 206
    assert not response.headers.hasHeader("content-encoding")
    assert await within(treq.content(response)) == b"01234"


@pytest_twisted.ensureDeferred
async def test_twisted_gzip_wrapper_for_a_non_streamed_body(server: Any) -> None:
    """Plain Twisted responses under the wrapper keep Twisted's own gzip (untouched)."""
    server.serve(twisted_gzip(leaf(lambda request: b"plain body")))
    response = await fetch(server.url(), GZIP)
    assert response.headers.getRawHeaders("content-encoding") == ["gzip"]
    assert gzip.decompress(await within(treq.content(response))) == b"plain body"


class Rows(Element):
    loader = TagLoader(tags.ul(tags.li(render="rows")))

    def __init__(self, gate: Deferred[str]) -> None:
        super().__init__()
        self.gate = gate

    @renderer
    def rows(self, request: Any, tag: Tag) -> list[object]:
        return [tag.clone()("one"), self.gate.addCallback(lambda t: tag.clone()(t))]


@pytest_twisted.ensureDeferred
async def test_a_compressed_template_arrives_progressively(server: Any) -> None:
    """A streamed Element with compress=True: the page up to a waiting renderer is
    decodable before that renderer's Deferred fires."""
    gate: Deferred[str] = Deferred()
    server.serve(leaf(lambda request: stream_element(request, Rows(gate), compress=True)))
    response = await fetch(server.url(), GZIP)
    assert response.headers.getRawHeaders("content-encoding") == ["gzip"]
    reader = Reader(response)
    await reader.until_decoded(b"<!DOCTYPE html>\n<ul><li>one</li>")
    gate.callback("two")
    await within(reader.done)
    assert gzip.decompress(b"".join(reader.raw)) == (
        b"<!DOCTYPE html>\n<ul><li>one</li><li>two</li></ul>"
    )


async def response_head(port: int, method: str) -> dict[str, str]:
    """The headers of a response (lower-case names) as sent to a gzip-accepting client, read
    as soon as they are complete: the body may never end."""
    raw = await connect(port, get(method=method, extra="Accept-Encoding: gzip\r\n"))
    await until(lambda: b"\r\n\r\n" in raw.received, what="the response's headers")
    raw.transport.loseConnection()
    head = bytes(raw.received).partition(b"\r\n\r\n")[0].decode("latin-1")
    fields = (line.partition(":") for line in head.split("\r\n")[1:])
    return {name.strip().lower(): value.strip() for name, _, value in fields}


class _Page(Element):
    loader = TagLoader(tags.p("a page"))


def _endless_events(request: Any) -> int:
    def ticks() -> Iterator[object]:
        while True:
            yield "tick"
            yield Deferred()

    return stream_events(request, ticks(), heartbeat=None)


def _ndjson(request: Any) -> int:
    return stream_ndjson(request, iter([{"a": 1}]))


def _jinja(request: Any) -> int:
    return stream_template(request, jinja2.Template("<p>{{ x }}</p>"), {"x": 1})


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "render",
    [
        lambda request: stream(
            request, iter([b"rows"]), content_type="text/csv", content_length=4
        ),
        _endless_events,
        lambda request: stream_element(request, _Page()),
        _ndjson,
        _jinja,
    ],
    ids=["stream", "events", "element", "ndjson", "jinja2"],
)
async def test_head_of_every_streamed_kind_says_what_get_says(server: Any, render: Any) -> None:
    """Kind 2 (compression changes what a response says about itself): under
    ``compress=True`` the HEAD of a streamed response, an event stream, a
    twisted.web.template Element, NDJSON and a Jinja2 template carries the headers of its
    gzipped GET: Content-Type, Content-Encoding, Vary, Cache-Control, and no
    Content-Length (the gzipped GET has none)."""
    server.serve(leaf(render), settings=StreamSettings(compress=True))
    got = await response_head(server.port, "GET")
    head = await response_head(server.port, "HEAD")
    assert got["content-encoding"] == "gzip"
    for name in ("content-type", "content-encoding", "vary", "cache-control", "content-length"):
        assert head.get(name) == got.get(name), name
    assert "content-length" not in head
