"""Newline-delimited JSON: any source of JSON-serialisable objects, one object per line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface import implementer

from .._http._methods import MethodsResource
from .._settings import settings_for
from .._sources._adapt import adapt_for
from .._sources._stream import default_reactor, stream_source
from .._types import Reactor, StreamRequest

CONTENT_TYPE = b"application/x-ndjson"

Dumps = Callable[[object], str]


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def ndjson_converter(dumps: Dumps | None = None) -> Callable[[object], bytes]:
    """A function turning one object into one NDJSON line (UTF-8, ``\\n``-terminated).

    ``dumps`` serialises an object to a JSON text (default: compact ``json.dumps``, NaN
    and infinities refused). A text that spans lines (an indenting ``dumps``) is refused.
    ``bytes`` items are written as they are (already-encoded lines).
    """
    encode = dumps or _compact

    def convert(item: object) -> bytes:
        if isinstance(item, (bytes, bytearray, memoryview)):
            return bytes(item)
        text = encode(item)
        if "\n" in text or "\r" in text:
            raise ValueError("an NDJSON item must serialise to a single line")
        return (text + "\n").encode("utf-8")

    return convert


def stream_ndjson(
    request: StreamRequest,
    source: object,
    *,
    dumps: Dumps | None = None,
    threaded: bool = False,
    reactor: Reactor | None = None,
    **settings: Any,
) -> int:
    """Stream the objects of ``source`` as ``application/x-ndjson``; returns ``NOT_DONE_YET``.

    ``source`` is any source :func:`twisted_stream.stream` takes (sync or async iterable,
    generator yielding Deferreds, ``threaded=True`` blocking generator); each object is one
    line of compact JSON (``dumps`` to serialise differently, e.g. with a ``default=``).
    An object that cannot be serialised fails the stream like any source error. Other
    keywords override the site's :class:`~twisted_stream.StreamSettings`.
    """
    merged = settings_for(request).replace(**settings)
    reactor = default_reactor(reactor, request)
    request.setHeader(b"content-type", CONTENT_TYPE)
    adapted = adapt_for(
        request,
        source,
        settings=merged,
        reactor=reactor,
        threaded=threaded,
        convert=ndjson_converter(dumps),
    )
    return stream_source(request, adapted, settings=merged, reactor=reactor)


@implementer(IResource)
class NDJSONResource(MethodsResource):
    """A resource answering ``GET`` (and ``HEAD``) with NDJSON.

    Give it ``objects``, a callable ``request -> source``, or subclass it and override
    :meth:`objects`. The other keywords are those of :func:`stream_ndjson`.
    """

    isLeaf = True

    def __init__(
        self,
        objects: Callable[[Request], object] | None = None,
        *,
        dumps: Dumps | None = None,
        threaded: bool = False,
        **settings: Any,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._objects = objects
        self.dumps = dumps
        self.threaded = threaded
        self.settings = settings

    def objects(self, request: Request) -> object:
        """The source of objects for ``request``."""
        if self._objects is None:
            raise NotImplementedError("give NDJSONResource objects= or override objects()")
        return self._objects(request)

    def render_GET(self, request: Request) -> int:
        return stream_ndjson(
            request,
            self.objects(request),
            dumps=self.dumps,
            threaded=self.threaded,
            **self.settings,
        )
