"""Stream HTTP responses from Twisted with real producer/consumer flow control."""

from ._engine._outcome import Outcome, StreamResult
from ._engine._state import State
from ._engine._stream import Stream, stream, stream_for
from ._errors import (
    ChunkTypeError,
    ContentLengthError,
    SourceIdleTimeout,
    StreamAborted,
    StreamError,
)
from ._events._channel import Channel, SubscriberOverflow, Subscription
from ._events._event_stream import Event, EventStreamResource, stream_events
from ._events._jinja import stream_template
from ._events._ndjson import NDJSONResource, stream_ndjson
from ._events._template import ElementResource, stream_element
from ._files._resource import FileResource
from ._ops._metrics import StreamMetrics
from ._ops._mounts import Mounts
from ._ops._prometheus import MetricsResource
from ._ops._shutdown import GracefulShutdown
from ._ops._site import StreamSite
from ._ops._status import StatusResource
from ._settings import StreamSettings
from ._sources._file import FileTruncated
from ._sources._resource import StreamingResource

__all__ = [
    "Channel",
    "ChunkTypeError",
    "ContentLengthError",
    "ElementResource",
    "Event",
    "EventStreamResource",
    "FileResource",
    "FileTruncated",
    "GracefulShutdown",
    "MetricsResource",
    "Mounts",
    "NDJSONResource",
    "Outcome",
    "SourceIdleTimeout",
    "State",
    "StatusResource",
    "Stream",
    "StreamAborted",
    "StreamError",
    "StreamMetrics",
    "StreamResult",
    "StreamSettings",
    "StreamSite",
    "StreamingResource",
    "SubscriberOverflow",
    "Subscription",
    "stream",
    "stream_element",
    "stream_events",
    "stream_for",
    "stream_ndjson",
    "stream_template",
]
