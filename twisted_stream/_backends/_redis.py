"""The Redis channel backend: one Redis stream per channel, shared by every process.

Data model: channel ``name`` is the Redis stream ``twisted_stream:channel:<name>``. Publishing
is one ``XADD key MAXLEN ~ N * field value...``: Redis assigns the entry id (``<ms>-<seq>``),
once, centrally, in the order it receives the entries, and the stream is the replay history.
Each process has one reading connection blocked in ``XREAD BLOCK`` on the streams of the
channels it has subscribers for, from the last id it delivered (its *cursor*): live delivery
and catching up after an outage are the same read, so nothing published while this process
was away from Redis is lost as long as the stream still holds it. A resume
(``Last-Event-ID``) is an ``XRANGE`` up to the cursor; later entries come live.

Why a stream and not pub/sub plus a capped list: pub/sub forgets what a disconnected process
missed, so history and live delivery would be two sources to stitch together without gaps
or duplicates; with a stream they are one ordered log read from a position.

A second connection sends the commands (``XADD``, ``XRANGE``); a channel joining the read
wakes the blocked ``XREAD`` with ``CLIENT UNBLOCK``. Both connections reconnect by themselves
with back-off; while the command connection is down a publish fails at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from .._errors import ChannelBackendError
from .._sources._stream import default_reactor
from .._types import Reactor
from ._redis_address import RedisAddress
from ._redis_link import RedisConnection, RedisLink
from ._shared import Entry, FeedListener, Fields, Replayed

_log = Logger(namespace="twisted_stream.redis")

KEY_PREFIX = "twisted_stream:channel:"
MIN_KEPT = 1000
"""Each stream keeps at least this many entries (``MAXLEN ~``), whatever a channel's
``history``: a process reading a moment behind still finds every entry."""
BATCH = 1000
"""Most entries one ``XREAD`` returns per stream."""
DEFAULT_TIMEOUT = 5.0
"""Seconds to connect, and to wait for a command's reply, before giving up on the connection."""
BLOCK_MS = 10_000
"""How long one ``XREAD`` blocks; the reply timeout comes on top (a dead connection shows)."""
_ID = re.compile(r"\A(\d{1,20})-(\d{1,20})\Z")


def _id_key(entry_id: str) -> tuple[int, int]:
    found = _ID.match(entry_id)
    if found is None:
        raise ValueError(f"{entry_id!r} is not a Redis stream id")
    return int(found.group(1)), int(found.group(2))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _entries(raw: Any) -> list[Entry]:
    """``XRANGE``/``XREAD`` entries (``[[id, [field, value, ...]], ...]``) as :class:`Entry`."""
    found = []
    for entry_id, flat in raw or ():
        values = list(flat or ())
        found.append(Entry(_text(entry_id), tuple(zip(values[::2], values[1::2], strict=True))))
    return found


@dataclass
class _Feed:
    """The channels of one name this process listens to, and how far it has read."""

    name: str
    key: bytes
    listeners: list[FeedListener] = field(default_factory=list)
    cursor: str | None = None
    """Id of the last entry delivered; None until joined (the stream's last id then)."""
    waiting: list[Deferred[str]] = field(default_factory=list)
    """``position()`` calls waiting for the join."""


