"""The few exceptions twisted_stream raises or reports."""

from __future__ import annotations


class StreamError(Exception):
    """Base class of twisted_stream's own errors."""


class StreamAborted(StreamError):
    """The stream was ended before its source was: the client went away or the server
    aborted it."""


class ContentLengthError(StreamError):
    """The source produced a different number of bytes than the declared Content-Length."""

    def __init__(self, declared: int, produced: int | None) -> None:
        self.declared = declared
        self.produced = produced
        got = "more" if produced is None else str(produced)
        super().__init__(f"Content-Length is {declared} but the source produced {got} bytes")


class ChunkTypeError(StreamError, TypeError):
    """A source yielded something that is not body data (the message names its type)."""


class SourceIdleTimeout(StreamError):
    """The source produced nothing for longer than the idle timeout."""
