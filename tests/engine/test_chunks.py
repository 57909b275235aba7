"""Turning yielded items into bytes (``twisted_stream._engine._chunks``)."""

from __future__ import annotations

import pytest

from twisted_stream import ChunkTypeError
from twisted_stream._engine._chunks import chunk_converter


def test_bytes_like_and_text_become_bytes() -> None:
    """bytes pass through, bytearray and memoryview are copied, str is encoded."""
    convert = chunk_converter("utf-8")
    data = b"abc"
    assert convert(data) is data
    buf = bytearray(b"xy")
    out = convert(buf)
    buf[0] = ord("Z")
    assert out == b"xy", "a copy: the source may reuse its buffer"
    assert convert(memoryview(b"mv")) == b"mv"
    assert convert("é") == "é".encode()


def test_charset_is_used_for_text() -> None:
    """str chunks are encoded with the response charset."""
    assert chunk_converter("latin-1")("é") == b"\xe9"


@pytest.mark.parametrize("item", [1, None, 1.5, object(), ["a"]])
def test_other_types_are_a_type_error_naming_the_type(item: object) -> None:
    """Anything else is a ChunkTypeError (a TypeError) whose message names the type."""
    with pytest.raises(TypeError) as info:
        chunk_converter("utf-8")(item)
    assert isinstance(info.value, ChunkTypeError)
    assert type(item).__qualname__ in str(info.value)