class RedisBackend:
    """Channels shared through the Redis server at ``url`` (``redis://host:port/db``).

    ``timeout``: seconds to connect and to wait for a reply; ``retry``: the first and the
    longest delay between reconnection attempts. Connections open when it is first used
    (or :meth:`start`) and close at reactor shutdown, after the services stopped (or
    :meth:`stop`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: tuple[float, float] = (0.1, 2.0),
        reactor: Reactor | None = None,
    ) -> None:
        self.address = RedisAddress.parse(url)
        self._reactor = default_reactor(reactor)
        self._timeout = timeout
        self._feeds: dict[str, _Feed] = {}
        self._by_key: dict[bytes, _Feed] = {}
        self._reader_id: int | None = None
        self._blocked = False
        self._reads = 0
        """How many XREADs were sent: tells an unblock which read it is for."""
        self._changed: Deferred[None] | None = None
        self._running = False
        self._reconnected = False
        self._loop: Deferred[None] | None = None
        common: dict[str, Any] = {"timeout": timeout, "retry": retry, "reactor": reactor}
        self._commands = RedisLink(self.address, name="commands", **common)
        self._reader = RedisLink(
            self.address,
            name="reader",
            prepare=self._prepare_reader,
            on_connect=self._reader_connected,
            **common,
        )

    def describe(self) -> str:
        return f"Redis at {self.address}"

    # Life.

    def start(self) -> None:
        """Open the connections (once); they close at reactor shutdown or :meth:`stop`."""
        if self._running:
            return
        self._running = True
        self._commands.start()
        self._reader.start()
        self._loop = Deferred.fromCoroutine(self._read_loop())
        # "during": after the "before" phase, where services drain their streams.
        self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> Deferred[None]:
        """Close both connections; listeners get nothing more."""
        if not self._running:
            return succeed(None)
        self._running = False
        self._wake()
        both = gatherResults([self._reader.stop(), self._commands.stop()], consumeErrors=True)
        return both.addCallback(lambda _: None)

    # Publishing and reading history.

    def append(self, name: str, fields: Fields, keep: int) -> Deferred[str]:
        self.start()
        flat: list[bytes] = [value for pair in fields for value in pair]
        command = ("XADD", self._key(name), "MAXLEN", "~", max(keep, MIN_KEPT), "*", *flat)

        def failed(failure: Failure) -> Failure:
            why = failure.getErrorMessage() or repr(failure.value)
            return Failure(self._error(f"publish on channel {name!r} failed: {why}"))

        return self._commands.execute(*command, wait=False).addCallbacks(_text, failed)

    def _error(self, message: str) -> ChannelBackendError:
        return ChannelBackendError(f"{self.describe()}: {message}")

    async def _command(self, *args: object) -> Any:
        """Run a read command, waiting for a connection if there is none (and once more if
        the connection is lost while it runs)."""
        from txredisapi import ResponseError

        self.start()
        while True:
            try:
                return await self._commands.execute(*args, wait=True)
            except ResponseError:
                raise  # Redis answered with an error
            except Exception:
                if not self._running:
                    raise
                # The connection went while the command waited: send it again.

    def read_range(self, name: str, after: str | None, upto: str) -> Deferred[Replayed]:
        return Deferred.fromCoroutine(self._read_range(name, after, upto))

    async def _read_range(self, name: str, after: str | None, upto: str) -> Replayed:
        key = self._key(name)
        if after is not None and _ID.match(after):
            if not self.precedes(upto, after):
                found = _entries(await self._command("XRANGE", key, after, upto))
                if found and found[0].id == after:
                    return Replayed(found[1:], True)
            elif await self._command("XRANGE", key, after, after):
                return Replayed([], True)  # newer than what this process has delivered
        return Replayed(_entries(await self._command("XRANGE", key, "-", upto)), False)

    def read_last(self, name: str, count: int, upto: str) -> Deferred[list[Entry]]:
        async def read() -> list[Entry]:
            raw = await self._command("XREVRANGE", self._key(name), upto, "-", "COUNT", count)
            return _entries(raw)[::-1]

        return Deferred.fromCoroutine(read())

    def precedes(self, first: str, second: str) -> bool:
        return _id_key(first) < _id_key(second)

    # Listening.

    def listen(self, name: str, listener: FeedListener) -> None:
        self.start()
        feed = self._feeds.get(name)
        if feed is None:
            key = self._key(name)
            feed = self._feeds[name] = self._by_key[key] = _Feed(name, key)
            Deferred.fromCoroutine(self._join(feed))
        feed.listeners.append(listener)

    def unlisten(self, name: str, listener: FeedListener) -> None:
        feed = self._feeds.get(name)
        if feed is None or listener not in feed.listeners:
            return
        feed.listeners.remove(listener)
        if not feed.listeners:
            # The blocked XREAD may still name its stream: its entries are then ignored.
            del self._feeds[name], self._by_key[feed.key]
            for waiting in feed.waiting:
                waiting.errback(CancelledError("nobody listens to the channel any more"))

    def position(self, name: str) -> Deferred[str]:
        feed = self._feeds.get(name)
        if feed is None:
            return fail(ValueError(f"nobody listens to channel {name!r}"))
        if feed.cursor is not None:
            return succeed(feed.cursor)
        waiting: Deferred[str] = Deferred()
        feed.waiting.append(waiting)
        return waiting

    def _key(self, name: str) -> bytes:
        return (KEY_PREFIX + name).encode("utf-8")

    def _wake(self) -> None:
        """Make the read loop look at the feeds again (a channel joined, or stopping)."""
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.callback(None)
        if self._blocked:
            self._unblock(self._reads)

    def _unblock(self, read: int, tries: int = 20) -> None:
        """End the blocked ``XREAD`` number ``read`` (``CLIENT UNBLOCK`` from the other
        connection). The unblock may reach Redis before the read it is meant for: it is
        then sent again, a few milliseconds later."""
        connection = self._commands.connection
        if connection is None or self._reader_id is None:
            return  # the read ends by itself after BLOCK_MS

        def answered(unblocked: object) -> None:
            if not unblocked and self._blocked and self._reads == read and tries > 0:
                self._reactor.callLater(0.005, self._unblock, read, tries - 1)

        try:
            sent = connection.execute_command("CLIENT", "UNBLOCK", self._reader_id)
        except Exception:
            return
        sent.addCallbacks(answered, lambda _: None)

    def _prepare_reader(self, connection: RedisConnection) -> Deferred[None]:
        async def identify() -> None:
            self._reader_id = await connection.execute_command("CLIENT", "ID")

        return Deferred.fromCoroutine(identify())

    def _reader_connected(self, connection: RedisConnection, reconnected: bool) -> None:
        self._reconnected = self._reconnected or reconnected

    async def _read_loop(self) -> None:
        while self._running:
            try:
                connection: RedisConnection = await self._reader.when_connected()
            except CancelledError:
                return  # stopped
            try:
                await self._serve(connection)
            except Exception as e:
                if not self._running:
                    return
                if self._reader.connection is connection:
                    # Redis answered with an error: log it, and do not spin on it.
                    _log.error(
                        "Reading channels from {where} failed: {e}", where=self.address, e=e
                    )
                    await deferLater(self._as_time(), 1.0, lambda: None)

    def _as_time(self) -> IReactorTime:
        return cast(IReactorTime, self._reactor)

    async def _serve(self, connection: RedisConnection) -> None:
        """Read every listened stream on ``connection`` until it fails."""
        if self._reconnected:
            self._reconnected = False
            await self._check_cursors(connection)
        while self._running:
            feeds = [f for f in self._feeds.values() if f.cursor is not None]
            if not feeds:
                self._changed = Deferred()
                await self._changed
                continue
            args: list[Any] = ["XREAD", "COUNT", BATCH, "BLOCK", BLOCK_MS, "STREAMS"]
            args += [f.key for f in feeds] + [f.cursor for f in feeds]
            self._blocked = True
            self._reads += 1
            try:
                reply = await self._with_timeout(
                    connection, connection.execute_command(*args, apply_timeout=False)
                )
            finally:
                self._blocked = False
            for key, raw in reply or ():
                read = self._by_key.get(key)
                if read is not None and read.cursor is not None:  # a rejoined one joins anew
                    self._deliver(read, _entries(raw))

    def _with_timeout(self, connection: RedisConnection, d: Deferred[Any]) -> Deferred[Any]:
        seconds = BLOCK_MS / 1000 + self._timeout

        def abandon(result: Any, timeout: float) -> Any:
            connection.transport.loseConnection()  # nothing left to send: it closes at once
            return result

        return d.addTimeout(seconds, self._as_time(), onTimeoutCancel=abandon)

    async def _join(self, feed: _Feed) -> None:
        """Start ``feed`` at the stream's last entry. Asked on the command connection, so a
        publish this process makes after a subscribe is read after this (and delivered)."""
        while self._running and self._feeds.get(feed.name) is feed:
            try:
                raw = await self._command("XREVRANGE", feed.key, "+", "-", "COUNT", 1)
            except Exception as e:
                _log.error("Joining channel {name} on {at} failed: {e}", name=feed.name,
                           at=self.address, e=e)  # fmt: skip
                await deferLater(self._as_time(), 1.0, lambda: None)
                continue
            found = _entries(raw)
            feed.cursor = found[0].id if found else "0-0"
            waiting, feed.waiting = feed.waiting, []
            for d in waiting:
                d.callback(feed.cursor)
            self._wake()
            return

    async def _check_cursors(self, connection: RedisConnection) -> None:
        """After a reconnection: a feed whose last entry is gone from its stream (trimmed
        while we were away, or Redis lost its data) may have missed entries."""
        for feed in list(self._feeds.values()):
            cursor = feed.cursor
            if cursor is None or cursor == "0-0":
                continue
            if not await connection.execute_command("XRANGE", feed.key, cursor, cursor):
                for listener in list(feed.listeners):
                    listener.gap()

    def _deliver(self, feed: _Feed, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        feed.cursor = entries[-1].id
        for listener in list(feed.listeners):
            try:
                listener.entries(entries)
            except Exception:
                _log.failure("A channel failed to take its events")
