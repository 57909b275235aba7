"""Our HTTP/2 connection: Twisted's ``H2Connection`` with memory per stream bounded.

Twisted's ``H2Connection`` (``twisted/web/_http2.py``) keeps one queue of DATA per stream and
pauses a stream's producer only when that stream's flow-control window is used up, so a client
that grants a 16 MiB window and stops reading makes every stream queue 16 MiB; its send loop
writes one frame per reactor turn (``callLater(0)`` after each), capping throughput.

:class:`StreamH2Connection` keeps the priority tree, the queues and the control-frame handling,
and changes three things:

- **Backpressure reaches every stream.** A stream's producer runs only while the transport is
  not pushing back, its flow-control window is open, and its queue holds less than
  :attr:`~StreamH2Connection.stream_high_water` bytes (once paused by its queue it resumes at
  half). The transport pausing the connection pauses every stream producer on it; when it
  drains, every stream that may produce is resumed before the send loop runs again, so none is
  starved and the priority tree still decides whose DATA goes first.
- **Many frames per turn.** The send loop frames DATA in priority order and writes it in
  batches of :data:`WRITE_BATCH` bytes until the transport pushes back, every stream is
  blocked, or :attr:`~StreamH2Connection.send_budget` bytes went out this turn (then it yields
  to the reactor so other connections run). A stream waiting for a WINDOW_UPDATE costs no
  turns (Twisted's loop spins on it).
- **Teardown and errors.** A stream reset by the client or lost with the connection stops its
  producer (Twisted only errbacks ``notifyFinish``); a stream aborted by the server is reset
  with ``INTERNAL_ERROR`` (RFC 9113 §7) and its request learns it is gone, at once or, for a
  response whose source failed (:meth:`~StreamH2Connection.abort_after_queued`), once the
  DATA it queued has been sent, as an HTTP/1.1 client receives what was written before the
  connection closes. :meth:`go_away` sends ``GOAWAY`` for graceful shutdown while the open
  streams finish.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import h2.exceptions
import priority
from h2.errors import ErrorCodes
from h2.events import DataReceived, RequestReceived, StreamEnded, StreamReset, WindowUpdated
from hyperframe.frame import GoAwayFrame
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer, IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._http2 import _END_STREAM_SENTINEL, H2Connection, H2Stream

from .._types import Clock
from ._h2body import H2BodyStreaming

_log = Logger(namespace="twisted_stream.http2")

STREAM_HIGH_WATER = 65536
"""Bytes queued for one stream past which its producer is paused: the HTTP/2 counterpart of
the 64 KiB a TCP transport buffers before it pauses an HTTP/1.1 response's producer."""

RECEIVE_WINDOW = 4 * 1024 * 1024
"""The connection's receive window (Twisted leaves h2's 64 KiB): request bodies are bounded
per stream by each stream's window, so one upload waiting for its consumer must not hold the
window every other stream of the connection shares."""

SEND_BUDGET = 512 * 1024
"""Most DATA bytes one connection sends in one reactor turn. The transport usually pushes
back first (past 64 KiB); this bounds the turn when it does not."""

_DATA_HEADER = struct.Struct(">HBBBL")
"""A DATA frame's header: 24-bit length (as 16 + 8 bits), type 0, flags, stream id."""

_RESET_SENTINEL = object()
"""Queued after a stream's last DATA by :meth:`StreamH2Connection.abort_after_queued`: reset
it when the send loop reaches this."""

WRITE_BATCH = 128 * 1024
"""DATA bytes framed before one write to the transport: as much as a TCP transport sends
per turn (Twisted's ``SEND_LIMIT``), in one TLS write instead of one per 16 KiB frame."""


