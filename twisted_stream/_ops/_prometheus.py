"""Prometheus exposition of a :class:`~twisted_stream.StreamSite`'s stream metrics.

:class:`MetricsResource` answers a scrape with the site's :class:`~._metrics.StreamMetrics`
(plus the live figures of the running streams) in the Prometheus text format.

``prometheus_client`` is optional (the ``prometheus`` extra). When it is importable the page is
produced by a custom collector (:func:`collector`) registered in a private registry of the
resource (never the process-wide ``REGISTRY``: two sites, or two mounts, would collide there),
rendered by the library's encoder chosen from the scraper's ``Accept`` header, so a Prometheus
server asking for OpenMetrics gets OpenMetrics. Without the library the same families are
written by :func:`render_text` in text format 0.0.4, which every Prometheus version reads: the
page works either way, and for a plain scrape both ways produce the same bytes (tested). To add
the stream metrics to an application's own registry instead, register
``collector(site)`` there.

The families (every name starts with ``twisted_stream_``):

- ``streams_active`` (gauge): streams running now;
- ``streams_started_total``: streams started (refused ones are not started);
- ``streams_active_by_protocol{protocol=...}`` (gauge) and
  ``streams_started_by_protocol_total{protocol=...}``: the same per HTTP version
  (``HTTP/1.1``, ``HTTP/2``, ``HTTP/1.0`` once seen);
- ``streams_ended_total{outcome=...}``: streams that ended, by outcome: ``completed``,
  ``client-gone`` (ended by the client), ``source-failed``, ``stalled``, ``aborted``, and
  ``rejected`` (refused with 503 for a concurrency limit, never started);
- ``bytes_sent_total``: body bytes written, including those of running streams;
- ``pauses_total`` and ``paused_seconds_total``: how often and how long transports held
  streams paused (slow clients), including running streams;
- ``time_to_first_byte_seconds`` (histogram): from the start of a stream to its first body
  byte, recorded when the stream ends;
- ``uploads_active`` (gauge), ``uploads_started_total`` and
  ``uploads_ended_total{outcome=...}``: request bodies streamed to resources, by how they
  ended: ``completed``, ``too-large`` (413), ``incomplete`` (client gone, malformed,
  timed out), ``discarded`` (the response ended first);
- ``bytes_received_total``: body bytes those uploads received, including running ones.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface import implementer

from .._engine._outcome import Outcome
from .._http._methods import MethodsResource
from ._cluster import site_figures
from ._metrics import TTFB_BUCKETS, UPLOAD_OUTCOMES
from ._site import StreamSite

PREFIX = "twisted_stream_"

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of the text format 0.0.4 that :func:`render_text` writes."""


@dataclass(frozen=True)
class Sample:
    """One line of a family: the family name plus ``suffix``, its labels and value."""

    suffix: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True)
class Family:
    """One metric family, independent of how it is rendered."""

    name: str
    """Full name; counters include ``_total``."""
    kind: str
    """``counter``, ``gauge`` or ``histogram``."""
    help: str
    samples: tuple[Sample, ...]


def families(site: StreamSite) -> list[Family]:
    """The site's metrics as families, read now."""
    metrics, snap = site_figures(site)  # of every worker, under --workers N
    outcomes = tuple(
        Sample("", (("outcome", outcome.value),), float(metrics.ended[outcome]))
        for outcome in Outcome
    )
    buckets: list[Sample] = []
    cumulative = 0
    for bound, count in zip(TTFB_BUCKETS, metrics.ttfb_buckets, strict=True):
        cumulative += count
        buckets.append(Sample("_bucket", (("le", _number(bound)),), float(cumulative)))

    protocols = metrics.by_protocol(site.active_streams)
    active_by_protocol = tuple(
        Sample("", (("protocol", p),), float(active)) for p, (active, _) in protocols.items()
    )
    started_by_protocol = tuple(
        Sample("", (("protocol", p),), float(started)) for p, (_, started) in protocols.items()
    )

    upload_outcomes = tuple(
        Sample("", (("outcome", outcome),), float(metrics.uploads_ended[outcome]))
        for outcome in UPLOAD_OUTCOMES
    )

    def single(name: str, kind: str, help: str, key: str) -> Family:
        return Family(PREFIX + name, kind, help, (Sample("", (), float(snap[key])),))

    return [
        single("streams_active", "gauge", "Streams running now.", "streams_active"),
        single(
            "streams_started_total",
            "counter",
            "Streams started (streams refused for a limit are not started).",
            "streams_started",
        ),
        Family(
            PREFIX + "streams_active_by_protocol",
            "gauge",
            "Streams running now, by HTTP version.",
            active_by_protocol,
        ),
        Family(
            PREFIX + "streams_started_by_protocol_total",
            "counter",
            "Streams started, by HTTP version.",
            started_by_protocol,
        ),
        Family(
            PREFIX + "streams_ended_total",
            "counter",
            "Streams that ended, by outcome (rejected: refused with 503 for a limit).",
            outcomes,
        ),
        single(
            "bytes_sent_total",
            "counter",
            "Body bytes written to clients, including running streams.",
            "bytes_sent",
        ),
        single(
            "pauses_total",
            "counter",
            "Times a transport paused a stream because its client was not reading.",
            "pauses",
        ),
        single(
            "paused_seconds_total",
            "counter",
            "Seconds streams spent paused by their transport, including running streams.",
            "paused_seconds",
        ),
        Family(
            PREFIX + "time_to_first_byte_seconds",
            "histogram",
            "Seconds from the start of a stream to its first body byte (recorded at its end).",
            (
                *buckets,
                Sample("_count", (), float(metrics.ttfb_count)),
                Sample("_sum", (), float(metrics.ttfb_sum)),
            ),
        ),
        single(
            "uploads_active",
            "gauge",
            "Request bodies being streamed to resources now.",
            "uploads_active",
        ),
        single(
            "uploads_started_total",
            "counter",
            "Request bodies streamed to resources (uploads) started.",
            "uploads_started",
        ),
        Family(
            PREFIX + "uploads_ended_total",
            "counter",
            "Uploads that ended, by outcome (discarded: the response ended first).",
            upload_outcomes,
        ),
        single(
            "bytes_received_total",
            "counter",
            "Body bytes received by uploads, including running ones.",
            "bytes_received",
        ),
    ]


