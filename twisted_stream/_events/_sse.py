"""The Server-Sent Events wire format (HTML Living Standard, "Server-sent events"):
:class:`Event`, its field checks, the conversion of source items, and ``Last-Event-ID``.

Pure encoding: nothing here streams. :mod:`._event_stream` serves event streams and
:mod:`._channel` broadcasts events; both depend on this module only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import ChunkTypeError
from .._types import StreamRequest

CONTENT_TYPE = b"text/event-stream; charset=utf-8"


def _check_field(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Event {name} must be a str, not {type(value).__qualname__}")
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"Event {name} must not contain CR, LF or NUL: {value!r}")


def check_retry(retry: int) -> int:
    """``retry`` (milliseconds) if it is a non-negative int; else ``TypeError`` or
    ``ValueError``."""
    if type(retry) is not int:
        raise TypeError(f"retry must be an int (milliseconds), not {type(retry).__qualname__}")
    if retry < 0:
        raise ValueError(f"retry must not be negative, not {retry}")
    return retry


def _data_field(data: str) -> str:
    """``data`` as ``data:`` lines: one per line of ``data`` (CRLF and CR count as LF)."""
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    return "data: " + data.replace("\n", "\ndata: ") + "\n"


def encode_data(data: str) -> bytes:
    """The wire form of an event carrying only ``data`` (what a ``str`` item becomes)."""
    return (_data_field(data) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Event:
    """One Server-Sent Event.

    ``data`` may span several lines (``\\n``, ``\\r\\n`` and ``\\r`` all separate lines;
    each becomes a ``data:`` line, so the browser's ``event.data`` joins them with ``\\n``).
    ``event`` names the event type (``addEventListener(name, ...)``; the default type is
    ``message``), ``id`` becomes the browser's ``lastEventId`` and is sent back as
    ``Last-Event-ID`` when it reconnects, and ``retry`` sets the browser's reconnection
    delay in milliseconds. ``event`` and ``id`` containing CR, LF or NUL are rejected with
    :class:`ValueError`: they would let data inject fields or events of its own.

    The wire bytes are computed once, when the event is made, and shared by every stream
    that sends it (:meth:`encode`).
    """

    data: str
    event: str | None = field(default=None, kw_only=True)
    id: str | None = field(default=None, kw_only=True)
    retry: int | None = field(default=None, kw_only=True)
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.data, str):
            raise TypeError(f"Event data must be a str, not {type(self.data).__qualname__}")
        text = ""
        if self.id is not None:
            _check_field("id", self.id)
            text += f"id: {self.id}\n"
        if self.event is not None:
            _check_field("event", self.event)
            text += f"event: {self.event}\n"
        if self.retry is not None:
            text += f"retry: {check_retry(self.retry)}\n"
        text += _data_field(self.data) + "\n"
        object.__setattr__(self, "_wire", text.encode("utf-8"))

    def encode(self) -> bytes:
        """The event as it goes on the wire, blank line included (UTF-8)."""
        return self._wire


def convert_event(item: object) -> bytes:
    """Turn one item of an event source into wire bytes.

    An :class:`Event` gives its wire form; a ``str`` is one event's data; ``bytes`` (also
    ``bytearray``/``memoryview``) are written as they are, already in event-stream format.
    Anything else raises :class:`~twisted_stream.ChunkTypeError`.
    """
    if isinstance(item, Event):
        return item._wire
    if isinstance(item, str):
        return encode_data(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise ChunkTypeError(
        f"an event source yielded {type(item).__module__}.{type(item).__qualname__}; "
        "expected twisted_stream.Event or str"
    )


def last_event_id(request: StreamRequest) -> str | None:
    """The ``Last-Event-ID`` request header (``None`` when absent or empty)."""
    raw = request.getHeader(b"last-event-id")
    if not raw:
        return None
    return raw.decode("utf-8", "replace")
