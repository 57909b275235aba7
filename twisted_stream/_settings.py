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
    """How a site's streams and connections behave; the fields about one response are also
    keywords of :func:`stream`, the others (limits, the connection layer's) are site-wide.

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
    thread_queue_size: int = field(
        default=4 * DEFAULT_THREAD_POOL_SIZE,
        metadata={
            "help": "Threaded streams that may wait for a free thread; past it a new one gets "
            "503 with Retry-After at once. 0: none wait."
        },
    )
    thread_queue_timeout: float = field(
        default=10.0,
        metadata={
            "help": "Seconds a new threaded stream may wait for a free thread before it gets "
            "503 with Retry-After; 0 turns it off."
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
            "stream fails; also the seconds a client may send nothing of a streamed request "
            "body the application waits for (then 408, or an abort once the response "
            "started). 0 turns it off (for request bodies the site's connection timeout "
            "then applies)."
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
    sendfile: bool = field(
        default=True,
        metadata={
            "help": "Send file bodies of known length (whole files, single ranges) over plain "
            "HTTP/1.x TCP with the kernel's sendfile, without copying them through Python."
        },
    )
    threaded_file_reads: bool = field(
        default=False,
        metadata={
            "help": "Read file bodies on the site's thread pool, so slow storage (network "
            "filesystems, cold disks) never blocks the reactor; such files are not sent "
            "with sendfile, which reads in the reactor thread."
        },
    )
    compress: bool = field(
        default=False,
        metadata={
            "help": "gzip streamed text responses for clients that accept it, flushing at "
            "every write."
        },
    )
    header_timeout: float = field(
        default=20.0,
        metadata={
            "help": "Seconds a connection may take to send a complete request head, counted "
            "from when it waits for one (accepted, or the previous response done): then 408, "
            "or a quiet close if nothing of a request came. 0 turns it off."
        },
    )
    max_header_size: int = field(
        default=16384,
        metadata={
            "help": "Bytes of a request head (its lines without line ends): a longer request "
            "line gets 414, a longer head 431."
        },
    )
    max_body_size: int = field(
        default=1048576,
        metadata={
            "help": "Bytes of a request body: a larger declared Content-Length gets 413 before "
            "the body is read, a chunked body is cut with 413 when it passes it; resources "
            "that stream bodies are held to it unless they set their own. 0 means no limit."
        },
    )
    discard_limit: int = field(
        default=262144,
        metadata={
            "help": "Bytes of a streamed request body left unread when its response ends that "
            "are read and dropped to keep the connection; a larger rest (or an unanswered "
            "Expect: 100-continue) closes the connection instead."
        },
    )
    max_read_ahead: int = field(
        default=65536,
        metadata={
            "help": "Bytes read from a connection ahead of the request being answered "
            "(pipelined requests); past it the connection is not read until the response is "
            "done."
        },
    )
    server_header: str = field(
        default="twisted_stream",
        metadata={
            "help": "The Server header of responses, instead of Twisted's (which tells its "
            "version); empty for none. A resource that sets its own keeps it."
        },
    )
    max_connections_per_client: int = field(
        default=0,
        metadata={
            "help": "Connections open at once per client address (the peer's, never "
            "X-Forwarded-For); the first request of one more gets 503. 0 means no limit."
        },
    )

    def __post_init__(self) -> None:
        for name in ("buffer_size", "thread_pool_size", "max_header_size"):
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
            "header_timeout",
            "max_body_size",
            "discard_limit",
            "max_read_ahead",
            "max_connections_per_client",
            "thread_queue_size",
            "thread_queue_timeout",
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
