"""A Site that carries stream settings and knows its active streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Site

from .._settings import StreamSettings
from ._metrics import StreamMetrics

if TYPE_CHECKING:
    from .._engine._stream import Stream


class StreamSite(Site):
    """``twisted.web.server.Site`` plus site-wide :class:`StreamSettings` and a registry of the
    streams it is serving (for graceful shutdown, limits, metrics and the status page)."""

    def __init__(
        self, resource: Any, *args: Any, settings: StreamSettings | None = None, **kwargs: Any
    ) -> None:
        super().__init__(resource, *args, **kwargs)  # type: ignore[no-untyped-call]
        self.stream_settings = settings if settings is not None else StreamSettings()
        self.active_streams: set[Stream] = set()
        self.metrics = StreamMetrics()
