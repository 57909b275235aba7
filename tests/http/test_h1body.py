"""Streamed request bodies on HTTP/1.x, byte by byte on a fake transport and clock:
traversal at the end of the head, reading only when asked, ``100 Continue``, answers before
the body (discard or close), limits, malformed framing, the idle timeout, HTTP/1.0, empty
bodies and bodies on GET. (Real sockets: ``test_uploads.py``.)"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from twisted_stream import (
    IStreamBodyResource,
    RequestBodyIncomplete,
    StreamingResource,
    request_body,
)
from twisted_stream._http._reading import BODY

from .conn import Conn, chunked, head


class Upload(StreamingResource):
    """Streams PUT/POST bodies; what it does with them is set per test (``mode``)."""

    isLeaf = True
    stream_body = True

    def __init__(self, mode: str = "read") -> None:
        super().__init__()
        self.mode = mode
        self.rendered: list[Any] = []
        self.received: list[bytes] = []
        self.hold: Deferred[None] | None = None
        self.failures: list[BaseException] = []
        self.finally_ran = 0

    async def render_PUT(self, request: Any) -> bytes:
        self.rendered.append(request)
        if self.mode == "refuse":
            request.setResponseCode(401)
            return b"no\n"
        body = request_body(request)
        if self.mode == "hold":
            self.hold = Deferred()
            await self.hold
        try:
            async for chunk in body:
                self.received.append(chunk)
        except Exception as e:
            self.failures.append(e)
            raise
        finally:
            self.finally_ran += 1
        return b"stored %d\n" % sum(map(len, self.received))

    render_POST = render_PUT


def put(path: str = "/", headers: str = "", version: str = "1.1") -> bytes:
    return head(path, method="PUT", version=version, headers="Host: a\r\n" + headers)


def test_resource_renders_when_the_head_is_complete_and_reading_waits_for_it() -> None:
    """A resource that streams bodies renders as soon as the head is in, before any body
    byte; reading the socket stops (the ``BODY`` reason) until the application asks."""
    resource = Upload(mode="hold")
    conn = Conn(resource).send(put(headers="Content-Length: 10\r\n"))
    assert len(resource.rendered) == 1
    assert conn.channel._gate.reasons & BODY
    assert resource.hold is not None
    resource.hold.callback(None)  # now it reads
    assert not conn.channel._gate.reasons & BODY
    conn.send(b"0123456789")
    assert conn.status() == 200
    assert conn.output.endswith(b"stored 10\n")


def test_traversal_at_the_head_uses_the_tree_once() -> None:
    """Traversal happens at the end of the head with the same tree, ``prepath`` and
    ``postpath`` as for a buffered request; ``getChild`` runs once per request whether the
    leaf streams bodies or not, and a leaf that does not is rendered after its whole body
    with ``request.content`` and form ``args`` as in Twisted."""
    calls: list[bytes] = []
    seen: list[tuple[list[bytes], list[bytes]]] = []

    class Buffered(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            seen.append((list(request.prepath), list(request.postpath)))
            return b"%s %s\n" % (request.content.read(), request.args[b"a"][0])

    class Streamed(Upload):
        def render_PUT(self, request: Any) -> Any:
            seen.append((list(request.prepath), list(request.postpath)))
            return super().render_PUT(request)

    class Root(Resource):
        def getChild(self, name: bytes, request: Any) -> Resource:
            calls.append(name)
            return Streamed() if name == b"up" else Buffered()

    conn = Conn(Root())
    conn.send(put("/up/x/y", "Content-Length: 3\r\n") + b"abc")
    form = b"a=1"
    conn.send(
        head(
            "/form/z",
            method="POST",
            headers="Host: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(form)}\r\n",
        )
        + form
    )
    assert conn.statuses() == [200, 200]
    assert calls == [b"up", b"form"]
    assert seen == [([b"up"], [b"x", b"y"]), ([b"form"], [b"z"])]
    assert b"stored 3\n" in conn.output and b"a=1 1\n" in conn.output


def test_a_plain_resource_opts_in_with_the_interface() -> None:
    """A plain ``Resource`` declaring ``IStreamBodyResource`` is rendered at the head and
    reads the body as it arrives; Twisted's ``render`` rules still apply to it."""
    requests: list[Any] = []

    @implementer(IStreamBodyResource)
    class Plain(Resource):
        isLeaf = True

        def render_PUT(self, request: Any) -> int:
            requests.append(request)
            body = request_body(request)

            def done(data: bytes) -> None:
                request.write(b"%d\n" % len(data))
                request.finish()

            body.read().addCallback(done)
            return NOT_DONE_YET

    conn = Conn(Plain()).send(put(headers="Transfer-Encoding: chunked\r\n"))
    assert len(requests) == 1 and conn.output == b""
    conn.send(chunked(b"p" * 5000, 999))
    assert conn.status() == 200 and b"\r\n5000\n\r\n" in conn.output


