"""How a stream ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from twisted.python.failure import Failure


class Outcome(enum.Enum):
    """The ways a stream ends."""

    COMPLETED = "completed"
    """The whole body was sent and the response finished."""
    CLIENT_GONE = "client-gone"
    """The client went away (disconnect, reset, HTTP/2 stream reset) before the end."""
    SOURCE_FAILED = "source-failed"
    """The source raised, yielded something that is not body data, or produced a different
    length than declared: 500 if nothing was sent yet, else an aborted connection."""
    STALLED = "stalled"
    """The client read nothing for the stall timeout while the stream waited on it: aborted."""
    REJECTED = "rejected"
    """Refused before it started, for a concurrency limit: 503 with Retry-After."""
    ABORTED = "aborted"
    """The server ended it (``Stream.abort()``, shutdown, a limit): an aborted connection."""

    # Members are singletons: identity hashing keeps the metrics' per-outcome counts off
    # Enum's slow Python-level __hash__ (one lookup per stream).
    __hash__ = object.__hash__


@dataclass(frozen=True)
class StreamResult:
    """What :meth:`Stream.when_done` delivers once a stream has ended."""

    outcome: Outcome
    bytes_sent: int
    """Body bytes handed to the transport (not counting chunked framing)."""
    failure: Failure | None
    """Why it ended, for every outcome but ``COMPLETED``."""
    duration: float
    """Seconds from start to end."""
