"""Turning what a source yields into body bytes."""

from __future__ import annotations

import functools
from collections.abc import Callable

from .._errors import ChunkTypeError


@functools.lru_cache(maxsize=32)
def chunk_converter(charset: str) -> Callable[[object], bytes]:
    """Return a function turning one yielded item into ``bytes`` (one per charset, shared).

    ``bytes`` (and its subclasses) pass through; ``bytearray`` and ``memoryview`` are
    copied (the source may reuse its buffer after yielding it); ``str`` is encoded with
    ``charset``. Anything else raises :class:`ChunkTypeError` naming the type.
    """

    def convert(item: object) -> bytes:
        if isinstance(item, bytes):  # subclasses too (immutable; Heartbeat keeps its type)
            return item
        if isinstance(item, str):
            return item.encode(charset)
        if isinstance(item, (bytes, bytearray, memoryview)):
            return bytes(item)
        raise ChunkTypeError(
            f"a stream source yielded {type(item).__module__}.{type(item).__qualname__}; "
            "expected bytes, bytearray, memoryview or str"
        )

    return convert
