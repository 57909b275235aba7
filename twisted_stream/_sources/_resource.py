"""A Resource whose render methods may return a source to stream."""

from __future__ import annotations

from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from .._http._methods import MethodsResource, render_method
from ._stream import stream


@implementer(IResource)
class StreamingResource(MethodsResource):
    """Like ``Resource``, but ``render_<METHOD>`` may return any source :func:`stream` takes.

    Returned ``bytes`` and ``NOT_DONE_YET`` behave as in Twisted; anything else (a generator,
    an async generator, a file, a ``str``, an ``IBodyProducer``, a callable taking an
    ``IConsumer``) is streamed. Class attributes give the keywords of that :func:`stream`
    call. HEAD is answered only where GET is (with GET's headers and no body), OPTIONS with
    ``Allow``, and any other method without a ``render_<METHOD>`` with ``405`` and an
    ``Allow`` listing the methods that work.
    """

    content_type: str | None = None
    """``Content-Type`` of streamed responses (the site's default when None)."""
    threaded: bool = False
    """Run a returned blocking sync iterable in the thread pool."""

    def render(self, request: Request) -> bytes | int:
        result = render_method(self, request)
        if result is NOT_DONE_YET or isinstance(result, bytes):
            return result
        return stream(request, result, content_type=self.content_type, threaded=self.threaded)
