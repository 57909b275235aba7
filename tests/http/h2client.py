"""A real HTTP/2 client for tests: the ``h2`` library on a TLS socket that negotiated ``h2``
by ALPN. It blocks, so a test runs its methods in a thread (``deferToThread``) while the
server runs on the reactor; one thread at a time uses a client."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, GoAwayFrame

DEFAULT_WINDOW = 65535
_GOAWAY = 0x7


class GoAwaySplitter:
    """Takes GOAWAY frames out of the bytes a server sends.

    The ``h2`` library treats a GOAWAY it receives as the end of the connection and rejects
    every later frame, while RFC 9113 §6.8 lets the streams below the GOAWAY's last stream
    id finish (as browsers and curl do): a test client hands ``h2`` the other frames and
    records the GOAWAYs itself.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.goaways: list[GoAwayFrame] = []

    def feed(self, data: bytes) -> bytes:
        """The frames of ``data`` (with what was buffered) other than GOAWAY, up to the last
        whole frame."""
        buffer = self._buffer
        buffer += data
        out = bytearray()
        at = 0
        while len(buffer) - at >= 9:
            length = int.from_bytes(buffer[at : at + 3], "big")
            end = at + 9 + length
            if len(buffer) < end:
                break
            if buffer[at + 3] == _GOAWAY:
                frame, _ = Frame.parse_frame_header(memoryview(bytes(buffer[at : at + 9])))
                frame.parse_body(memoryview(bytes(buffer[at + 9 : end])))
                assert isinstance(frame, GoAwayFrame)
                self.goaways.append(frame)
            else:
                out += buffer[at:end]
            at = end
        del buffer[:at]
        return bytes(out)