class StreamH2Stream(H2BodyStreaming, H2Stream):
    """One HTTP/2 stream whose producer runs only while its connection lets it, and whose
    request body is limited or streamed (:mod:`._h2body`)."""

    def update_producer(self) -> None:
        """Pause or resume the registered producer from the connection's state: the transport
        pushing back, this stream's flow-control window and its queue."""
        producer = self.producer
        if producer is None:
            return
        conn: StreamH2Connection = self._conn
        queued = conn.queued_bytes(self.streamID)
        if conn.transport_paused:
            go = False
        elif self._producerProducing:
            go = queued < conn.stream_high_water
        elif queued > conn.stream_high_water // 2:
            return  # stays paused (the common case while its queue drains: no h2 call)
        else:
            go = True
        if go and conn.remainingOutboundWindow(self.streamID) <= 0:
            go = False
        if go == self._producerProducing:
            return
        # Set before calling: the producer may write (and so re-enter) from either call.
        self._producerProducing = go
        if go:
            producer.resumeProducing()
        else:
            producer.pauseProducing()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        super().registerProducer(producer, streaming)
        self.update_producer()

    def flowControlBlocked(self) -> None:
        self.update_producer()

    def windowUpdated(self) -> None:
        self.update_producer()

    def abort_after_queued(self) -> None:
        """Reset this stream once the DATA already written to it has been sent."""
        conn: StreamH2Connection = self._conn
        conn.abort_after_queued(self.streamID)

    def connectionLost(self, reason: Failure) -> None:
        """The client reset the stream or the connection went: the request hears of it, then
        a producer still registered is stopped (a file producer closes its file)."""
        super().connectionLost(reason)
        producer, self.producer = self.producer, None
        self._producerProducing = False
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                # The connection goes on tearing down its other streams.
                _log.failure("stopping the producer of HTTP/2 stream {id}", id=self.streamID)


