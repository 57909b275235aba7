"""The producer lifecycle table (``twisted_stream._engine._state``)."""

from __future__ import annotations

import pytest

from twisted_stream._engine._state import TERMINAL, Signal, State, transition
from twisted_stream._errors import StateError, StreamError


def test_pause_and_resume_are_idempotent_in_every_live_state() -> None:
    """Pausing twice equals pausing once; resuming when not paused changes nothing."""
    for state in (State.STREAMING, State.PAUSED, State.WAITING, State.WAITING_PAUSED):
        paused = transition(state, Signal.PAUSE)
        assert transition(paused, Signal.PAUSE) is paused
        resumed = transition(paused, Signal.RESUME)
        assert transition(resumed, Signal.RESUME) is resumed


def test_waiting_and_paused_are_independent() -> None:
    """A pause while waiting is remembered: the source's answer lands in PAUSED."""
    state = transition(State.STREAMING, Signal.WAIT)
    state = transition(state, Signal.PAUSE)
    assert state is State.WAITING_PAUSED
    assert transition(state, Signal.READY) is State.PAUSED
    assert transition(state, Signal.RESUME) is State.WAITING


def test_every_live_state_can_abort_and_terminal_states_absorb() -> None:
    """Any live state aborts; after the end, pause, resume and abort change nothing."""
    for state in State:
        if state not in TERMINAL:
            assert transition(state, Signal.ABORT) is State.ABORTED
    for state in TERMINAL:
        for event in (Signal.PAUSE, Signal.RESUME, Signal.ABORT):
            assert transition(state, event) is state


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (State.FINISHED, Signal.FINISH),
        (State.ABORTED, Signal.START),
        (State.WAITING, Signal.START),
        (State.PAUSED, Signal.WAIT),
        (State.STREAMING, Signal.READY),
        (State.IDLE, Signal.WAIT),
    ],
)
def test_impossible_signals_raise(state: State, event: Signal) -> None:
    """Signals that cannot happen in a state raise StateError (a StreamError) naming both."""
    with pytest.raises(StateError, match=event.value):
        transition(state, event)
    assert issubclass(StateError, StreamError)


def test_a_clean_end_is_finished_from_every_live_state() -> None:
    """FINISH (a clean end: the source's end, or Stream.end()) leads to FINISHED from every
    state a stream can be ended in, waiting on the source (paused or not) included."""
    for state in State:
        if state not in TERMINAL:
            assert transition(state, Signal.FINISH) is State.FINISHED, state
