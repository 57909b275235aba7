"""Stream HTTP responses from Twisted with real producer/consumer flow control.

The package is layered; a module imports only from its own layer or lower ones (a test
checks it): the base modules ``_errors``, ``_format``, ``_settings``, ``_types`` <
``_http`` (the seam to Twisted) < ``_engine`` < ``_sources`` < ``_backends`` <
``_events``, ``_files`` < ``_proxy`` < ``_ops`` < this module (the public API) < ``_demo``
< ``tap`` and ``testing`` (our users' testing module).
docs/guide/design.rst says more.
"""

from ._backends._current import set_channel_backend
from ._backends._redis import RedisBackend
from ._engine._outcome import Outcome, StreamResult
from ._engine._state import State
from ._engine._stream import Stream, stream_for
from ._errors import (
    ChannelBackendError,
    ChunkTypeError,
    ContentLengthError,
    FileTruncated,
    MalformedRequestBody,
    MultipartUnavailable,
    ProducerOverflow,
    RequestBodyError,
    RequestBodyIncomplete,
    RequestBodyTooLarge,
    SourceIdleTimeout,
    StreamAborted,
    StreamError,
    StreamRejected,
    SubscriberOverflow,
)
from ._events._channel import Channel
from ._events._event_stream import EventStreamResource, stream_events
from ._events._jinja import stream_template
from ._events._ndjson import NDJSONResource, stream_ndjson
from ._events._sse import Event
from ._events._subscription import Subscription
from ._events._template import ElementResource, stream_element
from ._files._resource import FileResource
from ._http._body import RequestBody
from ._http._forms import Part, multipart_parts, read_form
from ._http._request_body import IStreamBodyResource, request_body
from ._ops._metrics import StreamMetrics
from ._ops._mounts import Mounts
from ._ops._prometheus import MetricsResource
from ._ops._shutdown import GracefulShutdown
from ._ops._site import StreamSite
from ._ops._status import StatusResource
from ._proxy._resource import ProxyResource
from ._settings import StreamSettings
from ._sources._resource import StreamingResource
from ._sources._stream import stream

__all__ = [
    "Channel",
    "ChannelBackendError",
    "ChunkTypeError",
    "ContentLengthError",
    "ElementResource",
    "Event",
    "EventStreamResource",
    "FileResource",
    "FileTruncated",
    "GracefulShutdown",
    "IStreamBodyResource",
    "MalformedRequestBody",
    "MetricsResource",
    "Mounts",
    "MultipartUnavailable",
    "NDJSONResource",
    "Outcome",
    "Part",
    "ProducerOverflow",
    "ProxyResource",
    "RedisBackend",
    "RequestBody",
    "RequestBodyError",
    "RequestBodyIncomplete",
    "RequestBodyTooLarge",
    "SourceIdleTimeout",
    "State",
    "StatusResource",
    "Stream",
    "StreamAborted",
    "StreamError",
    "StreamMetrics",
    "StreamRejected",
    "StreamResult",
    "StreamSettings",
    "StreamSite",
    "StreamingResource",
    "SubscriberOverflow",
    "Subscription",
    "multipart_parts",
    "read_form",
    "request_body",
    "set_channel_backend",
    "stream",
    "stream_element",
    "stream_events",
    "stream_for",
    "stream_ndjson",
    "stream_template",
]