def test_continue_only_on_the_first_read() -> None:
    """``Expect: 100-continue`` is answered ``100 Continue`` when the application first
    reads, not when the head arrives."""
    resource = Upload(mode="hold")
    conn = Conn(resource).send(put(headers="Content-Length: 5\r\nExpect: 100-continue\r\n"))
    assert conn.output == b""
    assert resource.hold is not None
    resource.hold.callback(None)
    assert conn.output == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(b"12345")
    assert conn.statuses() == [100, 200]


def test_an_answer_without_reading_sends_no_continue_and_closes() -> None:
    """A resource that answers without reading (401 here) sends no ``100``; the connection
    closes after the answer (``Connection: close``), since the client may or may not send
    the body; nothing after it is parsed."""
    resource = Upload(mode="refuse")
    conn = Conn(resource).send(put(headers="Content-Length: 5\r\nExpect: 100-continue\r\n"))
    assert conn.statuses() == [401]
    assert b"Connection: close" in conn.output
    assert conn.closing
    conn.send(b"12345" + put("/second", "Content-Length: 0\r\n"))
    assert conn.statuses() == [401]


def test_a_small_unread_rest_is_discarded_and_the_connection_kept() -> None:
    """A response that ends before its body (no expectation) drops the rest, within
    ``discard_limit``, and the next pipelined request is answered on the same connection."""
    resource = Upload(mode="refuse")
    conn = Conn(resource, discard_limit=1000)
    conn.send(put(headers="Content-Length: 800\r\n") + b"x" * 300)
    assert conn.statuses() == [401]
    assert b"Connection: close" not in conn.output
    conn.send(b"x" * 500 + put("/again", "Content-Length: 0\r\n"))
    assert conn.statuses() == [401, 401]
    assert not conn.closing
    assert len(resource.rendered) == 2


def test_a_large_unread_rest_closes_the_connection() -> None:
    """A declared rest over ``discard_limit`` closes the connection after the answer
    (``Connection: close`` said first); a chunked rest that passes the limit while it is
    dropped closes it too."""
    resource = Upload(mode="refuse")
    conn = Conn(resource, discard_limit=1000)
    conn.send(put(headers="Content-Length: 5000\r\n"))
    assert conn.statuses() == [401]
    assert b"Connection: close" in conn.output and conn.closing

    chunked_conn = Conn(Upload(mode="refuse"), discard_limit=1000)
    chunked_conn.send(put(headers="Transfer-Encoding: chunked\r\n"))
    assert b"Connection: close" not in chunked_conn.output
    chunked_conn.send(chunked(b"z" * 3000, 500)[:-5] + put("/next", "Content-Length: 0\r\n"))
    assert chunked_conn.statuses() == [401]
    assert chunked_conn.closing


def test_the_next_request_waits_for_the_body_to_be_consumed() -> None:
    """Pipelined input after a streamed body is parsed only after that body was read and
    its response done: the next request is never taken from the body's bytes."""
    resource = Upload()
    conn = Conn(resource)
    body = b"GET /not-a-request HTTP/1.1\r\n\r\n"
    conn.send(
        put(headers=f"Content-Length: {len(body)}\r\n")
        + body
        + put("/second", "Content-Length: 2\r\n")
        + b"ok"
    )
    assert conn.statuses() == [200, 200]
    assert b"".join(resource.received) == body + b"ok"
    assert [r.uri for r in resource.rendered] == [b"/", b"/second"]


def test_declared_length_over_the_limit_gets_413_before_reading() -> None:
    """A declared length over the limit is answered 413 when the body is asked for (before
    any byte of it is read, no ``100``), and the connection closes."""
    resource = Upload()
    conn = Conn(resource, max_body_size=100)
    conn.send(put(headers="Content-Length: 101\r\nExpect: 100-continue\r\n"))
    assert conn.statuses() == [413]
    assert conn.closing
    assert resource.received == [] and resource.finally_ran == 1


