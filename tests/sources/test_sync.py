"""The sync iterator adapter (``twisted_stream._sources._sync``)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from twisted.internet.defer import Deferred

from twisted_stream._engine._chunks import chunk_converter
from twisted_stream._engine._source import EOF, SliceDeadline
from twisted_stream._sources._sync import IteratorSource

FAR = SliceDeadline(math.inf, time.monotonic)


def source(items: object) -> IteratorSource:
    return IteratorSource(items, chunk_converter("utf-8"))  # type: ignore[arg-type]


def fired(d: object) -> object:
    assert isinstance(d, Deferred)
    out: list[object] = []
    d.addBoth(out.append)
    return out[0] if out else None


def test_small_chunks_are_coalesced_up_to_the_limit() -> None:
    """Items are joined until the limit is reached, then the rest waits for the next read."""
    src = source(iter([b"ab", b"cd", b"ef", b"gh"]))
    assert src.read(4, FAR) == b"abcd"
    assert src.read(4, FAR) == b"efgh"
    assert src.read(4, FAR) is EOF


def test_a_deferred_flushes_what_came_before_it() -> None:
    """Bytes gathered before a yielded Deferred are returned at once; the next read waits."""
    d: Deferred[object] = Deferred()
    src = source(iter([b"a", d, b"c"]))
    assert src.read(100, FAR) == b"a"
    waiting = src.read(100, FAR)
    assert isinstance(waiting, Deferred) and not waiting.called
    d.callback("b")
    assert fired(waiting) == b"b"
    assert src.read(100, FAR) == b"c"


def test_a_deferred_firing_none_writes_nothing() -> None:
    """``yield deferLater(...)`` used as a pause writes no bytes."""
    d: Deferred[object] = Deferred()
    src = source(iter([d]))
    waiting = src.read(100, FAR)
    d.callback(None)
    assert fired(waiting) == b""


def test_the_deadline_ends_a_read_early() -> None:
    """Past the deadline a read returns what it has, even nothing."""
    src = source(iter([b""] * 10))
    assert src.read(100, SliceDeadline(0.0, time.monotonic)) == b""


def test_an_error_after_some_items_comes_on_the_next_read() -> None:
    """Items produced before a failure are delivered; the failure is raised next."""

    def gen() -> Iterator[bytes]:
        yield b"ok"
        raise ValueError("boom")

    src = source(gen())
    assert src.read(100, FAR) == b"ok"
    with pytest.raises(ValueError, match="boom"):
        src.read(100, FAR)


def test_close_runs_finally_and_cancels_a_pending_deferred() -> None:
    """close() cancels what the generator waits on and closes it (its finally runs)."""
    ran: list[str] = []
    d: Deferred[object] = Deferred()
    d.addErrback(lambda f: ran.append("cancelled"))

    def gen() -> Iterator[object]:
        try:
            yield d
        finally:
            ran.append("finally")

    src = source(gen())
    waiting = src.read(100, FAR)
    assert isinstance(waiting, Deferred)
    waiting.addErrback(lambda f: None)
    src.close()
    src.close()
    assert ran == ["cancelled", "finally"]


def test_a_generator_never_started_is_closed_without_running() -> None:
    """Closing before any read does not run the generator's body."""
    ran: list[str] = []

    def gen() -> Iterator[bytes]:
        ran.append("body")
        yield b""

    source(gen()).close()
    assert ran == []
