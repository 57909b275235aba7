"""Streaming Jinja2 templates (the optional ``jinja2`` extra).

The template is rendered with Jinja's own generator (``Template.generate``), grouped like
``TemplateStream.enable_buffering``, and streamed under the engine's flow control: nothing
is rendered while the client does not read, and when the stream ends, however it ends, the
template's generator is closed and so are the generators passed in the context (which the
template consumes as it renders). Jinja2 is imported only when a template is streamed.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator, Mapping
from types import AsyncGeneratorType, GeneratorType, ModuleType
from typing import Any

from .._sources._stream import stream
from .._types import Reactor, StreamRequest

HTML_CONTENT_TYPE = "text/html; charset=utf-8"


def _jinja2() -> ModuleType:
    try:
        return importlib.import_module("jinja2")
    except ImportError:
        raise ImportError(
            "streaming Jinja2 templates needs Jinja2: pip install 'twisted_stream[jinja2]'"
        ) from None


def stream_template(
    request: StreamRequest,
    template: Any,
    context: Mapping[str, Any] | None = None,
    *,
    environment: Any = None,
    buffer: int = 5,
    threaded: bool = False,
    content_type: str | None = None,
    reactor: Reactor | None = None,
    **settings: Any,
) -> int:
    """Render a Jinja2 template into ``request`` as a stream; returns ``NOT_DONE_YET``.

    ``template`` is a ``jinja2.Template``, or a template name looked up in ``environment``.
    ``context`` values may be generators: the template consumes them as it renders, and
    they are closed with the stream. ``buffer`` groups that many non-empty pieces of output
    per chunk, as Jinja's ``enable_buffering(buffer)`` (0 or 1: every piece on its own;
    the engine still coalesces what is ready). Rendering is CPU-only and runs on the reactor
    thread; ``threaded=True`` runs it in the stream thread pool instead, for context values
    that block (a generator reading a database...). A template of an ``enable_async``
    environment is rendered with ``generate_async``: its context may hold async generators
    and functions returning Deferreds or coroutines. ``content_type`` defaults to the
    response's, else ``text/html; charset=utf-8``; the output is encoded with its charset.
    The other keywords override the :class:`~twisted_stream.StreamSettings` (``compress``...).
    """
    jinja2 = _jinja2()
    if isinstance(template, str):
        if environment is None:
            raise TypeError("a template name needs environment= (a jinja2.Environment)")
        template = environment.get_template(template)
    elif not isinstance(template, jinja2.Template):
        raise TypeError(
            f"expected a jinja2.Template or a template name, not {type(template).__name__}"
        )
    if buffer < 0:
        raise ValueError(f"buffer must not be negative, not {buffer}")
    values = dict(context or {})
    if content_type is None and not request.responseHeaders.hasHeader(b"content-type"):
        content_type = HTML_CONTENT_TYPE
    source: object
    if template.environment.is_async:
        if threaded:
            raise TypeError("threaded=True is for sync templates, not enable_async ones")
        source = _grouped_async(template.generate_async(**values), buffer, values)
    else:
        source = _grouped(template.generate(**values), buffer, values)
    return stream(
        request,
        source,
        content_type=content_type,
        threaded=threaded,
        reactor=reactor,
        **settings,
    )


def _grouped(pieces: Iterator[str], size: int, context: dict[str, Any]) -> Iterator[str]:
    """``pieces`` joined ``size`` non-empty ones at a time; closes them and the context's
    generators when done or closed."""
    try:
        if size <= 1:
            yield from pieces
            return
        group: list[str] = []
        count = 0
        for piece in pieces:
            group.append(piece)
            if piece:
                count += 1
                if count >= size:
                    yield "".join(group)
                    group.clear()
                    count = 0
        if count:
            yield "".join(group)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
        for value in context.values():
            if isinstance(value, GeneratorType):
                value.close()


async def _grouped_async(
    pieces: AsyncIterator[str], size: int, context: dict[str, Any]
) -> AsyncIterator[str]:
    """The async counterpart of :func:`_grouped`."""
    try:
        group: list[str] = []
        count = 0
        async for piece in pieces:
            if size <= 1:
                yield piece
                continue
            group.append(piece)
            if piece:
                count += 1
                if count >= size:
                    yield "".join(group)
                    group.clear()
                    count = 0
        if count:
            yield "".join(group)
    finally:
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:
            await aclose()
        for value in context.values():
            if isinstance(value, GeneratorType):
                value.close()
            elif isinstance(value, AsyncGeneratorType):
                await value.aclose()
