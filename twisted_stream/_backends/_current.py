"""The process-wide choice of a shared channel backend: :func:`set_channel_backend`."""

from __future__ import annotations

from ._redis import RedisBackend
from ._shared import SharedBackend

_current: SharedBackend | None = None


def set_channel_backend(backend: str | SharedBackend | None) -> SharedBackend | None:
    """Share every named :class:`~twisted_stream.Channel` of this process through
    ``backend``: a ``redis://host:port/db`` URL (or a backend object); None goes back to
    in-process channels. Returns the backend now in use. Call it before channels are used
    (subscribed to or published on): a channel picks its backend when first used.

    ``ValueError`` for a malformed URL.
    """
    global _current
    if isinstance(backend, str):
        backend = RedisBackend(backend)
    _current = backend
    return backend


def channel_backend() -> SharedBackend | None:
    """The backend named channels of this process share, or None (in-process)."""
    return _current
