"""The producer lifecycle as an explicit state machine.

The engine keeps one :class:`State` and moves it only through :func:`transition`, so every
path (pause, resume, waiting on the source, finishing, aborting) is checked against one table.
``PAUSED`` (the transport asked us to stop) and ``WAITING`` (the source has to wait) are
independent, so both together is its own state, ``WAITING_PAUSED``.
"""

from __future__ import annotations

import enum

from .._errors import StateError


class State(enum.Enum):
    """Where a stream is in its life."""

    IDLE = "idle"
    """Created; nothing pulled yet."""
    STREAMING = "streaming"
    """The transport wants data and no source read is outstanding."""
    PAUSED = "paused"
    """The transport asked us to pause; nothing is pulled from the source."""
    WAITING = "waiting"
    """A source read is outstanding (a Deferred, a coroutine, a thread hop)."""
    WAITING_PAUSED = "waiting-paused"
    """A source read is outstanding and the transport asked us to pause."""
    FINISHED = "finished"
    """The response ended cleanly: the source ended, or :meth:`Stream.end` was called."""
    ABORTED = "aborted"
    """The stream ended any other way: client gone, source failed, aborted by the server."""

    # Members are singletons: identity hashing keeps table lookups off Enum's slow
    # Python-level __hash__ (they happen on every pause and resume).
    __hash__ = object.__hash__


class Signal(enum.Enum):
    """What can happen to a stream (the transport pausing it, the source waiting...)."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    WAIT = "wait"
    READY = "ready"
    FINISH = "finish"
    ABORT = "abort"

    __hash__ = object.__hash__


TERMINAL = frozenset({State.FINISHED, State.ABORTED})
"""States a stream never leaves."""

_S, _E = State, Signal
_TABLE: dict[tuple[State, Signal], State] = {
    (_S.IDLE, _E.START): _S.STREAMING,
    (_S.IDLE, _E.PAUSE): _S.IDLE,
    (_S.IDLE, _E.RESUME): _S.IDLE,
    (_S.IDLE, _E.FINISH): _S.FINISHED,
    (_S.STREAMING, _E.PAUSE): _S.PAUSED,
    (_S.STREAMING, _E.RESUME): _S.STREAMING,
    (_S.STREAMING, _E.WAIT): _S.WAITING,
    (_S.STREAMING, _E.FINISH): _S.FINISHED,
    (_S.PAUSED, _E.PAUSE): _S.PAUSED,
    (_S.PAUSED, _E.RESUME): _S.STREAMING,
    (_S.PAUSED, _E.FINISH): _S.FINISHED,
    (_S.WAITING, _E.PAUSE): _S.WAITING_PAUSED,
    (_S.WAITING, _E.RESUME): _S.WAITING,
    (_S.WAITING, _E.READY): _S.STREAMING,
    (_S.WAITING, _E.FINISH): _S.FINISHED,
    (_S.WAITING_PAUSED, _E.PAUSE): _S.WAITING_PAUSED,
    (_S.WAITING_PAUSED, _E.RESUME): _S.WAITING,
    (_S.WAITING_PAUSED, _E.READY): _S.PAUSED,
    (_S.WAITING_PAUSED, _E.FINISH): _S.FINISHED,
}
# A clean end (Stream.end()) may come in any live state, waiting on the source included.
# Pause and resume are idempotent everywhere; after the end they are ignored, as is a second
# abort (the client may vanish while we are aborting).
for _terminal in TERMINAL:
    for _signal in (_E.PAUSE, _E.RESUME, _E.ABORT):
        _TABLE[(_terminal, _signal)] = _terminal
for _state in State:
    if _state not in TERMINAL:
        _TABLE[(_state, _E.ABORT)] = _S.ABORTED


def transition(state: State, signal: Signal) -> State:
    """Return the state after ``signal`` happens in ``state``; raise
    :class:`~twisted_stream._errors.StateError` if it cannot happen there."""
    try:
        return _TABLE[(state, signal)]
    except KeyError:
        raise StateError(f"{signal.value!r} cannot happen in state {state.value!r}") from None
