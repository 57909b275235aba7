"""Streaming a ``twisted.web.template`` Element with flow control.

Twisted's ``renderElement`` calls ``flatten()``, which writes synchronously between
Deferreds and never waits for the transport: the whole page is queued in memory for a slow
client and rendering goes on after the client left. Here the same flattening steps
(Twisted's own ``_flattenElement``, so output and escaping are identical to
``flattenString``) are driven by a generator that the engine pulls: nothing is rendered
while the transport is paused, and on disconnect the pending renderer Deferred is
cancelled and the tree's generators are closed, so no renderer runs after the client left.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from traceback import extract_tb
from types import GeneratorType
from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web._flatten import Flattenable, _flattenElement, escapeForContent
from twisted.web.error import FlattenerError
from twisted.web.iweb import IRenderable, IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request
from zope.interface import implementer

from .._http._methods import MethodsResource
from .._settings import settings_for
from .._sources._stream import stream_source
from .._sources._sync import IteratorSource
from .._types import Reactor, StreamRequest

HTML_DOCTYPE = b"<!DOCTYPE html>"
HTML_CONTENT_TYPE = b"text/html; charset=utf-8"

_Step = Generator[Any, None, None]


def flatten_chunks(
    request: IRequest | None, root: Flattenable
) -> Iterator[bytes | Deferred[None]]:
    """Flatten ``root`` lazily: a generator of ``bytes`` and Deferreds to wait on.

    Each step of the walk runs only when the consumer asks for the next item, so a consumer
    that stops asking stops the rendering. A yielded Deferred fires with ``None`` once the
    renderer result it waits for is there (cancelling it cancels that renderer's Deferred);
    closing the generator closes every generator of the tree being walked, renderer
    generators included. Errors are raised as Twisted's ``FlattenerError``.
    """
    out: list[bytes] = []
    stack: list[_Step] = [_flattenElement(request, root, out.append, [], None, escapeForContent)]
    try:
        while stack:
            element: _Step | Deferred[Any] | None
            try:
                element = next(stack[-1])
            except StopIteration:
                stack.pop()
                element = None
            except Exception as e:
                roots = _roots(stack)
                stack.pop()
                raise FlattenerError(e, roots, extract_tb(e.__traceback__)) from e
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
                out.clear()
            if element is None:
                continue
            if isinstance(element, Deferred):
                found: list[_Step] = []
                yield _await(element, found, stack)
                element = found[0]
            stack.append(element)
    finally:
        _close(stack)


def _await(d: Deferred[Any], found: list[_Step], stack: list[_Step]) -> Deferred[None]:
    """``d`` (the flattener's Deferred of the next step), storing its result in ``found``."""

    def store(step: _Step) -> None:
        found.append(step)

    def wrap(reason: Failure) -> Failure:
        if reason.check(FlattenerError, CancelledError):
            return reason
        error = reason.value
        assert isinstance(error, BaseException)
        tb = reason.getTracebackObject()
        frames = extract_tb(tb) if tb is not None else []
        return Failure(FlattenerError(error, _roots(stack), frames))

    return d.addCallbacks(store, wrap)


def _roots(stack: list[_Step]) -> list[object]:
    """What each generator of the walk is flattening, for ``FlattenerError``."""
    roots = []
    for step in stack:
        frame = getattr(step, "gi_frame", None)
        if frame is not None:
            roots.append(frame.f_locals.get("root"))
    return roots


def _close(stack: list[_Step]) -> None:
    """Close the walk from the innermost step out, and the renderer generators it iterates
    (they are closed explicitly rather than left to the garbage collector).

    A renderer's Deferred the walk was waiting on has been cancelled by then (the engine
    cancels what it waits for): Twisted's flattener waits on a copy of it (``_fork``) and
    leaves the ``CancelledError`` at the end of the original's chain, which would be logged
    as an unhandled error when it is collected. That cancellation is ours: it is consumed.
    """
    while stack:
        step = stack.pop()
        frame = getattr(step, "gi_frame", None)
        root = frame.f_locals.get("root") if frame is not None else None
        step.close()
        if isinstance(root, GeneratorType):
            root.close()
        elif isinstance(root, Deferred):
            root.addErrback(_consume_cancellation)


def _consume_cancellation(reason: Failure) -> None:
    """End a Deferred's chain that failed with the ``CancelledError`` of our own cancel."""
    reason.trap(CancelledError)


def stream_element(
    request: StreamRequest,
    element: IRenderable,
    *,
    doctype: bytes | None = HTML_DOCTYPE,
    reactor: Reactor | None = None,
    **settings: Any,
) -> int:
    """Render ``element`` into ``request`` as a stream; returns ``NOT_DONE_YET``.

    The output is what ``twisted.web.template.renderElement`` would send (``doctype`` and a
    newline first, ``None`` for none), but produced only as fast as the client reads, and
    rendering stops when the client leaves (the renderer Deferred being waited on is
    cancelled, renderer generators are closed). ``Content-Type`` defaults to
    ``text/html; charset=utf-8``. A rendering error fails the stream like any source
    failure: 500 before anything was sent, a truncated body after. The keywords override
    the :class:`~twisted_stream.StreamSettings` for this response (``compress=True``...).
    """
    stream_settings = settings_for(request).replace(**settings)
    if not request.responseHeaders.hasHeader(b"content-type"):
        request.setHeader(b"content-type", HTML_CONTENT_TYPE)
    source = IteratorSource(_page(request, element, doctype), _no_conversion)
    return stream_source(request, source, settings=stream_settings, reactor=reactor)


def _page(
    request: StreamRequest, element: IRenderable, doctype: bytes | None
) -> Iterator[bytes | Deferred[None]]:
    if doctype is not None:
        yield doctype + b"\n"
    # Twisted's own Request provides IRequest; renderers receive the request they are given.
    yield from flatten_chunks(cast(IRequest, request), element)


def _no_conversion(item: object) -> bytes:
    """Converter of the walk's items: everything is bytes already (Deferreds give None)."""
    assert isinstance(item, bytes), item
    return item


@implementer(IResource)
class ElementResource(MethodsResource):
    """A leaf resource answering GET (and HEAD) by streaming ``factory(request)``.

    ``factory`` builds the Element (any ``IRenderable``) for each request; ``doctype`` and
    the settings keywords are passed to :func:`stream_element`.
    """

    isLeaf = True

    def __init__(
        self,
        factory: Callable[[Request], IRenderable],
        *,
        doctype: bytes | None = HTML_DOCTYPE,
        **settings: Any,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.factory = factory
        self.doctype = doctype
        self.settings = settings

    def render_GET(self, request: Request) -> int:
        return stream_element(
            request, self.factory(request), doctype=self.doctype, **self.settings
        )

    def render_HEAD(self, request: Request) -> int:
        return self.render_GET(request)
