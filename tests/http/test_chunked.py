"""The chunked decoder of upstream responses (``_http/_chunked.py``), checked against
Twisted's ``_ChunkedTransferDecoder`` as request bodies use it (with ``strict_trailers``):
the same data, end, rest and refusals for well-formed bodies split anywhere and for
corrupted ones (Hypothesis); and the trailer lines both refuse."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.web.http import _ChunkedTransferDecoder, _DataLoss, _MalformedChunkedDataError

from twisted_stream._http._chunked import ChunkedDecoder, strict_trailers


class Run:
    """What a decoder did with some reads: the data, the calls, the end and the refusal."""

    def __init__(self, kind: Any, reads: list[bytes]) -> None:
        self.data = bytearray()
        self.calls = 0
        self.rest: bytes | None = None
        """What followed the body in the read that ended it."""
        self.after = b""
        """That and the reads after it: what the next response would start with."""
        self.error: type[BaseException] | None = None
        decoder = kind(self._data, self._finish)
        try:
            for i, read in enumerate(reads):
                decoder.dataReceived(read)
                if self.rest is not None:
                    self.after = self.rest + b"".join(reads[i + 1 :])
                    break
            if self.rest is None:
                decoder.noMoreData()
        except (_MalformedChunkedDataError, _DataLoss) as e:
            self.error = type(e)

    def _data(self, data: bytes) -> None:
        self.data += data
        self.calls += 1

    def _finish(self, rest: bytes) -> None:
        self.rest = rest

    def outcome(self) -> tuple[bytes, bytes | None, type[BaseException] | None]:
        return bytes(self.data), self.rest, self.error

    def whole(self) -> tuple[bytes, bytes, type[BaseException] | None]:
        return bytes(self.data), self.after, self.error


def strict_twisted(data: Any, finish: Any) -> _ChunkedTransferDecoder:
    """Twisted's decoder as the channel uses it for request bodies."""
    decoder = _ChunkedTransferDecoder(data, finish)
    strict_trailers(decoder)
    return decoder


def encode(
    chunks: list[bytes], extensions: list[bytes], trailers: list[bytes], tail: bytes
) -> bytes:
    out = bytearray()
    for i, chunk in enumerate(chunks):
        ext = extensions[i % len(extensions)] if extensions else b""
        out += b"%x%s\r\n%s\r\n" % (len(chunk), ext, chunk)
    out += b"0\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n" + tail
    return bytes(out)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


CHUNKS = st.lists(st.binary(min_size=1, max_size=300), max_size=20)
EXTENSIONS = st.lists(st.sampled_from([b"", b";a=b", b";name", b';q="x y"', b"; x=1"]), max_size=3)
TRAILERS = st.lists(st.sampled_from([b"X-Sum: 1", b"Expires: never"]), max_size=2)


@settings(max_examples=300, deadline=None)
@given(CHUNKS, EXTENSIONS, TRAILERS, st.binary(max_size=20), st.lists(st.integers(0, 10_000)))
def test_well_formed_bodies_split_anywhere_match_twisted(
    chunks: list[bytes],
    extensions: list[bytes],
    trailers: list[bytes],
    tail: bytes,
    cuts: list[int],
) -> None:
    """Any well-formed body, split into reads anywhere, gives the chunks' data, the end and
    what followed it, exactly as Twisted's decoder does; never more calls than reads."""
    reads = split(encode(chunks, extensions, trailers, tail), cuts)
    ours = Run(ChunkedDecoder, reads)
    assert ours.whole() == (b"".join(chunks), tail, None)
    assert ours.outcome() == Run(strict_twisted, reads).outcome()
    assert ours.calls <= len(reads)


@settings(max_examples=500, deadline=None)
@given(
    CHUNKS,
    EXTENSIONS,
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=3),
    st.lists(st.integers(0, 10_000), max_size=4),
)
def test_corrupted_bodies_are_refused_as_twisted_refuses_them(
    chunks: list[bytes], extensions: list[bytes], at: int, junk: bytes, cuts: list[int]
) -> None:
    """A body with bytes replaced anywhere is refused, ended or cut short exactly as by
    Twisted's decoder, with the same data handed over before."""
    body = bytearray(encode(chunks, extensions, [], b""))
    at %= len(body)
    body[at : at + len(junk)] = junk
    reads = split(bytes(body), cuts)
    assert Run(ChunkedDecoder, reads).outcome() == Run(strict_twisted, reads).outcome()


@pytest.mark.parametrize(
    "body",
    [
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5;\x00\r\nhello\r\n0\r\n\r\n",
        b"1" * 1100 + b"\r\n",
        b"0\r\n" + b"X: y\r\n" * 12000 + b"\r\n",
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    """Signs, prefixes, spaces, a missing CRLF, control characters in extensions, a size line
    over 1024 bytes and trailers over 64 KiB are refused, as Twisted refuses them."""
    assert Run(ChunkedDecoder, [body]).error is _MalformedChunkedDataError
    assert Run(_ChunkedTransferDecoder, [body]).error is _MalformedChunkedDataError


NEXT = b"POST /victim HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"


@pytest.mark.parametrize(
    "trailers",
    [
        b"X: a\n\r\n",  # a bare LF ends the trailer line for a lenient peer
        b"\n",  # a bare LF ends the body for a lenient peer
        b"\r",  # a bare CR
        b"X: a\rb\r\n\r\n",
        b"X: a\x00b\r\n\r\n",
        b"GARBAGE LINE\r\n\r\n",
        b"X : a\r\n\r\n",  # whitespace before the colon
        b"X: a\r\n b\r\n\r\n",  # obs-fold
        b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
)
@pytest.mark.parametrize("read", ["whole", "bytewise"])
def test_a_trailer_line_that_is_not_a_field_line_is_refused(trailers: bytes, read: str) -> None:
    """A trailer section whose lines are not field lines (RFC 9112 §7.1.2), or that holds a
    bare CR or LF (which a lenient parser takes as a line end, so the message would end in
    two places: smuggling), is refused by both decoders, before the next message's bytes
    are read as trailers; fed byte by byte, as soon as the bad byte is there. (Twisted's own
    decoder takes the first five as trailer lines.)"""
    body = b"5\r\nhello\r\n0\r\n" + trailers
    reads = [body + NEXT] if read == "whole" else [bytes([b]) for b in body + NEXT]
    for kind in (ChunkedDecoder, strict_twisted):
        run = Run(kind, reads)
        assert run.error is _MalformedChunkedDataError, (kind, run.outcome())
        assert run.rest is None


def test_many_small_chunks_are_handed_over_once_per_read() -> None:
    """A read of a thousand 100-byte chunks is one data call; a body that ends early is
    data loss; reading after the end is a programming error."""
    body = encode([b"x" * 100] * 1000, [], [], b"")
    run = Run(ChunkedDecoder, [body])
    assert (run.calls, len(run.data), run.rest) == (1, 100_000, b"")
    assert Run(ChunkedDecoder, [body[:-5]]).error is _DataLoss
    decoder = ChunkedDecoder(lambda data: None, lambda rest: None)
    decoder.dataReceived(b"0\r\n\r\n")
    with pytest.raises(RuntimeError):
        decoder.dataReceived(b"more")
