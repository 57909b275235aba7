"""Engine settings: one frozen record, overridable per site and per call."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ._threads import DEFAULT_THREAD_POOL_SIZE


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

    def __post_init__(self) -> None:
        if self.buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, not {self.buffer_size}")
        if self.slice_seconds <= 0:
            raise ValueError(f"slice_seconds must be positive, not {self.slice_seconds}")
        if self.thread_pool_size < 1:
            raise ValueError(f"thread_pool_size must be at least 1, not {self.thread_pool_size}")

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
