"""A Site that carries stream settings and knows its active streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Site

from ._http._alpn import channel_protocol
from ._metrics import StreamMetrics
from ._settings import StreamSettings

if TYPE_CHECKING:
    from ._stream import Stream


class StreamSite(Site):
    """``twisted.web.server.Site`` plus site-wide :class:`StreamSettings` and a registry of the
    streams it is serving (for graceful shutdown, limits, metrics and the status page)."""

    protocol = channel_protocol  # HTTP/2 (ALPN h2) through our connection class

    def __init__(
        self, resource: Any, *args: Any, settings: StreamSettings | None = None, **kwargs: Any
    ) -> None:
        super().__init__(resource, *args, **kwargs)  # type: ignore[no-untyped-call]
        self.stream_settings = settings if settings is not None else StreamSettings()
        self.active_streams: set[Stream] = set()
        self.metrics = StreamMetrics()
