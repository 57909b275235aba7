"""Choosing a source adapter (``twisted_stream._sources._adapt``)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import pytest
from twisted.internet import reactor
from twisted.internet.defer import succeed

from twisted_stream._engine._source import SliceDeadline
from twisted_stream._sources._adapt import adapt
from twisted_stream._sources._async import AsyncIteratorSource
from twisted_stream._sources._sync import IteratorSource
from twisted_stream._sources._threaded import ThreadedSource

from .test_threaded import POOL

FAR = SliceDeadline(math.inf, time.monotonic)


def pick(source: object, threaded: bool = False) -> object:
    return adapt(source, charset="utf-8", threaded=threaded, reactor=reactor, pool=lambda: POOL)


def test_text_and_bytes_are_one_chunk_not_a_path_or_characters() -> None:
    """A str is text (never a file name, never iterated per character)."""
    src = pick("hello.txt")
    assert isinstance(src, IteratorSource)
    assert src.read(100, FAR) == b"hello.txt"
    assert pick(b"raw").read(100, FAR) == b"raw"  # type: ignore[attr-defined]


def test_kinds() -> None:
    """Iterables, async iterables, threaded iterables and single Deferreds get adapters."""

    async def agen() -> AsyncIterator[bytes]:
        yield b""

    assert isinstance(pick([b"a"]), IteratorSource)
    assert isinstance(pick(agen()), AsyncIteratorSource)
    assert isinstance(pick(iter([b"a"]), threaded=True), ThreadedSource)
    assert pick(succeed(b"x")).read(100, FAR) is not None  # type: ignore[attr-defined]


def test_unstreamable_objects_are_a_clear_type_error() -> None:
    """Objects that are not a source raise TypeError naming the type."""
    with pytest.raises(TypeError, match=r"builtins\.int"):
        pick(42)

    async def agen() -> AsyncIterator[bytes]:
        yield b""

    with pytest.raises(TypeError, match="threaded"):
        pick(agen(), threaded=True)
