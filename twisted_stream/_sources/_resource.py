"""A Resource whose render methods may return a source to stream, answer later (``async
def``, a Deferred) and take their request bodies as streams."""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutine

from twisted.internet.defer import Deferred
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from .._http._methods import MethodsResource, render_method
from .._http._request_body import IStreamBodyResource
from ._later import answer_later
from ._stream import default_reactor, stream


@implementer(IResource, IStreamBodyResource)
class StreamingResource(MethodsResource):
    """Like ``Resource``, but ``render_<METHOD>`` may return any source :func:`stream` takes,
    or answer later.

    Returned ``bytes`` and ``NOT_DONE_YET`` behave as in Twisted; anything else (a generator,
    an async generator, a file, a ``str``, an ``IBodyProducer``, a callable taking an
    ``IConsumer``) is streamed. ``render_<METHOD>`` may also be an ``async def``, or return
    a Deferred: what it gives when it is done (``bytes``, ``None`` for an empty body, a
    source, or ``NOT_DONE_YET`` when it answered the request itself) is sent then; a
    request-body error it lets through is answered with its status (``413``, ``400``,
    ``415``, ``408``) if nothing was sent; if the client leaves first, it is cancelled.
    Class attributes give the keywords of the :func:`stream` call. HEAD is answered only
    where GET is (with GET's headers and no body), OPTIONS with ``Allow``, and any other
    method without a ``render_<METHOD>`` with ``405`` and an ``Allow`` listing the methods
    that work.
    """

    content_type: str | None = None
    """``Content-Type`` of streamed responses (the site's default when None)."""
    threaded: bool = False
    """Run a returned blocking sync iterable in the thread pool."""
    stream_body: bool = False
    """Take request bodies as streams (:func:`~twisted_stream.request_body`): render as soon
    as the request head is complete, before the body is read. When False, Twisted reads the
    whole body first (``request.content``, ``request.args``)."""
    max_body_size: int | None = None
    """The most body bytes a request to this resource may send (0: no limit); None: the
    site's ``max_body_size``. ``request_body(request, max_size=...)`` overrides it."""

    def render(self, request: Request) -> bytes | int:
        result = render_method(self, request)
        if result is NOT_DONE_YET or isinstance(result, bytes):
            return result
        if isinstance(result, Deferred) or iscoroutine(result):
            return answer_later(request, result, self._send(request), default_reactor(None))
        return stream(request, result, content_type=self.content_type, threaded=self.threaded)

    def _send(self, request: Request) -> Callable[[object], object]:
        def send(source: object) -> object:
            return stream(request, source, content_type=self.content_type, threaded=self.threaded)

        return send
