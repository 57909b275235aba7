"""Compression of streamed responses (placeholder: identity until the gzip work lands)."""

from __future__ import annotations

from typing import Any

from ._settings import StreamSettings
from ._source import Source


def maybe_compress(request: Any, source: Source, settings: StreamSettings) -> Source:
    """Return ``source``, wrapped in a flushing gzip encoder when the response should be
    compressed; the identity for now."""
    return source
