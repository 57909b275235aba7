"""Which resources take their request bodies as streams (:class:`IStreamBodyResource`), and
:func:`request_body`, which gives the :class:`~._body.RequestBody` of a request: the one its
connection streams (attached when the head was complete), or one over the body Twisted
buffered."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource
from zope.interface import Attribute

from .._errors import RequestBodyError
from .._settings import settings_for
from .._types import StreamRequest
from ._body import RequestBody

_ATTRIBUTE = "_twisted_stream_body"
"""Where a request keeps its streamed :class:`RequestBody` (as the engine keeps its stream
handle: an attribute, so the body lives exactly as long as its request)."""


class IStreamBodyResource(IResource):
    """A resource whose requests' bodies are streamed to it: it is rendered as soon as the
    request head is complete, and reads the body with :func:`request_body` (or
    :func:`multipart_parts`, :func:`read_form`) while it arrives, instead of Twisted reading
    all of it (into ``request.content`` and ``request.args``) first.

    A plain ``Resource`` opts in by declaring it, ``@implementer(IStreamBodyResource)``;
    :class:`~twisted_stream.StreamingResource` provides it and opts in with its
    ``stream_body`` class attribute. Only the leaf found by traversal decides.
    """

    stream_body = Attribute(
        "True (or absent) to stream request bodies; StreamingResource defaults it to False."
    )
    max_body_size = Attribute(
        "The most body bytes a request may send (0: no limit); absent or None: the site's "
        "max_body_size. request_body(request, max_size=...) overrides it per request."
    )


def streams_body(resource: object) -> bool:
    """Whether ``resource`` (a traversal's leaf) takes its request bodies as streams."""
    return IStreamBodyResource.providedBy(resource) and bool(
        getattr(resource, "stream_body", True)
    )


def resource_body_limit(resource: object) -> int | None:
    """The ``max_body_size`` ``resource`` sets for its requests' bodies, None if none."""
    found = getattr(resource, "max_body_size", None)
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def attach(request: object, body: RequestBody) -> None:
    """Make ``body`` the streamed body of ``request``."""
    setattr(request, _ATTRIBUTE, body)


def attached(request: object) -> RequestBody | None:
    """The streamed body of ``request``, None if its body was not streamed."""
    found = getattr(request, _ATTRIBUTE, None)
    return found if isinstance(found, RequestBody) else None


def request_body(request: StreamRequest, *, max_size: int | None = None) -> RequestBody:
    """The body of ``request`` as a :class:`RequestBody`.

    For a resource that streams its bodies (:class:`IStreamBodyResource`, a
    ``StreamingResource`` with ``stream_body = True``) the body arrives as it is read; for
    any other request it is the body Twisted already read (``request.content``), read the
    same way. ``max_size`` (bytes; 0: none) replaces the limit in force, which is the
    resource's ``max_body_size`` or else the site's ``max_body_size``; a declared
    ``Content-Length`` over it is refused with ``413`` at once, before any of the body is
    read (and no ``100 Continue`` is sent). Calling it again returns the same body. Raises
    ``ValueError`` for a negative ``max_size``.
    """
    body = attached(request)
    if body is None:
        body = _buffered_body(request)
        attach(request, body)
    body.limit(max_size)
    return body


class _ContentSource:
    """A :class:`BodySource` over the body Twisted buffered in ``request.content``."""

    def __init__(self, request: StreamRequest, chunk: int) -> None:
        self.request = request
        self.body: RequestBody | None = None
        self._chunk = chunk
        self._content: Any = getattr(request, "content", None)

    def want(self, more: bool) -> None:
        body = self.body
        if not more or body is None:
            return
        content = self._content
        data = content.read(self._chunk) if content is not None else b""
        if data:
            body.feed(data)
        else:
            body.finish()

    def consumed(self, flow: int) -> None:
        pass

    def send_continue(self) -> None:
        pass  # Twisted answered the expectation when it read the body

    def refuse(self, error: RequestBodyError) -> None:
        from ._twisted import answer_body_error

        answer_body_error(self.request, error)


def _buffered_body(request: StreamRequest) -> RequestBody:
    """A :class:`RequestBody` reading what Twisted buffered (``request.content``)."""
    settings = settings_for(request)
    source = _ContentSource(request, settings.buffer_size)
    content = source._content
    length = 0
    if content is not None:
        content.seek(0, 2)
        length = content.tell()
        content.seek(0)
    body = RequestBody(source, length=length, buffer_size=settings.buffer_size, request=request)
    source.body = body
    return body
