"""Engine settings: one frozen record, overridable per site and per call.

Each field's help text is in its ``metadata["help"]``: the plugin's ``--kebab-case`` options
are reflected from :func:`dataclasses.fields` alone, so they work from an install that ships
only compiled ``.pyc`` files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEFAULT_THREAD_POOL_SIZE = 10
"""Threads of a site's pool for ``threaded=True`` sources unless configured."""


@dataclass(frozen=True)
class StreamSettings:
    """How every stream behaves; each field is also a keyword of :func:`stream`.

    A :class:`~twisted_stream.StreamSite` carries the site-wide settings; keywords given to
    :func:`stream` override them for one response. The plugin mirrors each field as a
    ``--kebab-case`` option, with the field's ``metadata["help"]`` as its help.
    """

    buffer_size: int = field(
        default=65536,
        metadata={
            "help": "Bytes buffered per stream beyond the transport's own buffer; small "
            "chunks are coalesced up to this, bigger ones split into writes of at most this."
        },
    )
    slice_seconds: float = field(
        default=0.005,
        metadata={
            "help": "Longest time one stream pulls from its source before letting the "
            "reactor run others."
        },
    )
    thread_pool_size: int = field(
        default=DEFAULT_THREAD_POOL_SIZE,
        metadata={
            "help": "Threads that run threaded=True sources; further work waits for a free thread."
        },
    )
    stall_timeout: float = field(
        default=60.0,
        metadata={
            "help": "Seconds a stream may stay paused by its transport (the client is not "
            "reading) before it is aborted as stalled; 0 turns it off."
        },
    )
    idle_timeout: float = field(
        default=0.0,
        metadata={
            "help": "Seconds the source may produce nothing (heartbeats aside) before the "
            "stream fails; 0 turns it off."
        },
    )
    deadline: float = field(
        default=0.0,
        metadata={
            "help": "Seconds a whole stream may last before it is aborted; 0 means no limit."
        },
    )
    max_streams: int = field(
        default=0,
        metadata={
            "help": "Streams served at once by the site; beyond it new ones get 503. 0 means "
            "no limit."
        },
    )
    max_streams_per_client: int = field(
        default=0,
        metadata={
            "help": "Streams served at once per client address; beyond it 503. 0 means no limit."
        },
    )
    trust_forwarded_for: bool = field(
        default=False,
        metadata={
            "help": "Take the client address from X-Forwarded-For (only behind a proxy you trust)."
        },
    )
    retry_after: int = field(
        default=5,
        metadata={
            "help": "Seconds advertised in Retry-After when a stream is refused for a limit."
        },
    )
    compress: bool = field(
        default=False,
        metadata={
            "help": "gzip streamed text responses for clients that accept it, flushing at "
            "every write."
        },
    )

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


def settings_for(request: object) -> StreamSettings:
    """The settings of the site serving ``request`` (defaults for a plain ``Site``)."""
    site = getattr(request, "site", None)
    found = getattr(site, "stream_settings", None)
    return found if isinstance(found, StreamSettings) else DEFAULT_SETTINGS
