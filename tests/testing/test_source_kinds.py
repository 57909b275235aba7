"""``twisted_stream.testing`` against every kind of source, one resource and one test each.

These are the examples of the guide's "Testing your streams" page (docs/guide/testing.rst
includes the code between each ``# [kind]`` and ``# [/kind]`` marker), so what the page
shows is what runs here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.template import Element, Tag, TagLoader, renderer, tags
from zope.interface import implementer

from twisted_stream import (
    Channel,
    ElementResource,
    Event,
    EventStreamResource,
    Outcome,
    StreamingResource,
    StreamSettings,
    stream,
)
from twisted_stream.testing import StreamTestClient, StreamTestClock, assert_released


# [sync]
class Export(Resource):
    """A CSV export from a generator; ``closed`` tells that its ``finally`` ran."""

    isLeaf = True
    closed = False

    def render_GET(self, request: Request) -> int:
        def rows() -> Iterator[str]:
            try:
                yield "id,square\n"
                for i in range(100_000):
                    yield f"{i},{i * i}\n"
            finally:
                self.closed = True

        return stream(request, rows(), content_type="text/csv; charset=utf-8")


def test_the_export_arrives_whole_and_a_client_leaving_closes_it() -> None:
    """Every row arrives, chunked; a client leaving after 100 kB closes the generator."""
    export = Export()
    with StreamTestClient(export) as client:
        response = client.get("/export.csv")
        assert response.code == 200
        assert response.headers.getRawHeaders("content-type") == ["text/csv; charset=utf-8"]
        assert response.body.count(b"\n") == 100_001 and response.complete
        assert response.result.outcome is Outcome.COMPLETED

        response = client.get("/export.csv", disconnect_after=100_000)
        assert not response.complete
        assert response.result.outcome is Outcome.CLIENT_GONE
        assert export.closed
        assert_released(response)


# [/sync]


# [deferreds]
class Ticks(StreamingResource):
    """A tick a second, waiting on ``clock`` (the reactor, or a test's fake clock)."""

    isLeaf = True
    content_type = "text/plain; charset=utf-8"

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__()
        self.clock = clock

    def render_GET(self, request: Request) -> Iterator[object]:
        for n in range(3):
            yield f"tick {n}\n"
            yield deferLater(self.clock, 1, lambda: None)


def test_ticks_arrive_one_a_second_of_the_fake_clock() -> None:
    """Each tick arrives when the clock reaches its second; the stream ends at 3 s."""
    clock = StreamTestClock()
    with StreamTestClient(Ticks(clock), clock=clock) as client:
        response = client.get("/ticks")
        assert response.body == b"tick 0\n"
        client.advance(1)
        assert response.body == b"tick 0\ntick 1\n"
        client.advance(2)
        assert response.body == b"tick 0\ntick 1\ntick 2\n" and response.complete
        assert response.result.duration == 3.0


# [/deferreds]


# [async]
class Tokens(StreamingResource):
    """Tokens of a slow upstream, from an async generator that awaits ``clock``."""

    isLeaf = True

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__()
        self.clock = clock
        self.cleaned_up = False

    async def render_GET(self, request: Request) -> AsyncIterator[str]:
        try:
            for token in ["Hello", ", ", "world"]:
                yield await deferLater(self.clock, 0.5, lambda token=token: token)
        finally:
            self.cleaned_up = True


def test_a_client_leaving_mid_answer_closes_the_async_generator() -> None:
    """A client that leaves while a token is awaited cancels the await and runs the
    generator's ``finally``; nothing is left on the clock."""
    clock = StreamTestClock()
    tokens = Tokens(clock)
    with StreamTestClient(tokens, clock=clock) as client:
        response = client.get("/tokens")
        client.advance(0.5)
        assert response.body == b"Hello"
        response.disconnect()
        assert response.result.outcome is Outcome.CLIENT_GONE
        assert tokens.cleaned_up
        assert_released(response)


# [/async]


# [threaded]
class Report(StreamingResource):
    """Rows of a blocking database query, run on the site's thread pool."""

    isLeaf = True
    threaded = True
    content_type = "text/plain; charset=utf-8"

    def render_GET(self, request: Request) -> Iterator[str]:
        db = sqlite3.connect(":memory:")  # opened on the worker thread that uses it
        try:
            db.execute("create table t (n integer)")
            db.executemany("insert into t values (?)", [(n,) for n in range(1000)])
            for (n,) in db.execute("select n from t order by n"):
                yield f"{n}\n"
        finally:
            db.close()


def test_a_threaded_report_arrives_whole() -> None:
    """The client waits, in real time, for the pool's threads to hand their rows back;
    the fake clock does not move meanwhile."""
    with StreamTestClient(Report()) as client:
        response = client.get("/report")
        assert response.body == b"".join(b"%d\n" % n for n in range(1000))
        assert response.complete and client.clock.seconds() == 0
        assert_released(response)


# [/threaded]


# [file]
class Download(Resource):
    """A file, sent with its ``Content-Length``."""

    isLeaf = True

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def render_GET(self, request: Request) -> int:
        return stream(request, self.path)


def test_a_slow_reader_is_paused_and_one_that_stops_is_cut(tmp_path: Path) -> None:
    """At 100 kB/s the 1 MB file takes 10 s, the stream paused whenever the transport is
    full; a client that stops reading is cut after the stall timeout, the file closed."""
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 4096)
    settings = StreamSettings(stall_timeout=5)
    with StreamTestClient(Download(path), settings=settings) as client:
        response = client.get("/data.bin", read_rate=100_000)
        assert response.headers.getRawHeaders("content-length") == ["1048576"]
        client.advance(5)
        assert 450_000 < len(response.body) < 550_000
        assert response.stream.pause_count > 0
        client.advance(6)
        assert response.body == path.read_bytes()

        response = client.get("/data.bin", stop_reading_after=1000)
        client.advance(5)
        assert response.result.outcome is Outcome.STALLED
        assert response.result.bytes_sent < 3 * 65536
        assert_released(response)