def test_a_resource_sets_its_own_limit_higher_lower_or_none() -> None:
    """``max_body_size`` of the resource, or ``request_body(..., max_size=)``, replaces the
    site's limit (0: none)."""

    class Big(Upload):
        max_body_size = 0

    conn = Conn(Big(), max_body_size=100)
    conn.send(put(headers="Content-Length: 5000\r\n") + b"b" * 5000)
    assert conn.statuses() == [200]

    class Small(Upload):
        async def render_PUT(self, request: Any) -> bytes:
            request_body(request, max_size=10)
            return await super().render_PUT(request)

    conn = Conn(Small(), max_body_size=100)
    conn.send(put(headers="Content-Length: 11\r\n"))
    assert conn.statuses() == [413]


def test_a_chunked_body_passing_the_limit_gets_413_and_closes() -> None:
    """A chunked body that passes the limit fails the iterator with
    ``RequestBodyTooLarge``, the response is 413 and the connection closes; nothing past it
    is parsed."""
    resource = Upload()
    conn = Conn(resource, max_body_size=2000)
    conn.send(put(headers="Transfer-Encoding: chunked\r\n"))
    conn.send(chunked(b"c" * 5000, 700) + put("/second", "Content-Length: 0\r\n"))
    assert conn.statuses() == [413]
    assert conn.closing
    assert [type(e).__name__ for e in resource.failures] == ["RequestBodyTooLarge"]
    assert sum(map(len, resource.received)) <= 2000


def test_malformed_chunked_framing_gets_400_and_nothing_after_it() -> None:
    """Malformed chunked framing in a streamed body: the iterator fails, the answer is 400,
    the connection closes, and nothing after it is parsed as a request."""
    resource = Upload()
    conn = Conn(resource)
    conn.send(put(headers="Transfer-Encoding: chunked\r\n"))
    conn.send(b"5\r\nhello\r\nzz\r\nbad\r\n0\r\n\r\n" + put("/second", "Content-Length: 0\r\n"))
    assert conn.statuses() == [400]
    assert conn.closing
    assert len(resource.rendered) == 1
    assert isinstance(resource.failures[0], RequestBodyIncomplete)
    assert resource.failures[0].bytes_received == 5


def test_idle_timeout_408_before_a_response() -> None:
    """A client that sends nothing of the body for ``idle_timeout`` while the application
    waits gets 408 and the connection closes; the handler sees ``RequestBodyIncomplete``."""
    resource = Upload()
    conn = Conn(resource, idle_timeout=3.0)
    conn.send(put(headers="Content-Length: 10\r\n") + b"12345")
    conn.clock.advance(2.9)
    assert conn.output == b""
    conn.clock.advance(0.2)
    assert conn.statuses() == [408]
    assert conn.closing
    assert isinstance(resource.failures[0], RequestBodyIncomplete)


def test_idle_timeout_aborts_once_a_response_started() -> None:
    """Once the response has started, an upload idle for ``idle_timeout`` aborts the
    connection (no second status line)."""

    class Echo(StreamingResource):
        isLeaf = True
        stream_body = True

        def render_PUT(self, request: Any) -> Any:
            return request_body(request)  # streamed back as it arrives

    conn = Conn(Echo(), idle_timeout=1.0)
    conn.send(put(headers="Content-Length: 10\r\n") + b"12345")
    assert conn.statuses() == [200]
    conn.clock.advance(1.1)
    assert conn.statuses() == [200]
    assert conn.transport.disconnecting or conn.transport.disconnected


def test_a_slow_application_is_not_timed_out() -> None:
    """While the application has not asked for more (reading is paused), no idle timer
    runs: a slow consumer never causes a 408."""
    resource = Upload(mode="hold")
    conn = Conn(resource, idle_timeout=1.0)
    conn.send(put(headers="Content-Length: 3\r\n"))
    conn.clock.advance(60)
    assert conn.output == b"" and not conn.closing
    assert resource.hold is not None
    resource.hold.callback(None)
    conn.send(b"abc")
    assert conn.statuses() == [200]


def test_http10_body_is_streamed_and_the_connection_closes() -> None:
    """HTTP/1.0 with a Content-Length body is streamed like any other (no ``100`` even if
    asked: RFC 9110 §10.1.1) and the connection closes after the response."""
    resource = Upload()
    conn = Conn(resource)
    conn.send(put(headers="Content-Length: 4\r\nExpect: 100-continue\r\n", version="1.0"))
    conn.send(b"abcd")
    assert conn.statuses() == [200]
    assert b"100 Continue" not in conn.output
    assert conn.closing


