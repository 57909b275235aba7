"""Stream HTTP responses from Twisted with real producer/consumer flow control."""

from ._errors import (
    ChunkTypeError,
    ContentLengthError,
    SourceIdleTimeout,
    StreamAborted,
    StreamError,
)
from ._file import FileTruncated
from ._file_resource import FileResource
from ._jinja import stream_template
from ._metrics import StreamMetrics
from ._outcome import Outcome, StreamResult
from ._resource import StreamingResource
from ._settings import StreamSettings
from ._shutdown import GracefulShutdown
from ._site import StreamSite
from ._state import State
from ._stream import Stream, stream, stream_for
from ._template import ElementResource, stream_element

__all__ = [
    "ChunkTypeError",
    "ContentLengthError",
    "ElementResource",
    "FileResource",
    "FileTruncated",
    "GracefulShutdown",
    "Outcome",
    "SourceIdleTimeout",
    "State",
    "Stream",
    "StreamAborted",
    "StreamError",
    "StreamMetrics",
    "StreamResult",
    "StreamSettings",
    "StreamSite",
    "StreamingResource",
    "stream",
    "stream_element",
    "stream_for",
    "stream_template",
]
