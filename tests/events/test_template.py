"""Streaming ``twisted.web.template`` Elements (``twisted_stream._events._template``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import deferLater
from twisted.web._newclient import ResponseFailed
from twisted.web.client import PotentialDataLoss
from twisted.web.error import FlattenerError
from twisted.web.template import (
    CDATA,
    CharRef,
    Comment,
    Element,
    Tag,
    TagLoader,
    XMLString,
    flattenString,
    renderer,
    slot,
    tags,
)

from twisted_stream import Outcome
from twisted_stream._events._template import ElementResource, flatten_chunks, stream_element
from twisted_stream.testing import StreamTestClient

from ..conftest import Served, serve_streams
from ..rawclient import connect, get
from ..waiting import until, within

TEMPLATE = """\
<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">
<head><title t:render="title" /></head>
<body>
  <p class="a &amp; b" t:render="greeting">Hello, <t:slot name="who" />!</p>
  <ul><li t:render="items"><t:attr name="data-n"><t:slot name="n" /></t:attr
    ><t:slot name="text" /></li></ul>
  <div t:render="later" />
  <div t:render="coroutine" />
  <t:transparent t:render="nested" />
  <br />
  <p t:render="odd">x</p>
</body>
</html>
"""


class Inner(Element):
    """A nested element with its own renderer."""

    loader = TagLoader(tags.span(render="inner")("inner ", slot("v")))

    @renderer
    def inner(self, request: Any, tag: Tag) -> Tag:
        return tag.fillSlots(v="<&\"'>")


class Page(Element):
    """Renderers, slots, Deferreds, coroutines, generators, nesting and escaping."""

    loader = XMLString(TEMPLATE)

    @renderer
    def title(self, request: Any, tag: Tag) -> Tag:
        return tag("Tom & Jerry <3")

    @renderer
    def greeting(self, request: Any, tag: Tag) -> Tag:
        return tag.fillSlots(who='"world" & <friends>')

    @renderer
    def items(self, request: Any, tag: Tag) -> Iterator[Tag]:
        for n in range(3):
            yield tag.clone().fillSlots(n=str(n), text=f"item <{n}>")

    @renderer
    def later(self, request: Any, tag: Tag) -> Deferred[Tag]:
        return deferLater(reactor, 0, lambda: tag("from a Deferred", CharRef(9731)))

    @renderer
    async def coroutine(self, request: Any, tag: Tag) -> Tag:
        await deferLater(reactor, 0, lambda: None)
        return tag(CDATA("raw ]]> data"), Comment(" a -- comment -"))

    @renderer
    def nested(self, request: Any, tag: Tag) -> list[object]:
        return [Inner(), succeed(Inner()), tags.a(href=["/x?a=1&b=", tags.b("<q>")])("link")]

    @renderer
    def odd(self, request: Any, tag: Tag) -> Tag:
        return tag(title=succeed('deferred "attr" <value>'), **{"data-x": "&"})


def serve_element(server: Any, make: Any, **kwargs: Any) -> Served:
    return serve_streams(server, lambda request: stream_element(request, make(), **kwargs))


@pytest_twisted.ensureDeferred
async def test_output_equals_twisted_flatten_string(server: Any, client: Any) -> None:
    """The streamed page is byte for byte the doctype plus Twisted's flattenString output."""
    serve_element(server, Page)
    response = await client.get(server.url())
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    body = await within(response.content())
    expected = await flattenString(None, Page())
    assert body == b"<!DOCTYPE html>\n" + expected
    assert b"Tom &amp; Jerry &lt;3" in body
    assert b'title="deferred &quot;attr&quot; &lt;value&gt;"' in body


@pytest_twisted.ensureDeferred
async def test_flatten_chunks_matches_flatten_string_for_each_kind() -> None:
    """The lazy walk gives flattenString's bytes for each flattenable kind on its own."""
    cases: list[Callable[[], object]] = [
        lambda: "plain <text> & more",
        lambda: b"bytes",
        lambda: tags.p(class_="x")("a", tags.br(), CharRef(65)),
        lambda: tags.div(title=tags.b("nested <tag> in attr")),
        lambda: [Comment("c"), CDATA("d"), (x for x in ["gen", "erated"])],
        lambda: Tag("")(slot("s", default="default slot")),
        lambda: succeed(tags.i("deferred")),
        lambda: tags.img(src="a.png"),
        Inner,
    ]
    for make in cases:
        parts: list[bytes] = []
        for item in flatten_chunks(None, make()):
            if isinstance(item, Deferred):
                await item
            else:
                parts.append(item)
        assert b"".join(parts) == await flattenString(None, make()), make


