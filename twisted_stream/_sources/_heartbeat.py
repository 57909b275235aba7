"""A :class:`~._source.Source` wrapper that fills silences with a heartbeat.

Proxies and load balancers cut connections that carry nothing for a while (often 60 s). An
event stream is often silent for longer, so :class:`HeartbeatSource` hands the engine a
comment line (``:``, which every event-stream parser ignores) once the inner source has
produced nothing for ``interval`` seconds, and nothing at all while data flows.

The engine never reads again before a returned Deferred fires. When the inner source has to
wait, the wrapper returns its own Deferred, fired by whichever comes first: the inner data,
or the heartbeat timer. After a heartbeat the inner Deferred is kept and waited on by the
next read, so nothing the inner source produces is lost or reordered. A stream has at most
one timer; data flowing only records the time, and a timer that fires before the stream has
been silent long enough is armed again for the rest.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from .._engine._source import EOF, Heartbeat, ReadResult, Ready, SliceDeadline, Source
from .._types import Clock

HEARTBEAT = Heartbeat(b":\n\n")
"""The comment sent when the stream is silent: ignored by EventSource and other parsers. Its
type, :class:`~._source.Heartbeat`, tells the engine it is not data (it does not reset the
idle timeout)."""


class HeartbeatSource:
    """``inner``, plus ``comment`` after every ``interval`` seconds of its silence.

    ``clock`` is an ``IReactorTime`` (the reactor, or a fake clock in tests).
    """

    __slots__ = (
        "_clock",
        "_closed",
        "_comment",
        "_held",
        "_inner",
        "_interval",
        "_last",
        "_out",
        "_timer",
        "_waiting",
    )

    def __init__(
        self, inner: Source, interval: float, clock: Clock, comment: Heartbeat = HEARTBEAT
    ) -> None:
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be positive, not {interval}")
        self._inner = inner
        self._interval = interval
        self._clock = clock
        self._comment = comment
        self._last: float = clock.seconds()
        """When the stream last got something (data or a heartbeat)."""
        self._timer: IDelayedCall | None = None
        self._waiting = False
        """An inner Deferred is outstanding."""
        self._held: Ready | Failure | None = None
        """What the inner Deferred gave while no read was waiting for it."""
        self._out: Deferred[Ready] | None = None
        """The Deferred the engine is waiting on."""
        self._closed = False

    def read(self, limit: int, deadline: SliceDeadline) -> ReadResult:
        held = self._held
        if held is not None:
            self._held = None
            return self._deliver(held)
        if not self._waiting:
            result = self._inner.read(limit, deadline)
            if not isinstance(result, Deferred):
                if result:
                    self._last = self._clock.seconds()
                return result
            self._waiting = True
            result.addCallbacks(self._inner_ready, self._inner_failed)
            held = self._held
            if held is not None:  # the inner Deferred had already fired
                self._held = None
                return self._deliver(held)
        out: Deferred[Ready] = Deferred()
        self._out = out
        if self._timer is None:
            self._arm()
        return out

    def _deliver(self, held: Ready | Failure) -> Ready:
        if isinstance(held, Failure):
            held.raiseException()
        return held

    def _arm(self) -> None:
        delay = self._last + self._interval - self._clock.seconds()
        self._timer = self._clock.callLater(delay if delay > 0 else 0, self._beat)

    def _beat(self) -> None:
        # The timer is not pushed back each time data flows (a reset per read): when it
        # fires early it is armed again for the rest of the interval.
        self._timer = None
        out = self._out
        if out is None or self._closed:
            return  # not waiting: the engine is busy writing or paused by the client
        if self._clock.seconds() - self._last < self._interval:
            self._arm()
            return
        self._out = None
        self._last = self._clock.seconds()
        out.callback(self._comment)

    def _inner_ready(self, result: Ready) -> None:
        self._waiting = False
        if self._closed:
            return
        if result is not EOF and result:
            self._last = self._clock.seconds()
        out = self._out
        if out is None:
            self._held = result
            return
        self._out = None
        out.callback(result)

    def _inner_failed(self, reason: Failure) -> None:
        self._waiting = False
        if self._closed:
            return  # the cancellation that close() caused, or anything after it
        out = self._out
        if out is None:
            self._held = reason
            return
        self._out = None
        out.errback(reason)

    def close(self) -> Deferred[None] | None:
        if self._closed:
            return None
        self._closed = True
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        self._out = None
        self._held = None
        return self._inner.close()
