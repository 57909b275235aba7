"""Prometheus exposition of a site's metrics (``twisted_stream._ops._prometheus``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_stream import Outcome, StreamSettings, stream, stream_for
from twisted_stream._ops._prometheus import (
    CONTENT_TYPE,
    Family,
    MetricsResource,
    Sample,
    _client,
    _number,
    families,
    render_text,
)
from twisted_stream._ops._site import StreamSite

from ..conftest import leaf
from ..rawclient import connect, get
from ..waiting import until, within

HAVE_CLIENT = _client() is not None
needs_client = pytest.mark.skipif(
    not HAVE_CLIENT, reason="prometheus_client (the 'prometheus' extra) is not installed"
)

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a text-format page: (name, sorted labels) -> value. Strict: every
    line must be a comment or a well-formed sample, or the test fails."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        found = _SAMPLE.match(line)
        assert found, f"malformed sample line {line!r}"
        name, labels, value = found.groups()
        pairs = tuple(sorted(_LABEL.findall(labels or "")))
        samples[(name, pairs)] = float(value)
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(f"twisted_stream_{name}", tuple(sorted(labels.items())))]


class App:
    """A site whose streams a test controls: ``/ok``, ``/fail``, ``/gate`` (waits on a
    Deferred) and ``/endless``, with the metrics page at ``/metrics``."""

    def __init__(self, server: Any, metrics: Resource, **settings: Any) -> None:
        self.gates: list[Deferred[bytes]] = []
        self.handles: list[Any] = []
        root = Resource()
        root.putChild(b"ok", leaf(lambda r: self._stream(r, iter([b"x" * 100]))))
        root.putChild(b"fail", leaf(lambda r: self._stream(r, self._failing())))
        root.putChild(b"gate", leaf(lambda r: self._stream(r, iter([b"start;", self._gate()]))))
        root.putChild(b"endless", leaf(lambda r: self._stream(r, self._endless())))
        root.putChild(b"metrics", metrics)
        self.site = server.serve(root, settings=StreamSettings(**settings))
        self.server = server

    def _stream(self, request: Any, source: object) -> Any:
        result = stream(request, source)
        self.handles.append(stream_for(request))
        return result

    def _gate(self) -> Deferred[bytes]:
        gate: Deferred[bytes] = Deferred()
        self.gates.append(gate)
        return gate

    @staticmethod
    def _failing() -> Iterator[bytes]:
        yield b"y" * 10
        raise RuntimeError("the source failed on purpose")

    @staticmethod
    def _endless() -> Iterator[bytes]:
        while True:
            yield b"z" * 4096


async def scrape(client: Any, server: Any, **headers: str) -> tuple[Any, str]:
    response = await within(
        client.get(server.url("/metrics"), headers={k: [v] for k, v in headers.items()})
    )
    return response, await within(response.text())


# The text format.


def test_numbers_are_written_as_prometheus_writes_them() -> None:
    """Floats use Go's formatting: integers keep ``.0``, large ones switch to exponents,
    infinities are ``+Inf``/``-Inf``."""
    assert _number(0) == "0.0"
    assert _number(3) == "3.0"
    assert _number(0.002) == "0.002"
    assert _number(12345678901) == "1.2345678901e+10"
    assert _number(float("inf")) == "+Inf"
    assert _number(float("-inf")) == "-Inf"
    assert _number(float("nan")) == "NaN"


def test_help_and_label_values_are_escaped() -> None:
    """Backslashes and newlines are escaped in HELP; quotes too in label values, so a hostile
    value cannot break out of its line."""
    family = Family(
        "twisted_stream_x_total",
        "counter",
        "line one\nline \\ two",
        (Sample("", (("outcome", 'a"b\\c\nd'),), 1.0),),
    )
    text = render_text([family]).decode()
    assert text.splitlines() == [
        "# HELP twisted_stream_x_total line one\\nline \\\\ two",
        "# TYPE twisted_stream_x_total counter",
        'twisted_stream_x_total{outcome="a\\"b\\\\c\\nd"} 1.0',
    ]


def test_a_fresh_site_exposes_every_family_at_zero() -> None:
    """Every family is present from the start (a counter that appears only after its first
    event breaks rate() in Prometheus), each outcome with its own sample."""
    site = StreamSite(Resource())
    samples = parse(render_text(families(site)).decode())
    assert value(samples, "streams_active") == 0
    assert value(samples, "streams_started_total") == 0
    for protocol in ("HTTP/1.1", "HTTP/2"):
        assert value(samples, "streams_active_by_protocol", protocol=protocol) == 0
        assert value(samples, "streams_started_by_protocol_total", protocol=protocol) == 0
    for outcome in Outcome:
        assert value(samples, "streams_ended_total", outcome=outcome.value) == 0
    assert value(samples, "bytes_sent_total") == 0
    assert value(samples, "pauses_total") == 0
    assert value(samples, "paused_seconds_total") == 0
    assert value(samples, "time_to_first_byte_seconds_bucket", le="+Inf") == 0
    assert value(samples, "time_to_first_byte_seconds_count") == 0
    assert value(samples, "time_to_first_byte_seconds_sum") == 0


def test_histogram_buckets_are_cumulative() -> None:
    """The time-to-first-byte buckets count every observation at or below their bound."""
    site = StreamSite(Resource())
    for seconds in (0.0005, 0.003, 0.003, 0.2, 7.0):
        site.metrics.first_byte(seconds)
    samples = parse(render_text(families(site)).decode())

    def bucket(le: str) -> float:
        return value(samples, "time_to_first_byte_seconds_bucket", le=le)

    assert [bucket(le) for le in ("0.001", "0.005", "0.1", "0.5", "5.0", "+Inf")] == [
        1,
        3,
        3,
        4,
        4,
        5,
    ]
    assert value(samples, "time_to_first_byte_seconds_count") == 5
    assert value(samples, "time_to_first_byte_seconds_sum") == pytest.approx(7.2065)


@needs_client
def test_the_client_path_writes_the_same_bytes_as_the_fallback() -> None:
    """With prometheus_client, a plain scrape is byte for byte what the built-in writer
    produces, so installing the extra changes nothing for an existing scraper."""
    client = _client()
    from prometheus_client.parser import text_string_to_metric_families

    site = StreamSite(Resource())
    site.metrics.stream_started()
    site.metrics.first_byte(0.02)
    site.metrics.bytes_sent = 12345678901
    site.metrics.paused_seconds = 1.25
    site.metrics.ended[Outcome.STALLED] = 3
    from twisted_stream._ops._prometheus import collector

    registry = client.core.CollectorRegistry(auto_describe=False)
    registry.register(collector(site))
    assert client.exposition.generate_latest(registry) == render_text(families(site))
    parsed = {
        s.name: s.value
        for family in text_string_to_metric_families(render_text(families(site)).decode())
        for s in family.samples
        if not s.labels or s.labels.get("outcome") in (None, "stalled")
    }
    assert parsed["twisted_stream_bytes_sent_total"] == 12345678901
    assert parsed["twisted_stream_streams_ended_total"] == 3


def test_collector_needs_the_extra(monkeypatch: Any) -> None:
    """Without prometheus_client, ``collector`` says which extra to install; the page still
    works (it falls back to the built-in writer)."""
    import twisted_stream._ops._prometheus as module

    monkeypatch.setattr(module, "_client", lambda: None)
    with pytest.raises(ImportError, match="'prometheus' extra"):
        module.collector(StreamSite(Resource()))
    assert MetricsResource()._client is None


# The page, end to end.


@pytest.mark.parametrize(
    "use_client",
    [
        pytest.param(True, marks=needs_client, id="prometheus_client"),
        pytest.param(False, id="built-in"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_scrape_reports_what_the_site_streamed(
    server: Any, client: Any, use_client: bool
) -> None:
    """After a completed, a failed, a refused and a client-gone stream, a scrape shows each
    outcome, the bytes of all of them and one time to first byte per stream that sent one;
    the metrics page itself is not a stream."""
    app = App(server, MetricsResource(use_client=use_client), max_streams=1)
    assert (await within((await client.get(server.url("/ok"))).content())) == b"x" * 100
    response = await client.get(server.url("/fail"))
    await within(app.handles[-1].when_done())
    del response
    raw = await connect(server.port, get("/gate"))
    await raw.received_at_least(1)
    refused = await within(client.get(server.url("/ok")))
    assert refused.code == 503
    await within(refused.content())
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await within(app.handles[2].when_done())

    response, text = await scrape(client, server)
    assert response.code == 200
    expected = CONTENT_TYPE if not use_client else None
    content_type = response.headers.getRawHeaders("content-type")[0]
    assert content_type.startswith("text/plain; version=")
    if expected:
        assert content_type == expected
    assert response.headers.getRawHeaders("cache-control") == ["no-store"]
    samples = parse(text)
    assert value(samples, "streams_active") == 0
    assert value(samples, "streams_started_total") == 3
    assert value(samples, "streams_started_by_protocol_total", protocol="HTTP/1.1") == 3
    assert value(samples, "streams_ended_total", outcome="completed") == 1
    assert value(samples, "streams_ended_total", outcome="source-failed") == 1
    assert value(samples, "streams_ended_total", outcome="client-gone") == 1
    assert value(samples, "streams_ended_total", outcome="rejected") == 1
    assert value(samples, "streams_ended_total", outcome="stalled") == 0
    assert value(samples, "bytes_sent_total") == 100 + 10 + len(b"start;")
    assert value(samples, "time_to_first_byte_seconds_count") == 3
    assert value(samples, "time_to_first_byte_seconds_bucket", le="+Inf") == 3


@pytest_twisted.ensureDeferred
async def test_running_streams_count_live(server: Any, client: Any) -> None:
    """A stream that is still running counts in the active gauge, and its bytes and pauses
    count before it ends, so a scrape during a long download is current."""
    app = App(server, MetricsResource())
    raw = await connect(server.port, get("/endless"))
    raw.stop_reading()
    handle = await _first(app)
    await until(lambda: handle.pause_count > 0, what="the stream to be paused")
    _, text = await scrape(client, server)
    samples = parse(text)
    assert value(samples, "streams_active") == 1
    assert 0 < value(samples, "bytes_sent_total") <= handle.bytes_sent
    assert value(samples, "pauses_total") >= 1
    assert value(samples, "paused_seconds_total") >= 0
    assert value(samples, "time_to_first_byte_seconds_count") == 0, "recorded at the end"
    raw.transport.abortConnection()  # type: ignore[union-attr]
    await within(handle.when_done())
    _, text = await scrape(client, server)
    samples = parse(text)
    assert value(samples, "streams_active") == 0
    assert value(samples, "bytes_sent_total") == handle.bytes_sent
    assert value(samples, "time_to_first_byte_seconds_count") == 1


async def _first(app: App) -> Any:
    await until(lambda: bool(app.handles), what="a stream to start")
    return app.handles[0]


@needs_client
@pytest_twisted.ensureDeferred
async def test_openmetrics_when_the_scraper_asks_for_it(server: Any, client: Any) -> None:
    """With prometheus_client, a scraper that accepts OpenMetrics gets OpenMetrics (which ends
    with ``# EOF``); without the Accept header it gets the classic text format."""
    App(server, MetricsResource())
    response, text = await scrape(
        client, server, Accept="application/openmetrics-text; version=1.0.0"
    )
    assert response.headers.getRawHeaders("content-type")[0].startswith(
        "application/openmetrics-text"
    )
    assert text.endswith("# EOF\n")
    assert "twisted_stream_streams_ended_total" in text
    _, plain = await scrape(client, server)
    assert "# EOF" not in plain


@pytest.mark.filterwarnings("ignore:twisted.web.resource._UnsafeErrorPage:DeprecationWarning")
@pytest_twisted.ensureDeferred
async def test_head_and_other_methods(server: Any, client: Any) -> None:
    """HEAD answers the headers with the length of the page and no body; POST is 405."""
    App(server, MetricsResource(use_client=False))
    response = await within(client.head(server.url("/metrics")))
    assert response.code == 200
    assert int(response.headers.getRawHeaders("content-length")[0]) > 100
    assert await within(response.content()) == b""
    response = await within(client.post(server.url("/metrics"), data=b""))
    assert response.code == 405
    await within(response.content())


@pytest_twisted.ensureDeferred
async def test_an_explicit_site_and_a_plain_site(server: Any, client: Any) -> None:
    """``MetricsResource(site)`` reports on the site it was given, whichever site serves it;
    with no site under a plain ``twisted.web.server.Site`` it explains it has no metrics."""
    reported = StreamSite(Resource())
    reported.metrics.bytes_sent = 4242
    root = Resource()
    root.putChild(b"given", MetricsResource(reported, use_client=False))
    root.putChild(b"metrics", MetricsResource())
    from twisted.internet import reactor

    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    server.ports.append(port)
    response = await within(client.get(server.url("/given")))
    assert value(parse(await within(response.text())), "bytes_sent_total") == 4242
    response = await within(client.get(server.url("/metrics")))
    assert response.code == 500
    assert "not a twisted_stream StreamSite" in await within(response.text())


def test_upload_families() -> None:
    """Uploads appear on the page: running ones (``uploads_active``), started, ended by
    outcome (every outcome listed, zero or not) and the bytes they received."""
    from twisted_stream import StreamingResource, request_body

    from ..http.conn import Conn, head

    class Upload(StreamingResource):
        isLeaf = True
        stream_body = True

        async def render_PUT(self, request: Any) -> bytes:
            return await request_body(request).read()

    conn = Conn(Upload(), max_body_size=10)
    put = head("/", method="PUT", headers="Host: a\r\nContent-Length: 6\r\n") + b"abcdef"
    conn.send(put)
    samples = parse(render_text(families(conn.site)).decode())
    assert value(samples, "uploads_active") == 0
    assert value(samples, "uploads_started_total") == 1
    assert value(samples, "bytes_received_total") == 6
    for outcome, count in [
        ("completed", 1),
        ("too-large", 0),
        ("incomplete", 0),
        ("discarded", 0),
    ]:
        assert value(samples, "uploads_ended_total", outcome=outcome) == count
