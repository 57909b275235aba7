"""The test client (``twisted_stream.testing._client``): requests over the site's own
connection layer on the client's clock, with the limits and timeouts of production."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from twisted_stream import Outcome, StreamSettings, StreamSite, stream
from twisted_stream.testing import StreamTestClient, StreamTestClock

from ..conftest import leaf


class Recorder(Resource):
    """Answers with a stream of one line and records each request it got."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []

    def render(self, request: Any) -> int:
        self.requests.append(request)
        return stream(request, [b"%s %d\n" % (request.method, len(request.content.read()))])


def test_requests_carry_default_and_given_headers_and_a_body() -> None:
    """A request goes out with ``Host: localhost`` and ``Connection: close`` unless given
    others; a body goes with its ``Content-Length``; a path that cannot be sent raw is
    refused."""
    recorder = Recorder()
    with StreamTestClient(recorder) as client:
        assert client.get("/a?b=c").body == b"GET 0\n"
        client.request("GET", "/", headers={"host": "example.org", "X-Test": "1"})
        assert client.post("/upload", b"hello").body == b"POST 5\n"
        assert client.request("PUT", "/empty").body == b"PUT 0\n"
        first, given, post, put = recorder.requests
        assert first.uri == b"/a?b=c" and first.args == {b"b": [b"c"]}
        assert first.getHeader(b"host") == b"localhost"
        assert first.getHeader(b"connection") == b"close"
        assert given.getHeader(b"host") == b"example.org" and given.getHeader(b"x-test") == b"1"
        assert post.getHeader(b"content-length") == b"5"
        assert put.getHeader(b"content-length") == b"0"
        for path in ("/caf\u00e9", "/a b", ""):
            with pytest.raises(ValueError, match="ASCII"):
                client.get(path)
        for path in ("noslash", "http://localhost/x", "?q=1", "*"):
            with pytest.raises(ValueError, match="start with '/'"):
                client.get(path)
        with pytest.raises(ValueError, match="method"):
            client.request("GET /x", "/")
        with pytest.raises(ValueError, match="header"):
            client.get("/", headers={"X-A": "1\r\nX-Injected: 2"})
        assert client._open() == 0  # nothing was sent for them
        assert client.request("OPTIONS", "*").code is not None


def test_the_sites_connection_layer_answers() -> None:
    """Requests meet the site's own HTTP channel: its ``Server`` header, its body limit (413
    before the resource runs) and its closing of the connection after such an answer."""
    recorder = Recorder()
    settings = StreamSettings(server_header="tested", max_body_size=10)
    with StreamTestClient(recorder, settings=settings) as client:
        response = client.get("/")
        assert response.headers.getRawHeaders("server") == ["tested"]
        refused = client.post("/", b"x" * 11)
        assert refused.code == 413 and refused.disconnected
        assert len(recorder.requests) == 1


def test_a_given_site_runs_on_the_clients_clock() -> None:
    """A site built by the test is served as it is, on the client's clock (its reactor and
    monotonic clock); settings then belong to the site, not the client."""
    site = StreamSite(Recorder(), settings=StreamSettings(stall_timeout=7))
    clock = StreamTestClock()
    client = StreamTestClient(site, clock=clock)
    assert client.site is site and client.clock is clock
    assert site.reactor is clock and site.monotonic() == clock.seconds()
    assert client.get("/").code == 200
    with pytest.raises(TypeError, match="site"):
        StreamTestClient(site, settings=StreamSettings())
    client.close()


def test_limits_answer_503_and_the_streams_they_let_run_complete() -> None:
    """With ``max_streams=1`` a second request while one streams is refused with 503 and
    ``Retry-After``; the first completes when its source goes on."""
    gate: Deferred[bytes] = Deferred()
    resource = leaf(lambda request: stream(request, [b"start;", gate]))
    settings = StreamSettings(max_streams=1, retry_after=9)
    with StreamTestClient(resource, settings=settings) as client:
        first = client.get("/")
        refused = client.get("/")
        assert refused.code == 503 and refused.headers.getRawHeaders("retry-after") == ["9"]
        assert refused.result is not None and refused.result.outcome is Outcome.REJECTED
        gate.callback(b"end")
        client.flush()
        assert first.body == b"start;end" and first.complete


def test_a_stalled_client_is_cut_at_the_stall_timeout_of_the_clock() -> None:
    """A client that reads nothing holds the stream paused with no more than the transport's
    buffer and one engine buffer taken from the source, and is cut exactly when the stall
    timeout passes on the clock."""
    pulled: list[int] = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(1)
            yield b"x" * 1024

    settings = StreamSettings(stall_timeout=10)
    with StreamTestClient(leaf(lambda r: stream(r, endless())), settings=settings) as client:
        response = client.get("/", stop_reading_after=0)
        assert response.stream is not None and response.stream.paused
        assert len(pulled) * 1024 <= 65536 + settings.buffer_size + 1024
        client.advance(9.9)
        assert response.result is None
        client.advance(0.1)
        assert response.result is not None and response.result.outcome is Outcome.STALLED
        assert response.result.duration == 10 and response.disconnected


def test_bodiless_answers_and_resources_that_do_not_stream() -> None:
    """A HEAD gets the headers of the stream and no body; a resource answering bytes has no
    stream, and a kept-alive connection stays open after a complete response."""
    root = Resource()
    root.putChild(b"stream", leaf(lambda request: stream(request, iter([b"body"]))))
    root.putChild(b"plain", leaf(lambda request: b"plain"))
    with StreamTestClient(root) as client:
        head = client.request("HEAD", "/stream")
        assert head.code == 200 and head.body == b"" and head.complete
        plain = client.get("/plain", headers={"Connection": "keep-alive"})
        assert plain.body == b"plain" and plain.complete and not plain.disconnected
        assert plain.stream is None and plain.result is None and not plain.source_closed


def test_close_ends_open_streams_and_stops_the_sites_threads() -> None:
    """Closing the client disconnects what is still open (the streams end, their sources
    close) and stops the site's thread pool, even with a thread stuck in a source."""
    release = threading.Event()

    def rows() -> Iterator[bytes]:
        yield b"row\n"
        release.wait(10)

    client = StreamTestClient(
        leaf(lambda request: stream(request, rows(), threaded=True)), thread_timeout=0.05
    )
    response = client.get("/")
    assert response.body == b"row\n"
    assert client.site.thread_pool.workers == 1
    client.close()
    assert response.disconnected and response.result is not None
    assert client.site.thread_pool.workers == 0
    release.set()


def test_the_client_is_a_context_manager() -> None:
    """Leaving the ``with`` block closes the client, as ``close()`` does."""
    never: Deferred[bytes] = Deferred()
    with StreamTestClient(leaf(lambda request: stream(request, [b"a", never]))) as client:
        response = client.get("/")
        assert response.body == b"a"
    assert response.result is not None and response.result.outcome is Outcome.CLIENT_GONE
    assert client.clock.hasStopped


def test_render_returning_not_done_yet_without_a_stream_is_served_too() -> None:
    """A resource writing the response itself works over the client like any other."""

    def render(request: Any) -> object:
        request.write(b"by hand")
        request.finish()
        return NOT_DONE_YET

    with StreamTestClient(leaf(render)) as client:
        response = client.get("/")
        assert response.body == b"by hand" and response.complete
