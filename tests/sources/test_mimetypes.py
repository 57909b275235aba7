"""Tests for :mod:`twisted_stream._sources._mimetypes`: the fixed content-type table."""

from __future__ import annotations

import mimetypes
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_stream._sources._mimetypes import DEFAULT_TYPE, TYPES, guess_type, with_charset


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("feed.xml", "application/xml; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("photo.jpg", "image/jpeg"),
        ("photo.JPEG", "image/jpeg"),
        ("movie.mp4", "video/mp4"),
        ("font.woff2", "font/woff2"),
        ("archive.tar.gz", "application/gzip"),
        ("module.wasm", "application/wasm"),
        ("dir/sub.d/file.PDF", "application/pdf"),
    ],
)
def test_known_extensions(name: str, expected: str) -> None:
    """Known extensions map to their type, case-insensitively, text types with utf-8."""
    assert guess_type(name) == expected


@pytest.mark.parametrize("name", ["file.unknownext", "Makefile", ".bashrc", "file.", "a.d/b"])
def test_unknown_is_octet_stream(name: str) -> None:
    """Unknown or missing extensions are application/octet-stream, never text/html."""
    assert guess_type(name) == DEFAULT_TYPE == "application/octet-stream"


def test_custom_default_gets_charset_when_textual() -> None:
    """A caller's default type is used for unknown extensions, with a charset if textual."""
    assert guess_type("README", default="text/plain") == "text/plain; charset=utf-8"
    assert guess_type("blob", default="application/x-thing") == "application/x-thing"


def test_with_charset_leaves_parameters_alone() -> None:
    """A type that already has parameters, or is binary, is unchanged."""
    assert with_charset("text/plain; charset=latin-1") == "text/plain; charset=latin-1"
    assert with_charset("image/png") == "image/png"
    assert with_charset("TEXT/CSV") == "TEXT/CSV; charset=utf-8"


def test_host_mime_types_do_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a host type for an extension changes nothing: the table is fixed."""
    host_types = {**mimetypes.types_map, ".png": "text/html", ".unknownext": "text/html"}
    monkeypatch.setattr(mimetypes, "types_map", host_types)
    assert guess_type("a.png") == "image/png"
    assert guess_type("a.unknownext") == DEFAULT_TYPE


def test_table_shape() -> None:
    """Keys are lower-case dotted extensions; values are bare type/subtype pairs."""
    assert len(TYPES) >= 80
    for extension, media_type in TYPES.items():
        assert re.fullmatch(r"\.[a-z0-9]+", extension)
        assert re.fullmatch(r"[a-z]+/[a-z0-9.+-]+", media_type)


@given(st.text())
def test_guess_type_never_raises(name: str) -> None:
    """Any name gives a type/subtype string."""
    assert "/" in guess_type(name)
