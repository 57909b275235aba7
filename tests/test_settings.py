"""Engine settings (``twisted_stream._settings``)."""

from __future__ import annotations

from typing import Any

import pytest

from twisted_stream import StreamSettings, StreamSite
from twisted_stream._settings import DEFAULT_SETTINGS, settings_for


def test_defaults() -> None:
    """A 64 KiB buffer, 5 ms slices and 10 threads unless configured."""
    s = StreamSettings()
    assert (s.buffer_size, s.slice_seconds, s.thread_pool_size) == (65536, 0.005, 10)


@pytest.mark.parametrize(
    "bad", [{"buffer_size": 0}, {"slice_seconds": 0}, {"thread_pool_size": 0}]
)
def test_invalid_values_are_refused(bad: dict[str, Any]) -> None:
    """Non-positive values raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        StreamSettings(**bad)


def test_replace_ignores_none() -> None:
    """Per-call overrides replace only what was given."""
    s = StreamSettings(buffer_size=1000)
    assert s.replace(buffer_size=None) is s
    assert s.replace(buffer_size=10).buffer_size == 10


def test_site_settings_are_found_from_the_request() -> None:
    """A StreamSite's settings apply to its requests; a plain site gets the defaults."""

    class Req:
        site: Any = None

    req = Req()
    assert settings_for(req) is DEFAULT_SETTINGS
    req.site = StreamSite(None, settings=StreamSettings(buffer_size=7))  # type: ignore[arg-type]
    assert settings_for(req).buffer_size == 7
