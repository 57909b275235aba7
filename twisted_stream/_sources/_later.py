"""Answering a request with what a render method gives later: the result of an ``async def
render_<METHOD>`` or of a returned Deferred.

``bytes`` are sent with a ``Content-Length``; ``None`` as an empty body; ``NOT_DONE_YET``
leaves the request to the handler, which answers it itself; anything else is a source for
:func:`~twisted_stream.stream`. A handler that fails is answered as Twisted answers a
failing ``render`` (``500``, or the connection aborted once the headers went out), except
for the request-body errors, answered with their own status (``413``, ``400``, ``415``,
``408``) if nothing was sent. When the client goes away first, the handler's Deferred is
cancelled (a coroutine gets ``CancelledError`` where it awaits, so its ``finally`` runs),
and what it returns is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from .._errors import RequestBodyError
from .._http._twisted import (
    abort_connection,
    answer_body_error,
    headers_sent,
    is_disconnected,
    request_line,
    send_error_page,
)
from .._types import Clock, StreamRequest

_log = Logger(namespace="twisted_stream")

Later = Deferred[Any] | Coroutine[Any, Any, Any]
"""What a render method may return to answer later."""


def answer_later(
    request: StreamRequest, result: Later, send: Callable[[object], object], clock: Clock
) -> int:
    """Answer ``request`` with what ``result`` gives (``send`` streams a source); returns
    ``NOT_DONE_YET``."""
    d: Deferred[Any] = result if isinstance(result, Deferred) else Deferred.fromCoroutine(result)
    request.notifyFinish().addErrback(lambda _: d.cancel())
    d.addCallbacks(
        lambda value: _send(request, value, send), lambda failure: _failed(request, failure, clock)
    )
    d.addErrback(lambda failure: _failed(request, failure, clock))
    return NOT_DONE_YET


def _gone(request: StreamRequest) -> bool:
    return is_disconnected(request) or bool(getattr(request, "finished", False))


def _send(request: StreamRequest, value: object, send: Callable[[object], object]) -> None:
    if _gone(request):
        return  # the client left, or the request was answered already (a body's 4xx)
    if value is NOT_DONE_YET:
        return
    if value is None:
        value = b""
    if isinstance(value, bytes):
        request.setHeader(b"content-length", b"%d" % len(value))
        request.write(value)
        request.finish()
        return
    send(value)


def _failed(request: StreamRequest, failure: Failure, clock: Clock) -> None:
    if failure.check(CancelledError) and is_disconnected(request):
        return  # cancelled because the client left
    if failure.check(RequestBodyError) is not None and (
        answer_body_error(request, cast(RequestBodyError, failure.value)) or _gone(request)
    ):
        return  # answered with its status, or the client left, or answered already
    if _gone(request):
        _log.failure(
            "{request} failed after it was answered", failure, request=request_line(request)
        )
        return
    _log.failure("rendering {request}", failure, request=request_line(request))
    if headers_sent(request):
        abort_connection(request, clock, flush=False)
    else:
        send_error_page(request, failure)
