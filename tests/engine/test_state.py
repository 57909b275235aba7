"""The producer lifecycle table (``twisted_stream._engine._state``)."""

from __future__ import annotations

import pytest

from twisted_stream._engine._state import TERMINAL, Event, State, StateError, transition


def test_pause_and_resume_are_idempotent_in_every_live_state() -> None:
    """Pausing twice equals pausing once; resuming when not paused changes nothing."""
    for state in (State.STREAMING, State.PAUSED, State.WAITING, State.WAITING_PAUSED):
        paused = transition(state, Event.PAUSE)
        assert transition(paused, Event.PAUSE) is paused
        resumed = transition(paused, Event.RESUME)
        assert transition(resumed, Event.RESUME) is resumed


def test_waiting_and_paused_are_independent() -> None:
    """A pause while waiting is remembered: the source's answer lands in PAUSED."""
    state = transition(State.STREAMING, Event.WAIT)
    state = transition(state, Event.PAUSE)
    assert state is State.WAITING_PAUSED
    assert transition(state, Event.READY) is State.PAUSED
    assert transition(state, Event.RESUME) is State.WAITING


def test_every_live_state_can_abort_and_terminal_states_absorb() -> None:
    """Any live state aborts; after the end, pause, resume and abort change nothing."""
    for state in State:
        if state not in TERMINAL:
            assert transition(state, Event.ABORT) is State.ABORTED
    for state in TERMINAL:
        for event in (Event.PAUSE, Event.RESUME, Event.ABORT):
            assert transition(state, event) is state


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (State.FINISHED, Event.FINISH),
        (State.ABORTED, Event.START),
        (State.WAITING, Event.FINISH),
        (State.PAUSED, Event.WAIT),
        (State.STREAMING, Event.READY),
        (State.IDLE, Event.WAIT),
    ],
)
def test_impossible_events_raise(state: State, event: Event) -> None:
    """Events that cannot happen in a state raise StateError naming both."""
    with pytest.raises(StateError, match=event.value):
        transition(state, event)
