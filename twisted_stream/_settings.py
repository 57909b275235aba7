"""Engine settings: one frozen record, overridable per site and per call."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ._sources._pool import DEFAULT_THREAD_POOL_SIZE


@dataclass(frozen=True)
class StreamSettings:
    """How every stream behaves; each field is also a keyword of :func:`stream`.

    A :class:`~twisted_stream.StreamSite` carries the site-wide settings; keywords given to
    :func:`stream` override them for one response. The plugin mirrors each field as a
    ``--kebab-case`` option.
    """

    buffer_size: int = 65536
    """Bytes buffered per stream beyond the transport's own buffer; small chunks are coalesced
    up to this, bigger ones split into writes of at most this."""
    slice_seconds: float = 0.005
    """Longest time one stream pulls from its source before letting the reactor run others."""
    thread_pool_size: int = DEFAULT_THREAD_POOL_SIZE
    """Threads that run ``threaded=True`` sources; further work waits for a free thread."""
    stall_timeout: float = 60.0
    """Seconds a stream may stay paused by its transport (the client is not reading) before
    it is aborted as stalled; 0 turns it off."""
    idle_timeout: float = 0.0
    """Seconds the source may produce nothing (heartbeats aside) before the stream fails;
    0 turns it off."""
    deadline: float = 0.0
    """Seconds a whole stream may last before it is aborted; 0 means no limit."""
    max_streams: int = 0
    """Streams served at once by the site; beyond it new ones get 503. 0 means no limit."""
    max_streams_per_client: int = 0
    """Streams served at once per client address; beyond it 503. 0 means no limit."""
    trust_forwarded_for: bool = False
    """Take the client address from ``X-Forwarded-For`` (only behind a proxy you trust)."""
    retry_after: int = 5
    """Seconds advertised in ``Retry-After`` when a stream is refused for a limit."""
    compress: bool = False
    """gzip streamed text responses for clients that accept it, flushing at every write."""

    def __post_init__(self) -> None:
        for name in ("buffer_size", "thread_pool_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.slice_seconds <= 0:
            raise ValueError(f"slice_seconds must be positive, not {self.slice_seconds}")
        for name in (
            "stall_timeout",
            "idle_timeout",
            "deadline",
            "max_streams",
            "max_streams_per_client",
            "retry_after",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")

    def replace(self, **changes: Any) -> StreamSettings:
        """A copy with ``changes`` applied; ``None`` values are ignored."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self


DEFAULT_SETTINGS = StreamSettings()


def settings_for(request: Any) -> StreamSettings:
    """The settings of the site serving ``request`` (defaults for a plain ``Site``)."""
    site = getattr(request, "site", None)
    found = getattr(site, "stream_settings", None)
    return found if isinstance(found, StreamSettings) else DEFAULT_SETTINGS
