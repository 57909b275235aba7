"""The public API: ``twisted_stream.__all__`` is pinned, and its errors are all StreamErrors."""

from __future__ import annotations

import twisted_stream
from twisted_stream import (
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

PUBLIC = [
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


def test_all_is_pinned() -> None:
    """``__all__`` names exactly the public API (adding or removing a name is a decision:
    change this list and the README's API table together)."""
    assert twisted_stream.__all__ == PUBLIC


def test_every_public_name_is_importable_and_public() -> None:
    """Each name of ``__all__`` is an attribute of the package, defined in a module of it."""
    for name in PUBLIC:
        value = getattr(twisted_stream, name)
        assert getattr(value, "__module__", "").startswith("twisted_stream."), name


def test_every_error_is_a_stream_error() -> None:
    """``except StreamError`` catches every error the package reports (``except
    RequestBodyError`` every request-body one); those that are also a built-in kind stay one
    (a truncated file is an OSError, a bad chunk a TypeError, a malformed form a
    ValueError, a missing multipart parser an ImportError)."""
    for error in (
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
        StreamRejected,
        SubscriberOverflow,
    ):
        assert issubclass(error, StreamError), error
    for error in (
        RequestBodyIncomplete,
        RequestBodyTooLarge,
        MalformedRequestBody,
        MultipartUnavailable,
    ):
        assert issubclass(error, RequestBodyError), error
    assert issubclass(MalformedRequestBody, ValueError)
    assert issubclass(MultipartUnavailable, ImportError)
    assert issubclass(FileTruncated, OSError)
    assert issubclass(ChunkTypeError, TypeError)
    assert issubclass(ProducerOverflow, StreamAborted)
    try:
        raise FileTruncated("short")
    except StreamError as caught:
        assert isinstance(caught, OSError)


def test_no_exception_class_outside_the_errors_module() -> None:
    """Every exception class of the package is defined in ``_errors.py``."""
    import ast
    import pathlib

    package = pathlib.Path(twisted_stream.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "_errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not any(b.endswith(("Error", "Exception")) for b in bases), (
                    path.name,
                    node.name,
                )
