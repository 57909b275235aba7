"""Concurrency limits: whether a new stream must be refused (with 503) before it starts."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from .._settings import StreamSettings


class _Counted(Protocol):
    """A running stream as the limits see it: the client it counts against."""

    @property
    def client(self) -> str: ...


def refusal(active: Collection[_Counted], client: str, settings: StreamSettings) -> str | None:
    """Why a new stream of ``client`` must be refused while ``active`` streams run, or None
    if it may start (``max_streams``, ``max_streams_per_client``; 0 means no limit)."""
    if settings.max_streams and len(active) >= settings.max_streams:
        return f"the site already serves {settings.max_streams} streams"
    if settings.max_streams_per_client:
        mine = sum(1 for s in active if s.client == client)
        if mine >= settings.max_streams_per_client:
            return f"{client} already has {settings.max_streams_per_client} streams"
    return None
