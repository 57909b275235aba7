"""The HTML of the status page (``twisted_stream._ops._status_page``): tables formatted for
people, a named cell per column, the charts' places, and a policy that runs only the page's
own script and style."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from twisted_stream._ops._status_page import (
    COLUMNS,
    CONTENT_SECURITY_POLICY,
    render_page,
    stream_row_html,
    total_text,
)


def row(**values: Any) -> dict[str, Any]:
    base = {
        "id": 1,
        "path": "/big?x=<b>",
        "client": "127.0.0.1",
        "protocol": "HTTP/1.1",
        "kind": "download",
        "bytes_sent": 60_102_921,
        "rate": 1_234_567.0,
        "paused": False,
        "paused_for": 0.0,
        "stalled": False,
        "state": "streaming",
        "ttfb": 0.0042,
        "age": 65.0,
    }
    base.update(values)
    return base


def snapshot(*rows: dict[str, Any], **totals: float) -> dict[str, Any]:
    figures = {"streams_active": len(rows), "ttfb_seconds_count": 0, "ttfb_seconds_sum": 0.0}
    figures.update(totals)
    return {
        "active": len(rows),
        "shown": len(rows),
        "paused": 0,
        "stalled": 0,
        "streams": list(rows),
        "totals": figures,
    }


def cells(html: str) -> dict[str, str]:
    return dict(re.findall(r'<td data-col="(\w+)"[^>]*>(.*?)</td>', html))


def test_a_row_is_formatted_for_people() -> None:
    """Sizes, rates and durations read as people read them (``60.1 MB``, not ``60102921``);
    every cell names its column; the path is escaped."""
    found = cells(stream_row_html(row()))
    assert list(found) == [col for col, _ in COLUMNS]
    assert found["sent"] == "60.1 MB"
    assert found["rate"] == "1.23 MB/s"
    assert found["ttfb"] == "4.20 ms"
    assert found["age"] == "1 min 05 s"
    assert found["path"] == "/big?x=&lt;b&gt;"
    assert found["protocol"] == "HTTP/1.1" and found["kind"] == "download"


@pytest.mark.parametrize(
    ("values", "mark", "badge"),
    [
        ({}, "streaming", "streaming"),
        ({"state": "waiting"}, "waiting", "waiting"),
        ({"paused": True, "paused_for": 1.5, "state": "paused"}, "paused", "paused 1.50 s"),
        ({"paused": True, "paused_for": 12.0, "stalled": True}, "stalled", "stalled 12.0 s"),
    ],
)
def test_paused_and_stalled_rows_are_marked(values: dict[str, Any], mark: str, badge: str) -> None:
    """A row's class and badge say whether it is streaming, waiting for its source, paused
    by its client (for how long) or stalled."""
    html = stream_row_html(row(**values))
    assert html.startswith(f'<tr data-id="1" class="{mark}">')
    assert re.search(f'<span class="badge {mark}" title="[^"]+">{badge}</span>', html)


def test_time_to_first_byte_while_waiting() -> None:
    """Before its first byte a stream shows how long it has been waiting for it."""
    assert cells(stream_row_html(row(ttfb=None, age=2.5)))["ttfb"] == "waiting 2.50 s"


def test_totals_are_formatted() -> None:
    """Totals: counts with separators, bytes and durations for people, the mean time to
    first byte as a duration (a dash before any)."""
    totals = {"bytes_sent": 6.01e7, "streams_started": 12345, "paused_seconds": 75.0}
    assert total_text("bytes_sent", "bytes", totals) == "60.1 MB"
    assert total_text("streams_started", "count", totals) == "12,345"
    assert total_text("paused_seconds", "duration", totals) == "1 min 15 s"
    assert total_text("ttfb_average", "duration", totals) == "-"
    totals.update(ttfb_seconds_count=4, ttfb_seconds_sum=0.02)
    assert total_text("ttfb_average", "duration", totals) == "5.00 ms"


def test_render_page_without_streams() -> None:
    """The page renders for an idle site: no rows, no mean time to first byte yet, the
    three charts' places and the tiles."""
    page = render_page(snapshot())
    assert re.search(r'id="total-ttfb_average"[^>]*>-</td>', page)
    assert "<tbody></tbody>" in page
    for chart in ("throughput", "streams", "outcomes"):
        assert f'<svg id="chart-{chart}"' in page
    assert '<p id="shown">0 streams</p>' in page
    assert 'id="tile-rate">0 B/s<' in page


def test_policy_allows_exactly_the_inline_script_and_style() -> None:
    """The Content-Security-Policy names the SHA-256 of the page's one script and one style
    (no 'unsafe-inline'), so nothing else can run; the page fetches nothing from elsewhere."""
    page = render_page(snapshot(row()))
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"script-src 'sha256-{digest(script)}'" in CONTENT_SECURITY_POLICY
    assert f"style-src 'sha256-{digest(style)}'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing from another origin"