# The text format, written by hand.


def _number(value: float) -> str:
    """A float as Prometheus writes it (Go's formatting: ``+Inf``, ``1.0``, ``1e+06``)."""
    value = float(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_text(found: Sequence[Family]) -> bytes:
    """``found`` in the Prometheus text format 0.0.4."""
    lines: list[str] = []
    for family in found:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        base = family.name.removesuffix("_total") if family.kind == "counter" else family.name
        for sample in family.samples:
            name = family.name if family.kind == "counter" else base + sample.suffix
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(sample.labels))
            lines.append(f"{name}{{{labels}}} " if labels else f"{name} ")
            lines[-1] += _number(sample.value)
    return ("\n".join(lines) + "\n").encode("utf-8")


# prometheus_client, when it is there.


def _client() -> Any:
    """The ``prometheus_client`` module, or None when the extra is not installed."""
    try:
        for name in ("prometheus_client.core", "prometheus_client.exposition"):
            importlib.import_module(name)
    except ImportError:
        return None
    return importlib.import_module("prometheus_client")


def collector(site: StreamSite) -> Any:
    """A ``prometheus_client`` collector of ``site``'s metrics, to register in a registry.

    Raises ``ImportError`` when ``prometheus_client`` is not installed.
    """
    client = _client()
    if client is None:
        raise ImportError("prometheus_client is not installed (the 'prometheus' extra)")
    core = client.core

    class StreamCollector:
        """Reads the site's metrics at every scrape."""

        def collect(self) -> Iterator[Any]:
            for family in families(site):
                if family.kind == "histogram":
                    buckets = [
                        (dict(s.labels)["le"], s.value)
                        for s in family.samples
                        if s.suffix == "_bucket"
                    ]
                    total = next(s.value for s in family.samples if s.suffix == "_sum")
                    yield core.HistogramMetricFamily(
                        family.name, family.help, buckets=buckets, sum_value=total
                    )
                    continue
                label_names = [k for k, _ in family.samples[0].labels]
                kind = (
                    core.CounterMetricFamily
                    if family.kind == "counter"
                    else core.GaugeMetricFamily
                )
                made = kind(family.name, family.help, labels=label_names)
                for sample in family.samples:
                    made.add_metric([v for _, v in sample.labels], sample.value)
                yield made

        def describe(self) -> list[Any]:
            return []  # families are produced at scrape time; no duplicate-name checks

    return StreamCollector()


@implementer(IResource)
class MetricsResource(MethodsResource):
    """The Prometheus scrape page of a site's stream metrics (GET and HEAD).

    ``site`` is the :class:`~twisted_stream.StreamSite` to report on; None reports on the site
    serving each request (so the resource can be built before the site). Uses
    ``prometheus_client`` when it is installed, unless ``use_client=False``; otherwise writes
    the text format itself. A request served by a plain ``Site`` answers 500: it has no
    stream metrics.
    """

    isLeaf = True

    def __init__(self, site: StreamSite | None = None, *, use_client: bool = True) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.site = site
        self._client = _client() if use_client else None
        self._registries: dict[int, tuple[StreamSite, Any]] = {}

    def render_GET(self, request: Request) -> bytes:
        site = self.site if self.site is not None else getattr(request, "site", None)
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        if not isinstance(site, StreamSite):
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"No stream metrics: this site is not a twisted_stream StreamSite.\n"
        if self._client is None:
            body, content_type = render_text(families(site)), CONTENT_TYPE
        else:
            accept = request.getHeader(b"accept")
            encoder, content_type = self._client.exposition.choose_encoder(
                accept.decode("latin-1") if accept else ""
            )
            body = encoder(self._registry(site))
        request.setHeader(b"content-type", content_type.encode("latin-1"))
        request.setHeader(b"content-length", b"%d" % len(body))
        return bytes(body)

    def _registry(self, site: StreamSite) -> Any:
        found = self._registries.get(id(site))
        if found is not None and found[0] is site:
            return found[1]
        client = self._client
        assert client is not None
        registry = client.core.CollectorRegistry(auto_describe=False)
        registry.register(collector(site))
        self._registries[id(site)] = (site, registry)
        return registry
