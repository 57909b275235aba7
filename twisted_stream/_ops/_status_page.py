"""The HTML of the live status page (:mod:`._status`): complete as served, then kept live,
with its charts drawn, by its script (``_status_page.js``, styled by ``_status_page.css``,
both inlined: the page fetches nothing but its own event stream).

The server renders the tables with the formatting of :mod:`twisted_stream._format`; the
script formats live values by the same rules. Every cell of a stream row carries its column
name in ``data-col``, so a column can be added (or read by a test) by name.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from html import escape
from importlib.resources import files
from string import Template
from typing import Any

from .._engine._outcome import Outcome
from .._format import format_bytes, format_count, format_duration, format_rate
from ._status_snapshot import HISTORY_SECONDS


def script_json(value: object) -> str:
    """Compact JSON that is also safe inside an HTML ``<script>`` element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


_SCRIPT = _asset("_status_page.js")
_STYLE = _asset("_status_page.css")


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
    "img-src data:; connect-src 'self'"
)
"""Only the page's own script and style run; it connects only to its own feed."""

_TOTALS = (
    ("streams_active", "active", "count"),
    ("streams_started", "started", "count"),
    ("streams_completed", "completed", "count"),
    ("streams_client_gone", "ended by the client", "count"),
    ("streams_source_failed", "failed", "count"),
    ("streams_stalled", "stalled", "count"),
    ("streams_aborted", "aborted", "count"),
    ("streams_rejected", "rejected", "count"),
    ("bytes_sent", "bytes sent", "bytes"),
    ("uploads_active", "uploads being received", "count"),
    ("uploads_started", "uploads started", "count"),
    ("bytes_received", "bytes received by uploads", "bytes"),
    ("pauses", "pauses", "count"),
    ("paused_seconds", "time paused", "duration"),
    ("ttfb_seconds_count", "first bytes timed", "count"),
    ("ttfb_average", "mean time to first byte", "duration"),
)

COLUMNS = (
    ("path", "path"),
    ("client", "client"),
    ("protocol", "protocol"),
    ("kind", "kind"),
    ("sent", "bytes"),
    ("rate", "rate"),
    ("state", "state"),
    ("ttfb", "first byte"),
    ("age", "age"),
)
"""(``data-col``, heading) of each column of the streams table."""

_NUMERIC = {col: ' class="num"' for col in ("sent", "rate", "ttfb", "age")}

_OUTCOME_LABELS = {
    Outcome.COMPLETED: "completed",
    Outcome.CLIENT_GONE: "client gone",
    Outcome.SOURCE_FAILED: "source failed",
    Outcome.STALLED: "stalled",
    Outcome.ABORTED: "aborted",
    Outcome.REJECTED: "rejected",
}

_ICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Cpath d='M1 12 L5 7 L8 10 L15 3' fill='none' stroke='%231d4ed8' stroke-width='2'/%3E"
    "%3C/svg%3E"
)


HINTS = {
    "streaming": "sending: its client reads as fast as it is sent",
    "waiting": "waiting for its source to produce the next bytes",
    "paused": "paused: its client is not reading (the engine pulls nothing meanwhile)",
    "stalled": "stalled: paused with nothing sent for a while; the engine aborts it after "
    "stall_timeout",
    "upload streaming": "receiving: the application reads the body as fast as it comes",
    "upload waiting": "waiting for the client to send more of the body",
    "upload paused": "paused: the application has not asked for more, so the body is not "
    "read (the client is held back)",
}
"""What each state badge means, shown on hover."""


def condition(row: Mapping[str, Any]) -> str:
    """``stalled``, ``paused``, ``waiting`` (for its source) or ``streaming``."""
    if row["stalled"]:
        return "stalled"
    if row["paused"]:
        return "paused"
    return "waiting" if row["state"] == "waiting" else "streaming"