@dataclass
class Response:
    """What one stream received."""

    status: int | None = None
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    received: int = 0
    ended: bool = False
    reset: int | None = None
    """The RST_STREAM error code, if the server reset the stream."""
    informational: list[int] = field(default_factory=list)
    """The 1xx statuses received before the response (``100`` for ``100 Continue``)."""

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    """One HTTP/2 connection to ``127.0.0.1:port`` trusting the certificate ``cafile``.

    ``window`` is the flow-control window granted to the server, per stream
    (SETTINGS_INITIAL_WINDOW_SIZE) and for the connection (WINDOW_UPDATE). ``rcvbuf`` sets
    ``SO_RCVBUF`` before connecting, bounding what the kernel holds for a client that does
    not read. With ``acknowledge`` the client hands back window for what it reads; with
    ``keep_body`` it keeps the bytes, not only their count.
    """

    def __init__(
        self,
        port: int,
        cafile: Path,
        *,
        window: int = DEFAULT_WINDOW,
        rcvbuf: int | None = None,
        acknowledge: bool = True,
        keep_body: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.port = port
        self.cafile = cafile
        self.window = window
        self.rcvbuf = rcvbuf
        self.acknowledge = acknowledge
        self.keep_body = keep_body
        self.timeout = timeout
        self.responses: dict[int, Response] = {}
        self.window_updates: dict[int, int] = {}
        """Window opened by the server's WINDOW_UPDATE frames, per stream (0: the
        connection)."""
        self.frames = GoAwaySplitter()
        self.closed = False
        self.local_port = 0
        self._sock: ssl.SSLSocket | None = None
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )

    # Blocking operations (run them in a thread).

    def connect(self) -> str | None:
        """Connect, handshake and send the preface; the protocol ALPN selected."""
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as real clients do
        raw.settimeout(self.timeout)
        raw.connect(("127.0.0.1", self.port))
        self.local_port = raw.getsockname()[1]
        context = ssl.create_default_context(cafile=str(self.cafile))
        context.set_alpn_protocols(["h2", "http/1.1"])
        self._sock = context.wrap_socket(raw, server_hostname="localhost")
        selected = self._sock.selected_alpn_protocol()
        if selected != "h2":
            return selected
        conn = self._conn
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.window},
        )
        conn.initiate_connection()
        if self.window > DEFAULT_WINDOW:
            conn.increment_flow_control_window(self.window - DEFAULT_WINDOW)
        self._flush()
        return selected

    def get(self, path: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> int:
        """Send ``GET path``; the stream id."""
        stream_id = int(self._conn.get_next_available_stream_id())
        self.responses[stream_id] = Response()
        self._conn.send_headers(
            stream_id,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
                *headers,
            ],
            end_stream=True,
        )
        self._flush()
        return stream_id

    def request(self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> int:
        """Send the headers of ``method path`` with a body to follow; the stream id."""
        stream_id = int(self._conn.get_next_available_stream_id())
        self.responses[stream_id] = Response()
        self._conn.send_headers(
            stream_id,
            [
                (b":method", method.encode()),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
                *headers,
            ],
        )
        self._flush()
        return stream_id

    def send_window(self, stream_id: int) -> int:
        """What the server's windows let this client send on ``stream_id`` now."""
        return int(self._conn.local_flow_control_window(stream_id))

    def send_data(
        self, stream_id: int, data: bytes, *, end: bool = True, stall: float | None = None
    ) -> int:
        """Send ``data`` on ``stream_id`` as the server's flow-control windows allow, reading
        its frames (WINDOW_UPDATE, the response) meanwhile, then END_STREAM with ``end``.
        With ``stall``, give up once no window opened for that many seconds; the bytes sent
        (all of them unless it stalled, the stream was reset or the response ended)."""
        sock = self._sock
        assert sock is not None
        sent = 0
        waited_since = time.monotonic()
        response = self.responses[stream_id]
        while sent < len(data) and response.reset is None and not self.closed:
            room = min(self.send_window(stream_id), self._conn.max_outbound_frame_size)
            if room > 0:
                chunk = data[sent : sent + room]
                self._conn.send_data(stream_id, chunk)
                self._flush()
                sent += len(chunk)
                waited_since = time.monotonic()
                continue
            if stall is not None and time.monotonic() - waited_since > stall:
                return sent
            assert time.monotonic() - waited_since < self.timeout, "the window never opened"
            sock.settimeout(0.05)
            try:
                received = sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError):
                received = b""
            finally:
                sock.settimeout(self.timeout)
            if not received:
                self.closed = True
                break
            self._handle(self._conn.receive_data(self.frames.feed(received)))
            self._flush()
        if end and sent == len(data) and response.reset is None and not self.closed:
            self._conn.end_stream(stream_id)
            self._flush()
        return sent

    def get_many(self, paths: Iterable[str]) -> list[int]:
        """Send ``GET`` for each of ``paths`` at once; their stream ids."""
        return [self.get(path) for path in paths]

    def reset(self, stream_id: int, code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        """Send RST_STREAM for ``stream_id``."""
        self._conn.reset_stream(stream_id, error_code=code)
        self._flush()

    def read_until(self, condition: Callable[[], bool], timeout: float | None = None) -> None:
        """Read and handle frames until ``condition()`` holds; AssertionError after
        ``timeout`` seconds or if the connection closes first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        sock = self._sock
        assert sock is not None
        while not condition():
            if self.closed:
                raise AssertionError("the server closed the connection")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {condition}")
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                continue
            self._handle(self._conn.receive_data(self.frames.feed(data)))
            self._flush()

    def read_for(self, seconds: float) -> None:
        """Read and handle whatever frames arrive for ``seconds`` (to show that something
        does not come)."""
        sock = self._sock
        assert sock is not None
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            finally:
                sock.settimeout(self.timeout)
            if not data:
                self.closed = True
                break
            self._handle(self._conn.receive_data(self.frames.feed(data)))
            self._flush()

    def read_to_close(self, timeout: float | None = None) -> None:
        """Read until the server closes the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        sock = self._sock
        assert sock is not None
        while not self.closed:
            assert time.monotonic() < deadline, "the server never closed the connection"
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                break
            self._handle(self._conn.receive_data(self.frames.feed(data)))
            self._flush()

    def close(self) -> None:
        """Drop the connection (no GOAWAY), as a client that goes away does."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # Internals.

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and self._sock is not None:
            self._sock.sendall(data)

    def _handle(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.ResponseReceived):
                response = self.responses[event.stream_id]
                response.headers = dict(event.headers)
                response.status = int(response.headers[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                response = self.responses[event.stream_id]
                response.received += len(event.data)
                if self.keep_body:
                    response.body += event.data
                if self.acknowledge:
                    self._conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            elif isinstance(event, h2.events.StreamEnded):
                self.responses[event.stream_id].ended = True
            elif isinstance(event, h2.events.InformationalResponseReceived):
                status = dict(event.headers)[b":status"]
                self.responses[event.stream_id].informational.append(int(status))
            elif isinstance(event, h2.events.WindowUpdated):
                opened = self.window_updates.get(event.stream_id, 0) + int(event.delta)
                self.window_updates[event.stream_id] = opened
            elif isinstance(event, h2.events.StreamReset):
                if event.stream_id in self.responses:
                    self.responses[event.stream_id].reset = int(event.error_code)