# [/file]


# [element]
class Page(Element):
    """A page whose second part comes from a slow renderer."""

    loader = TagLoader(tags.html(tags.h1("Report"), tags.p(render="total")))

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__()
        self.clock = clock

    @renderer
    def total(self, request: object, tag: Tag) -> Deferred[Tag]:
        return deferLater(self.clock, 2, lambda: tag("42"))


def test_the_page_streams_its_head_first_and_stops_rendering_when_the_client_leaves() -> None:
    """What is rendered goes out at once; the rest when its renderer's Deferred fires; a
    client leaving meanwhile cancels that Deferred."""
    clock = StreamTestClock()
    with StreamTestClient(ElementResource(lambda request: Page(clock)), clock=clock) as client:
        response = client.get("/")
        assert response.body == b"<!DOCTYPE html>\n<html><h1>Report</h1>"
        client.advance(2)
        assert response.body.endswith(b"<p>42</p></html>") and response.complete

        response = client.get("/")
        response.disconnect()
        assert_released(response)  # the renderer's timer was cancelled with its Deferred


# [/element]


# [events]
def test_subscribers_get_each_event_and_heartbeats_and_leave_cleanly() -> None:
    """A subscriber gets the headers at once, each event published, a heartbeat after 15 s
    of silence; one coming back with ``Last-Event-ID`` gets what it missed; leaving
    unsubscribes."""
    news = Channel(history=10)
    with StreamTestClient(EventStreamResource(news)) as client:
        response = client.get("/news")
        assert response.headers.getRawHeaders("content-type") == [
            "text/event-stream; charset=utf-8"
        ]
        news.publish(Event("first"))
        news.publish(Event("second"))
        client.flush()
        assert response.body == b"id: 1\ndata: first\n\nid: 2\ndata: second\n\n"
        client.advance(15)
        assert response.body.endswith(b"\n\n:\n\n")

        back = client.get("/news", headers={"Last-Event-ID": "1"})
        assert back.body == b"id: 2\ndata: second\n\n"
        for subscriber in (response, back):
            subscriber.disconnect()
            assert_released(subscriber)
        assert news.subscribers == 0


# [/events]


# [producer]
@implementer(IPushProducer)
class Counter:
    """A push producer writing a numbered line every millisecond of ``clock``, paused and
    resumed as its consumer says."""

    def __init__(self, consumer: IConsumer, clock: IReactorTime) -> None:
        self.consumer = consumer
        self.count = 0
        self.loop = LoopingCall(self.tick)
        self.loop.clock = clock
        consumer.registerProducer(self, True)
        self.loop.start(0.001)

    def tick(self) -> None:
        self.count += 1
        self.consumer.write(b"%d\n" % self.count)

    def pauseProducing(self) -> None:
        self.loop.stop()

    def resumeProducing(self) -> None:
        self.loop.start(0.001)

    def stopProducing(self) -> None:
        if self.loop.running:
            self.loop.stop()


class Counting(Resource):
    """Streams a :class:`Counter` started on the consumer ``stream()`` gives it."""

    isLeaf = True

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__()
        self.clock = clock
        self.producers: list[Counter] = []

    def render_GET(self, request: Request) -> int:
        def start(consumer: IConsumer) -> Deferred[None]:
            self.producers.append(Counter(consumer, self.clock))
            return Deferred()  # the body never ends on its own

        return stream(request, start)


def test_the_producer_pauses_while_the_client_does_not_read_and_stops_when_it_leaves() -> None:
    """A client that stops reading gets the producer paused once the transport is full, and
    it stays paused; reading resumes it; leaving stops it, and its loop leaves no timer."""
    clock = StreamTestClock()
    counting = Counting(clock)
    with StreamTestClient(counting, clock=clock) as client:
        response = client.get("/count", stop_reading_after=0)
        client.advance(30)
        [producer] = counting.producers
        assert response.stream.paused
        count = producer.count
        client.advance(10)
        assert producer.count == count
        response.resume_reading()
        client.advance(1)
        assert producer.count > count and not response.stream.paused
        response.disconnect()
        assert not producer.loop.running
        assert_released(response)


# [/producer]


def test_every_kind_is_in_the_guide() -> None:
    """The guide includes each example of this module by its markers."""
    guide = (Path(__file__).parents[2] / "docs" / "guide" / "testing.rst").read_text()
    source = Path(__file__).read_text()
    kinds = [
        line[3:-1] for line in source.splitlines() if line.startswith("# [") and "/" not in line
    ]
    assert len(kinds) == 8
    for kind in kinds:
        assert f":start-after: # [{kind}]" in guide, kind
        assert f":end-before: # [/{kind}]" in guide, kind