def _cell(col: str, text: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<td data-col="{col}"{klass}>{escape(text)}</td>'


def stream_row_html(row: Mapping[str, Any]) -> str:
    """One row of the streams table, as the script also builds it."""
    kind = condition(row)
    badge = (
        f"{kind} {format_duration(row['paused_for'])}" if kind in ("paused", "stalled") else kind
    )
    upload = row["kind"] == "upload"
    hint = HINTS.get(f"{row['kind']} {kind}", HINTS[kind])
    moved = row["bytes_received"] if upload else row["bytes_sent"]
    if upload:
        ttfb = _cell("ttfb", "-", "num")
    elif row["ttfb"] is None:
        ttfb = _cell("ttfb", f"waiting {format_duration(row['age'])}", "num pending")
    else:
        ttfb = _cell("ttfb", format_duration(row["ttfb"]), "num")
    return (
        f'<tr data-id="{int(row["id"])}" class="{kind}">'
        + _cell("path", row["path"])
        + _cell("client", row["client"])
        + _cell("protocol", row["protocol"])
        + _cell("kind", row["kind"])
        + _cell("sent", format_bytes(moved), "num")
        + _cell("rate", format_rate(row["rate"]), "num")
        + f'<td data-col="state"><span class="badge {kind}" title="{escape(hint)}">'
        + f"{escape(badge)}</span></td>"
        + ttfb
        + _cell("age", format_duration(row["age"]), "num")
        + (_cell("worker", str(row["worker"]), "num") if "worker" in row else "")
        + "</tr>"
    )


def total_text(key: str, kind: str, totals: Mapping[str, float]) -> str:
    """One figure of the totals table for people."""
    if key == "ttfb_average":
        count = totals.get("ttfb_seconds_count", 0)
        return format_duration(totals.get("ttfb_seconds_sum", 0) / count) if count else "-"
    value = totals.get(key, 0)
    if kind == "bytes":
        return format_bytes(value)
    if kind == "duration":
        return format_duration(value)
    return format_count(int(value))


def shown_text(snap: Mapping[str, Any]) -> str:
    uploads = snap.get("uploads", 0)
    tail = f", {format_count(uploads)} upload{'' if uploads == 1 else 's'}" if uploads else ""
    if snap["shown"] < snap["active"]:
        return (
            f"showing the {format_count(snap['shown'])} oldest of "
            f"{format_count(snap['active'])} streams{tail}"
        )
    return f"{format_count(snap['active'])} stream{'' if snap['active'] == 1 else 's'}{tail}"


def render_page(snap: Mapping[str, Any], window: float = HISTORY_SECONDS) -> str:
    """The HTML page for the snapshot ``snap``, with the script that keeps it live and
    charts covering ``window`` seconds."""
    # Under --workers N every stream row names its worker.
    columns = (*COLUMNS, ("worker", "worker")) if "workers" in snap else COLUMNS
    totals = snap["totals"]
    count = totals.get("ttfb_seconds_count", 0)
    outcomes = [[outcome.value, label] for outcome, label in _OUTCOME_LABELS.items()]
    return _PAGE.substitute(
        style=_STYLE,
        script=_SCRIPT,
        icon=_ICON,
        window=f"{window:g}",
        window_text=escape(_window_text(window)),
        hints=escape(json.dumps(HINTS)),
        outcomes=escape(json.dumps(outcomes)),
        outcome_keys="".join(
            f'<span class="key {value}">{escape(label)}</span>' for value, label in outcomes
        ),
        tiles="\n".join(
            f'<div class="tile"><span class="label">{escape(label)}</span>'
            f'<span class="value" id="tile-{key}">{escape(value)}</span></div>'
            for key, label, value in (
                (
                    "rate",
                    "throughput",
                    format_rate(
                        sum(row["rate"] for row in snap["streams"] if row["kind"] != "upload")
                    ),
                ),
                ("active", "active streams", format_count(snap["active"])),
                ("paused", "paused by their client", format_count(snap["paused"])),
                ("stalled", "stalled", format_count(snap["stalled"])),
                ("sent", "sent in all", format_bytes(totals.get("bytes_sent", 0))),
                (
                    "ttfb",
                    "mean time to first byte",
                    format_duration(totals.get("ttfb_seconds_sum", 0) / count) if count else "-",
                ),
            )
        ),
        head="".join(
            f'<th data-col="{col}"{_NUMERIC.get(col, "")}>{escape(title)}</th>'
            for col, title in columns
        ),
        rows="".join(stream_row_html(row) for row in snap["streams"]),
        shown=escape(shown_text(snap)),
        totals="".join(
            f'<tr><th>{escape(label)}</th><td id="total-{key}" data-key="{key}" '
            f'data-format="{kind}">{escape(total_text(key, kind, totals))}</td></tr>'
            for key, label, kind in _TOTALS
        ),
    )


def _window_text(window: float) -> str:
    if window >= 120 and window % 60 == 0:
        return f"{window / 60:g} minutes"
    return f"{window:g} seconds"


def _chart(chart_id: str, caption: str, legend: str = "") -> str:
    return (
        f"<figure><figcaption>{caption}</figcaption>"
        f'<svg id="chart-{chart_id}" viewBox="0 0 380 150" role="img" '
        f'aria-label="{caption}"></svg>{legend}</figure>'
    )


_PAGE = Template(
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>twisted_stream status</title>
<link rel="icon" href="$icon">
<style>$style</style></head>
<body data-window="$window" data-outcomes="$outcomes" data-hints="$hints">
<header><h1>Streams</h1>
<p id="feed-state">snapshot (connecting to the live feed&hellip;)</p></header>
<section id="tiles">
$tiles
</section>
<section id="charts">
"""
    + _chart("throughput", "Throughput, last $window_text")
    + _chart(
        "streams",
        "Streams: active, paused, stalled",
        '<div class="legend"><span class="key active">active</span>'
        '<span class="key paused">paused</span><span class="key stalled">stalled</span></div>',
    )
    + _chart(
        "outcomes", "How streams ended, per interval", '<div class="legend">$outcome_keys</div>'
    )
    + """
<noscript><p>The charts and live updates need JavaScript; the tables below are a snapshot:
reload to refresh.</p></noscript>
</section>
<h2>Active streams</h2>
<p id="shown">$shown</p>
<table id="streams"><thead><tr>$head</tr></thead><tbody>$rows</tbody></table>
<h2>Totals</h2>
<table id="totals"><tbody>$totals</tbody></table>
<script>$script</script>
</body></html>
"""
)