def test_flatten_chunks_raises_flattener_error() -> None:
    """An unfilled slot or an unsupported object fails as Twisted's FlattenerError."""
    with pytest.raises(FlattenerError):
        list(flatten_chunks(None, tags.p(slot("missing"))))
    with pytest.raises(FlattenerError):
        list(flatten_chunks(None, tags.p(object())))


def test_closing_the_walk_cancels_the_renderer_and_closes_generators() -> None:
    """Closing the walk while it waits cancels the awaited Deferred and runs the finally
    of the renderer generator being iterated."""
    events: list[str] = []
    pending: Deferred[str] = Deferred(lambda _: events.append("cancelled"))

    def rows() -> Iterator[object]:
        try:
            yield "row 1"
            yield pending
            yield "row 3"  # pragma: no cover
        finally:
            events.append("finally")

    walk = flatten_chunks(None, tags.table(rows()))
    assert next(walk) == b"<table>"
    assert next(walk) == b"row 1"
    waiting = next(walk)
    assert isinstance(waiting, Deferred) and not waiting.called
    failures: list[Any] = []
    waiting.addErrback(failures.append)
    # What the engine's source does on teardown: cancel the wait, then close the generator.
    waiting.cancel()
    walk.close()  # type: ignore[attr-defined]
    assert events == ["cancelled", "finally"]
    assert failures[0].check(CancelledError)


@pytest_twisted.ensureDeferred
async def test_a_slow_renderer_page_arrives_progressively(server: Any, client: Any) -> None:
    """The part of the page before a slow Deferred renderer reaches the client while the
    renderer is still waiting; the rest follows when it fires."""
    gate: Deferred[str] = Deferred()

    class Slow(Element):
        loader = TagLoader(tags.body(tags.h1("Head"), tags.div(render="slow")))

        @renderer
        def slow(self, request: Any, tag: Tag) -> Deferred[Tag]:
            return gate.addCallback(lambda text: tag(text))

    serve_element(server, Slow)
    response = await client.get(server.url())
    got: list[bytes] = []
    body = treq.collect(response, got.append)
    head = b"<!DOCTYPE html>\n<body><h1>Head</h1>"
    await until(lambda: b"".join(got) == head, what="the page up to the slow renderer")
    assert not gate.called
    gate.callback("done")
    await within(body)
    assert b"".join(got) == b"<!DOCTYPE html>\n<body><h1>Head</h1><div>done</div></body>"


class Endless(Element):
    """An endless table; counts its row renderer calls; its row generator records its end."""

    loader = TagLoader(
        tags.table(tags.tr(render="rows")(tags.td(slot("n")), tags.td(slot("pad"))))
    )

    def __init__(self, slow: bool = False) -> None:
        super().__init__()
        self.calls = 0
        self.slow = slow
        self.events: list[str] = []

    @renderer
    def rows(self, request: Any, tag: Tag) -> Iterator[object]:
        try:
            while True:
                self.calls += 1
                row = tag.clone().fillSlots(n=str(self.calls), pad="x" * 1000)
                if self.slow:
                    yield deferLater(reactor, 0.001, lambda row=row: row)
                else:
                    yield row
        finally:
            self.events.append("finally")