class StreamH2Connection(H2Connection):
    """An HTTP/2 connection whose streams use bounded memory whatever the client's window."""

    stream_high_water = STREAM_HIGH_WATER
    send_budget = SEND_BUDGET
    requestFactory: Callable[..., Any]
    """Set by the protocol that builds the connection, as for Twisted's."""

    def __init__(self, reactor: Clock | None = None) -> None:
        self._queued: dict[int, int] = {}
        self._wake: IDelayedCall | None = None
        self._going_away = False
        self._last_stream_id = 0
        self._closing = False
        self._out: list[bytes | memoryview] | None = None
        """The frames of the batch being built."""
        self._framing: set[int] = set()
        """Streams whose DATA frames are framed here (h2 sent their first one)."""
        super().__init__(reactor)

    def connectionMade(self) -> None:
        # Twisted turns Nagle's algorithm off only on a plain TCP transport; behind TLS the
        # last partial segment of a burst would wait for the client's delayed ACK (~40 ms)
        # every time the connection waits for a WINDOW_UPDATE.
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        super().connectionMade()
        opened = RECEIVE_WINDOW - self.conn.inbound_flow_control_window
        self.conn.increment_flow_control_window(opened)
        self._tryToWriteControlData()

    # State the streams consult.

    @property
    def transport_paused(self) -> bool:
        """Whether the transport is pushing back (its buffer is full)."""
        return self._consumerBlocked is not None

    def queued_bytes(self, stream_id: int) -> int:
        """DATA bytes queued for ``stream_id`` and not yet sent."""
        return self._queued.get(stream_id, 0)

    def remainingOutboundWindow(self, streamID: int) -> int:
        # Twisted sums the whole queue on every call; the count is kept as data comes and goes.
        return int(self.conn.local_flow_control_window(streamID)) - self._queued[streamID]

    # IPushProducer, called by the transport.

    def pauseProducing(self) -> None:
        if self._consumerBlocked is not None:
            return  # Twisted would replace the Deferred the send loop waits on
        super().pauseProducing()
        for stream in list(self.streams.values()):
            stream.update_producer()

    def resumeProducing(self) -> None:
        blocked, self._consumerBlocked = self._consumerBlocked, None
        if self._stillProducing:
            # Every stream that may produce refills its queue before the send loop runs
            # (writes never run it from here), so none is starved by one that always has
            # data; then the priority tree picks whose DATA goes first.
            for stream in list(self.streams.values()):
                stream.update_producer()
        if blocked is not None:
            blocked.callback(None)  # flushes buffered control frames, then the send loop

    def connectionLost(
        self, reason: Failure = connectionDone, _cancelTimeouts: bool = True
    ) -> None:
        if self._wake is not None and self._wake.active():
            self._wake.cancel()
        self._wake = None
        super().connectionLost(reason, _cancelTimeouts=_cancelTimeouts)

    # Streams.

    def _requestReceived(self, event: RequestReceived) -> None:
        stream_id = event.stream_id
        if self._going_away and stream_id > self._last_stream_id:
            # Opened after our GOAWAY (RFC 9113 §6.8): refused, so the client retries it
            # elsewhere.
            self.conn.reset_stream(stream_id, error_code=ErrorCodes.REFUSED_STREAM)
            self._tryToWriteControlData()
            return
        self._queued[stream_id] = 0
        self._outboundStreamQueues[stream_id] = deque()
        self._streamCleanupCallbacks[stream_id] = Deferred()
        self.streams[stream_id] = StreamH2Stream(
            stream_id, self, event.headers, self.requestFactory, self.site, self.factory
        )
        try:
            self.priority.insert_stream(stream_id)
        except priority.DuplicateStreamError:
            pass  # a PRIORITY frame came first and inserted it (blocked)
        else:
            self.priority.block(stream_id)
        self.streams[stream_id].head_complete(has_body=event.stream_ended is None)

    def _requestDataReceived(self, event: DataReceived) -> None:
        if event.stream_id in self.streams:
            super()._requestDataReceived(event)
        else:  # a refused stream's body: only the connection's window is handed back
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def _requestAborted(self, event: StreamReset) -> None:
        if event.stream_id in self.streams:
            super()._requestAborted(event)

    def _requestEnded(self, event: StreamEnded) -> None:
        if event.stream_id in self.streams:
            super()._requestEnded(event)

    def _requestDone(self, streamID: int) -> None:
        stream = self.streams.get(streamID)
        super()._requestDone(streamID)
        if stream is not None and stream.reset_after_end:
            # Our side ended with its body unread: the client stops sending (RFC 9113 §8.1).
            try:
                self.conn.reset_stream(streamID, error_code=ErrorCodes.NO_ERROR)
            except h2.exceptions.StreamClosedError:
                pass  # the client had ended it too
            else:
                self._tryToWriteControlData()
        self._queued.pop(streamID, None)
        self._framing.discard(streamID)
        if self._going_away and not self.streams:
            # Not at once: a batch being built may hold this stream's last frames.
            self._reactor.callLater(0, self._close)

    def writeDataToStream(self, streamID: int, data: bytes) -> None:
        if not data:
            return
        self._outboundStreamQueues[streamID].append(data)
        self._queued[streamID] += len(data)
        if self.conn.local_flow_control_window(streamID) > 0:
            self.priority.unblock(streamID)
            self._wake_sender()
        self.streams[streamID].update_producer()

    def endRequest(self, streamID: int) -> None:
        self._outboundStreamQueues[streamID].append(_END_STREAM_SENTINEL)
        self.priority.unblock(streamID)
        self._wake_sender()

    def abortRequest(
        self, streamID: int, error_code: ErrorCodes = ErrorCodes.INTERNAL_ERROR
    ) -> None:
        """Reset the stream (``INTERNAL_ERROR`` unless told) and drop what it queued; its
        request is told the stream is gone, as an aborted HTTP/1.1 connection would."""
        stream = self.streams.get(streamID)
        if stream is None:
            return
        self.conn.reset_stream(streamID, error_code=error_code)
        if not self._tryToWriteControlData():
            return  # the connection was dropped for buffering too much
        stream.connectionLost(
            Failure(ConnectionLost(f"stream reset by the server ({error_code.name})"))
        )
        if streamID in self.streams:
            self._requestDone(streamID)

    def abort_after_queued(self, streamID: int) -> None:
        """Reset the stream as :meth:`abortRequest` does, but only once the DATA queued for
        it has been sent (flow control permitting), so the client receives everything the
        response wrote before it learns the response failed. At once when nothing is
        queued; the caller forces the reset if the client never opens its window."""
        if streamID not in self.streams:
            return
        if not self._queued.get(streamID):
            self.abortRequest(streamID)
            return
        self._outboundStreamQueues[streamID].append(_RESET_SENTINEL)
        self.priority.unblock(streamID)
        self._wake_sender()

    def _handleWindowUpdate(self, event: WindowUpdated) -> None:
        # Twisted iterates over its live dict of streams, which a producer resumed here may
        # change (a source that fails ends its stream); and it never wakes the send loop.
        targets = [event.stream_id] if event.stream_id else list(self.streams)
        for stream_id in targets:
            stream = self.streams.get(stream_id)
            if stream is None:
                continue  # a late WINDOW_UPDATE, or ended while this loop ran
            if self._outboundStreamQueues.get(stream_id):
                self.priority.unblock(stream_id)
            stream.update_producer()
        self._wake_sender()

    # Sending.

    def _wake_sender(self) -> None:
        """Run the send loop in a later turn if it is waiting for data (never from inside a
        write, so resuming many producers cannot let the first ones starve the rest)."""
        if self._sendingDeferred is None or self._wake is not None:
            return
        self._wake = self._reactor.callLater(0, self._woken)

    def _woken(self) -> None:
        self._wake = None
        waiting, self._sendingDeferred = self._sendingDeferred, None
        if waiting is not None:
            waiting.callback(None)

    def _sendPrioritisedData(self, *args: object) -> None:
        """Send DATA in priority order, one write per batch of frames, until the transport
        pushes back, every stream is blocked (then wait for data), or this turn's budget is
        spent (then yield a turn)."""
        budget = self.send_budget
        sent = 0
        waiting = False
        while self._sending() and self._consumerBlocked is None and sent < budget:
            batch, waiting = self._send_batch(min(WRITE_BATCH, budget - sent))
            sent += batch
            if waiting:
                break
        if not self._sending():
            return
        if sent:
            self.resetTimeout()
        if self._consumerBlocked is not None:
            self._consumerBlocked.addCallback(self._sendPrioritisedData)
        elif waiting:
            self._sendingDeferred = Deferred()
            self._sendingDeferred.addCallback(self._sendPrioritisedData)
        else:
            self._reactor.callLater(0, self._sendPrioritisedData)

    def _sending(self) -> bool:
        """Whether DATA may still be sent (not once the connection is lost or closing)."""
        return self._stillProducing and not self._closing

    def timeoutConnection(self) -> None:
        self._closing = True  # Twisted's GOAWAY goes out; no DATA after it
        super().timeoutConnection()

    def _send_batch(self, limit: int) -> tuple[int, bool]:
        """Frame DATA in priority order until ``limit`` bytes or no stream can send, then
        write it all at once; the DATA bytes sent, and whether every stream is blocked."""
        size = 0
        waiting = False
        out = self._out = []
        try:
            while size < limit and self._consumerBlocked is None:
                size += self._send_frame(next(self.priority))
        except priority.DeadlockError:
            waiting = True
        finally:
            self._out = None
        out.append(self.conn.data_to_send())
        data = b"".join(out)
        if data and self._stillProducing:
            self._write(data)
        return size, waiting

    def _send_frame(self, stream_id: int) -> int:
        """Frame the head of ``stream_id``'s queue into the batch; the DATA bytes framed."""
        conn = self.conn
        queue = self._outboundStreamQueues[stream_id]
        if not queue:
            self.priority.block(stream_id)
            return 0
        head = queue[0]
        if head is _END_STREAM_SENTINEL:
            queue.popleft()
            self._through_h2(conn.end_stream, stream_id)
            self._requestDone(stream_id)
            return 0
        if head is _RESET_SENTINEL:
            queue.popleft()
            self.abortRequest(stream_id)  # its RST_STREAM follows the DATA in the batch
            return 0
        size = min(
            len(head), conn.max_outbound_frame_size, conn.local_flow_control_window(stream_id)
        )
        if size <= 0:
            self.priority.block(stream_id)  # until a WINDOW_UPDATE unblocks it
            return 0
        queue.popleft()
        if size < len(head):
            view = memoryview(head)
            queue.appendleft(view[size:])
            head = view[:size]
        self._queued[stream_id] -= size
        if stream_id in self._framing:
            self._frame_data(stream_id, head)
        else:
            # h2 sends a stream's first DATA frame, checking the stream may carry DATA.
            self._through_h2(conn.send_data, stream_id, head)
            self._framing.add(stream_id)
        if not queue:
            self.priority.block(stream_id)
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.update_producer()
        return size

    def _frame_data(self, stream_id: int, data: bytes | memoryview) -> None:
        """Frame ``data`` as one DATA frame of ``stream_id`` (RFC 9113 §4.1, §6.1: no flags,
        no padding) and debit h2's flow-control windows as its ``send_data`` would. Used
        once h2 has sent the stream's first DATA frame: in between, nothing but its end or
        its reset (after which nothing is framed for it) changes what h2 would check."""
        conn = self.conn
        size = len(data)
        conn.outbound_flow_control_window -= size
        conn.streams[stream_id].outbound_flow_control_window -= size
        out = self._out
        assert out is not None
        out.append(_DATA_HEADER.pack(size >> 8, size & 0xFF, 0, 0, stream_id))
        out.append(data)

    def _through_h2(self, send: Callable[..., None], *args: Any) -> None:
        """Call one of h2's sending methods mid-batch, keeping the frames in order."""
        out = self._out
        assert out is not None
        out.append(self.conn.data_to_send())
        send(*args)
        out.append(self.conn.data_to_send())

    # Graceful shutdown.

    def go_away(self) -> None:
        """Send ``GOAWAY`` (``NO_ERROR``) naming the last stream we took: the client opens no
        new stream here, the open ones run to their end, then the connection closes. Streams
        opened after it are refused (``REFUSED_STREAM``). Idempotent."""
        if self._going_away or not self._stillProducing:
            return
        self._going_away = True
        self._last_stream_id = int(self.conn.highest_inbound_stream_id)
        # h2's close_connection() would forbid sending on the open streams, so the frame is
        # written beside its state machine (RFC 9113 §6.8 lets them finish).
        frame = GoAwayFrame(stream_id=0, last_stream_id=self._last_stream_id, error_code=0)
        self._write_control(frame.serialize())
        if not self.streams:
            self._close()

    def _write(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(data)

    def _tryToWriteControlData(self) -> bool:
        out = self._out
        if out is not None:
            # Mid-batch (a producer resumed by the send loop wrote headers or was reset):
            # after the frames already in the batch, so a stream's frames stay in order.
            out.append(self.conn.data_to_send())
            return True
        return bool(super()._tryToWriteControlData())

    def _write_control(self, data: bytes) -> None:
        """Write a control frame now, or after the frames buffered while the transport
        pushes back."""
        if self._out is not None:
            self._out.append(data)
        elif self._consumerBlocked is None and not self._bufferedControlFrames:
            self._write(data)
        else:
            self._bufferedControlFrames.append(data)
            self._bufferedControlFrameBytes += len(data)

    def _close(self) -> None:
        """Close the connection once what is buffered has been sent."""
        transport = self.transport
        if self._closing or not self._stillProducing or transport is None:
            return
        self._closing = True
        pending = self.conn.data_to_send()  # frames of a batch being built
        if pending:
            transport.write(pending)
        # Written past the transport's pushback: we are closing, and they are small.
        while self._bufferedControlFrames:
            transport.write(self._bufferedControlFrames.popleft())
        self._bufferedControlFrameBytes = 0
        # A transport with a registered producer waits for it before it closes.
        IConsumer(transport).unregisterProducer()
        transport.loseConnection()
