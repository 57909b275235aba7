"""Stream HTTP responses from Twisted with real producer/consumer flow control."""

from ._channel import Channel, SubscriberOverflow, Subscription
from ._errors import (
    ChunkTypeError,
    ContentLengthError,
    SourceIdleTimeout,
    StreamAborted,
    StreamError,
)
from ._events import Event, EventStreamResource, stream_events
from ._file import FileTruncated
from ._file_resource import FileResource
from ._jinja import stream_template
from ._metrics import StreamMetrics
from ._mounts import Mounts
from ._ndjson import NDJSONResource, stream_ndjson
from ._outcome import Outcome, StreamResult
from ._prometheus import MetricsResource
from ._resource import StreamingResource
from ._settings import StreamSettings
from ._shutdown import GracefulShutdown
from ._site import StreamSite
from ._state import State
from ._status import StatusResource
from ._stream import Stream, stream, stream_for
from ._template import ElementResource, stream_element

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