@pytest.mark.parametrize("headers", ["Content-Length: 0\r\n", ""])
def test_an_empty_body_renders_as_usual(headers: str) -> None:
    """``Content-Length: 0`` (or no body at all) takes Twisted's usual path; the resource
    reads an empty body."""
    resource = Upload()
    conn = Conn(resource).send(put(headers=headers))
    assert conn.statuses() == [200]
    assert conn.output.endswith(b"stored 0\n")


def test_a_body_on_get_is_framed_and_streamed_like_any_other() -> None:
    """A body on GET is read by its framing like any other (never parsed as the next
    request): streamed to a resource that streams bodies."""
    got: list[bytes] = []

    class Get(StreamingResource):
        isLeaf = True
        stream_body = True

        async def render_GET(self, request: Any) -> bytes:
            got.append(await request_body(request).read())
            return b"ok\n"

    conn = Conn(Get()).send(
        head("/", headers="Host: a\r\nContent-Length: 13\r\n") + b"GET /x HTTP/1.1"[:13]
    )
    conn.send(head("/after"))
    assert conn.statuses() == [200, 200]
    assert got == [b"GET /x HTTP/1", b""]  # the second GET has an empty body


def test_a_client_that_leaves_fails_the_body_and_runs_finally() -> None:
    """A client gone mid-upload fails the iterator with ``RequestBodyIncomplete`` carrying
    ``bytes_received``; the handler's ``finally`` runs."""
    resource = Upload()
    conn = Conn(resource).send(put(headers="Content-Length: 100\r\n") + b"x" * 40)
    conn.lose()
    assert resource.finally_ran == 1
    error = resource.failures[0]
    assert isinstance(error, RequestBodyIncomplete) and error.bytes_received == 40


@pytest.mark.parametrize("size_line", [b"200000", b"ffffffffffffffffffffffff"])
def test_a_chunk_size_past_the_limit_gets_413_before_its_bytes(size_line: bytes) -> None:
    """A chunk-size line announcing a chunk that takes the body past the limit (the
    default 1 MiB: 2 MiB, or an absurd size) is answered 413 as soon as the line is parsed,
    before any of its bytes arrive; the iterator fails with ``RequestBodyTooLarge`` and the
    connection closes."""
    resource = Upload()
    conn = Conn(resource)
    conn.send(put(headers="Transfer-Encoding: chunked\r\n"))
    conn.send(b"5\r\nhello\r\n" + size_line + b"\r\n")
    assert conn.statuses() == [413]
    assert conn.closing
    assert [type(e).__name__ for e in resource.failures] == ["RequestBodyTooLarge"]
    assert resource.failures[0].bytes_received == 5  # type: ignore[attr-defined]


def test_an_absurd_chunk_size_gets_400_at_once_without_a_limit() -> None:
    """With no limit, a chunk size larger than any file (more than 2**63 - 1 bytes) is
    malformed framing: 400 at once, the iterator fails, the connection closes."""
    resource = Upload()
    conn = Conn(resource, max_body_size=0)
    conn.send(put(headers="Transfer-Encoding: chunked\r\n"))
    conn.send(b"8000000000000000\r\n")
    assert conn.statuses() == [400]
    assert conn.closing
    assert isinstance(resource.failures[0], RequestBodyIncomplete)


def test_a_chunk_size_reaching_the_limit_exactly_is_read() -> None:
    """A chunk whose size brings the body exactly to the limit is read as usual."""
    resource = Upload()
    conn = Conn(resource, max_body_size=10)
    conn.send(put(headers="Transfer-Encoding: chunked\r\n"))
    conn.send(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
    assert conn.statuses() == [200]
    assert b"".join(resource.received) == b"helloworld"


@pytest.mark.parametrize(
    ("settings", "request_bytes", "phrase"),
    [
        ({"max_body_size": 100}, put(headers="Content-Length: 101\r\n"), b"413 Content Too Large"),
        ({"idle_timeout": 1.0}, put(headers="Content-Length: 10\r\n"), b"408 Request Timeout"),
        ({}, put(headers="Transfer-Encoding: chunked\r\n") + b"zz\r\n", b"400 Bad Request"),
    ],
)
def test_a_body_answer_says_the_same_reason_in_its_status_line_and_body(
    settings: dict[str, Any], request_bytes: bytes, phrase: bytes
) -> None:
    """The answers a streamed body gets (413, 408, 400) carry RFC 9110's reason phrase in
    the status line and the same phrase at the start of the plain-text body."""
    conn = Conn(Upload(), **settings)
    conn.send(request_bytes)
    conn.clock.advance(1.1)
    head, _, body = conn.output.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + phrase + b"\r\n")
    assert body.startswith(phrase + b": ")