def test_a_client_that_stops_reading_stops_the_rendering() -> None:
    """No renderer runs while the client does not read, whatever time passes; what was
    rendered meanwhile is bounded by the transport's buffer and one engine buffer;
    rendering resumes when the client reads again."""
    page = Endless()
    with StreamTestClient(ElementResource(lambda request: page)) as client:
        response = client.get("/", stop_reading_after=0, disconnect_after=1_000_000)
        at_pause = page.calls
        assert response.stream is not None and response.stream.paused
        assert at_pause * 1000 <= 65536 + client.site.stream_settings.buffer_size + 2000
        client.advance(30)
        assert page.calls == at_pause
        response.resume_reading()
        assert page.calls > at_pause + 100
        assert response.result is not None and response.result.outcome is Outcome.CLIENT_GONE
        assert page.events == ["finally"]


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest_twisted.ensureDeferred
async def test_disconnect_stops_rendering(server: Any, how: str) -> None:
    """After the client leaves no renderer runs again and the renderer generator's finally
    runs."""
    page = Endless(slow=True)
    served = serve_element(server, lambda: page)
    raw = await connect(server.port, get())
    await within(raw.received_at_least(5000))
    handle = await served.first()
    assert raw.transport is not None
    if how == "close":
        raw.transport.loseConnection()
    else:
        raw.transport.abortConnection()  # type: ignore[attr-defined]
    result = await within(handle.when_done())
    assert result.outcome is Outcome.CLIENT_GONE
    await within(handle.source_closed)
    assert page.events == ["finally"]
    calls = page.calls
    await deferLater(reactor, 0.05, lambda: None)  # several slow-renderer periods
    assert page.calls == calls


@pytest_twisted.ensureDeferred
async def test_head_renders_nothing(server: Any, client: Any) -> None:
    """HEAD answers with the headers and never runs a renderer."""
    page = Endless()
    serve_element(server, lambda: page)
    response = await client.head(server.url())
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    await within(response.content())
    assert page.calls == 0


class Failing(Element):
    loader = TagLoader(tags.body(tags.p("before"), tags.div(render="boom")))

    @renderer
    def boom(self, request: Any, tag: Tag) -> Deferred[Tag]:
        def fail() -> Tag:
            raise RuntimeError("renderer failed")

        return deferLater(reactor, 0, fail)


@pytest_twisted.ensureDeferred
async def test_a_failing_renderer_truncates_the_page(server: Any, client: Any) -> None:
    """A renderer failing after part of the page went out gives an incomplete body."""
    serve_element(server, Failing)
    response = await client.get(server.url())
    assert response.code == 200
    with pytest.raises((ResponseFailed, PotentialDataLoss)):
        await within(response.content())


@pytest_twisted.ensureDeferred
async def test_a_failing_first_renderer_answers_500(server: Any, client: Any) -> None:
    """Without a doctype, a renderer failing before any byte was produced answers 500."""

    class Early(Element):
        loader = TagLoader(tags.div(render="boom"))

        @renderer
        def boom(self, request: Any, tag: Tag) -> Tag:
            raise RuntimeError("early")

    served = serve_element(server, Early, doctype=None)
    response = await client.get(server.url())
    assert response.code == 500
    await response.content()
    result = await within((await served.first()).when_done())
    assert result.outcome is Outcome.SOURCE_FAILED
    assert result.failure is not None and result.failure.check(FlattenerError)


@pytest_twisted.ensureDeferred
async def test_element_resource(server: Any, client: Any) -> None:
    """ElementResource streams a new element per request, with a custom doctype, and keeps
    a Content-Type the element's request already has."""
    seen: list[Any] = []

    def factory(request: Any) -> Element:
        seen.append(request)
        request.setHeader(b"content-type", b"application/xhtml+xml")
        return Inner()

    server.serve(ElementResource(factory, doctype=b"<!DOCTYPE x>"))
    for _ in range(2):
        response = await client.get(server.url())
        assert response.headers.getRawHeaders("content-type") == ["application/xhtml+xml"]
        body = await within(response.content())
        assert body == b"<!DOCTYPE x>\n<span>inner &lt;&amp;\"'&gt;</span>"
    assert len(seen) == 2 and seen[0] is not seen[1]


@pytest_twisted.ensureDeferred
async def test_the_demo_page(server: Any, client: Any) -> None:
    """The /template demo streams a full table of ?rows= rows, one Deferred per row."""
    from twisted_stream._demo._template import template_demo

    server.serve(template_demo())
    response = await client.get(server.url("/?rows=3&delay=0.001"))
    assert response.code == 200
    body = await within(response.content())
    assert body.startswith(b"<!DOCTYPE html>\n<html>")
    assert body.count(b"<tr><td>") == 3
    assert b"<tr><td>3</td><td>9</td>" in body
    assert b"Rendered 3 rows in" in body and body.endswith(b"</html>")
