"""The application ``twistd streamweb --workers N`` serves for the worker workloads (feature
``workers``), through the public API only: ``GET /ping``, ``GET /gen?n=N&size=S`` (as in
``_common``) and ``GET /gzip?n=N&size=S``, the same body gzip-compressed with
``compress=True`` (the client sends ``Accept-Encoding: gzip``). Run by the suite as
``--app benchmarks.servers.streamweb_app:resource``."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource

from benchmarks.servers._common import CONTENT_TYPE, chunks, gen_params
from benchmarks.servers._twisted import Leaf, ping, query
from twisted_stream import stream

TEXT = "text/plain; charset=utf-8"  # compress=True compresses text types only


def gen(request: Any) -> Any:
    n, size = gen_params(query(request))
    return stream(request, chunks(n, size), content_type=CONTENT_TYPE)


def gzip(request: Any) -> Any:
    n, size = gen_params(query(request))
    return stream(request, chunks(n, size), content_type=TEXT, compress=True)


resource = Resource()
resource.putChild(b"ping", Leaf(ping))
resource.putChild(b"gen", Leaf(gen))
resource.putChild(b"gzip", Leaf(gzip))
