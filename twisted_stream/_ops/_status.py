"""The live status page of a :class:`~twisted_stream.StreamSite`.

:class:`StatusResource` answers:

- ``GET PATH``: an HTML page listing the active streams (path, client, bytes sent, current
  rate, paused or not, age) and the site's totals (the figures of :mod:`._metrics`). It is
  complete as served (it works without JavaScript) and then kept live by a script reading
  the event stream below;
- ``GET PATH?events``: an event stream (:func:`~._events.stream_events`) that sends one
  snapshot (JSON in a ``data:`` line) at once and one every ``interval`` seconds; it is a
  stream of the engine like any other, so it has flow control, a slow viewer is held to
  its pace, and graceful shutdown ends it cleanly;
- ``GET PATH?json``: one snapshot as ``application/json``.

A snapshot lists at most ``max_rows`` streams (oldest first; ``shown`` < ``active`` says some
were left out); the totals always cover all of them. The "current rate" is the bytes a stream
sent since the previous snapshot of the same feed divided by the time between them (for a
stream seen for the first time, and in ``?json``, its average since it started). The event
streams of the status page are streams of the site like any other: they appear in the list
and the totals.

The page shows client addresses and request paths: mount it where only operators reach it.
:class:`~._mounts.Mounts` puts it (and :class:`~._prometheus.MetricsResource`) at a path in
front of any root resource, a leaf such as ``FileResource`` included.
"""

from __future__ import annotations

import itertools
import json
import time
import weakref
from collections.abc import Iterator, Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from twisted.internet.task import deferLater
from twisted.web.resource import Resource

from .._events._event_stream import Event, stream_events
from ._site import StreamSite

if TYPE_CHECKING:
    from .._engine._stream import Stream

DEFAULT_INTERVAL = 1.0
"""Seconds between two snapshots of the live feed."""
DEFAULT_MAX_ROWS = 500
"""Most streams listed in one snapshot."""
RECONNECT_MS = 2000
"""How long a browser waits before reconnecting a lost feed (the event stream's ``retry``)."""

_JSON = "application/json; charset=utf-8"


class _Rates:
    """Bytes per second of each stream between two snapshots of one feed."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, float]] = {}

    def rate(self, key: int, stream: Stream, now: float) -> float:
        sent = stream.bytes_sent
        previous = self._last.get(key)
        self._last[key] = (sent, now)
        if previous is None:
            age = stream.age
            return sent / age if age > 0 else 0.0
        elapsed = now - previous[1]
        return (sent - previous[0]) / elapsed if elapsed > 0 else 0.0

    def forget_except(self, keys: set[int]) -> None:
        for key in [k for k in self._last if k not in keys]:
            del self._last[key]


class StatusResource(Resource):
    """The live status page of ``site`` (None: of the site serving each request).

    ``interval`` is the seconds between two snapshots of the live feed (keep it below the
    site's ``idle_timeout``, if one is set: the feed is a stream like any other); ``max_rows``
    the most streams one snapshot lists.
    """

    isLeaf = True

    def __init__(
        self,
        site: StreamSite | None = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_rows: int = DEFAULT_MAX_ROWS,
        reactor: Any = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if max_rows < 0:
            raise ValueError(f"max_rows must not be negative, not {max_rows}")
        self.site = site
        self.interval = interval
        self.max_rows = max_rows
        self._reactor = reactor
        self._ids: weakref.WeakKeyDictionary[Stream, int] = weakref.WeakKeyDictionary()
        self._next_id = itertools.count(1)

    # Snapshots.

    def _site_for(self, request: Any) -> StreamSite | None:
        site = self.site if self.site is not None else getattr(request, "site", None)
        return site if isinstance(site, StreamSite) else None

    def _id(self, stream: Stream) -> int:
        found = self._ids.get(stream)
        if found is None:
            found = self._ids[stream] = next(self._next_id)
        return found

    def snapshot(self, site: StreamSite, rates: _Rates | None = None) -> dict[str, Any]:
        """The site's active streams and totals as a JSON-ready mapping."""
        active = list(site.active_streams)
        now = time.monotonic()
        listed = sorted(active, key=lambda s: s.started_at)[: self.max_rows]
        streams = []
        for stream in listed:
            key = self._id(stream)
            age = max(0.0, now - stream.started_at)
            if rates is not None:
                rate = rates.rate(key, stream, now)
            else:
                rate = stream.bytes_sent / age if age > 0 else 0.0
            streams.append(
                {
                    "id": key,
                    "path": stream.path,
                    "client": stream.client,
                    "bytes_sent": stream.bytes_sent,
                    "rate": round(rate, 1),
                    "paused": stream.paused,
                    "state": stream.state.value,
                    "age": round(age, 3),
                }
            )
        if rates is not None:
            rates.forget_except({self._id(s) for s in listed})
        totals = site.metrics.snapshot(active)
        return {
            "time": time.time(),
            "active": len(active),
            "shown": len(streams),
            "streams": streams,
            "totals": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in totals.items()},
        }

    # Rendering.

    def render_GET(self, request: Any) -> bytes | int:
        site = self._site_for(request)
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        if request.postpath not in ([], [b""]):
            return _plain(request, 404, "Not Found")
        if site is None:
            return _plain(request, 500, "No status: this site is not a twisted_stream StreamSite.")
        asked = _query_names(request)
        if b"events" in asked:
            request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
            if request.method == b"HEAD":
                return b""
            return self._feed(request, site)
        if b"json" in asked:
            request.setHeader(b"content-type", _JSON.encode("ascii"))
            return _json(self.snapshot(site)).encode("utf-8") + b"\n"
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(
            b"content-security-policy",
            b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            b"connect-src 'self'",
        )
        return render_page(self.snapshot(site)).encode("utf-8")

    def _feed(self, request: Any, site: StreamSite) -> int:
        # No heartbeat: a snapshot goes out every interval anyway.
        return stream_events(
            request, self._events(site), heartbeat=None, retry=RECONNECT_MS, reactor=self._clock()
        )

    def _clock(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            return reactor
        return self._reactor

    def _events(self, site: StreamSite) -> Iterator[object]:
        """The feed: a snapshot now, then one every ``interval`` seconds, until closed."""
        rates = _Rates()

        def event() -> Event:
            return Event(_json(self.snapshot(site, rates)))

        yield event()
        clock = self._clock()
        while True:
            yield deferLater(clock, self.interval, event)


def _query_names(request: Any) -> set[bytes]:
    """The names in the query string, with or without a value (``?events`` included, which
    ``request.args`` leaves out)."""
    query = bytes(request.uri).partition(b"?")[2]
    return {item.partition(b"=")[0] for item in query.replace(b";", b"&").split(b"&")}


def _plain(request: Any, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode("utf-8") + b"\n"


def _json(value: object) -> str:
    """Compact JSON that is also safe inside an HTML ``<script>`` element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The page.

_TOTALS = (
    ("streams_active", "active"),
    ("streams_started", "started"),
    ("streams_completed", "completed"),
    ("streams_client_gone", "ended by the client"),
    ("streams_source_failed", "failed"),
    ("streams_stalled", "stalled"),
    ("streams_aborted", "aborted"),
    ("streams_rejected", "rejected"),
    ("bytes_sent", "bytes sent"),
    ("pauses", "pauses"),
    ("paused_seconds", "seconds paused"),
    ("ttfb_seconds_count", "first bytes timed"),
    ("ttfb_average", "mean time to first byte (s)"),
)

_COLUMNS = ("path", "client", "bytes sent", "rate", "paused", "age")


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _total_value(key: str, totals: Mapping[str, float]) -> str:
    if key == "ttfb_average":
        count = totals.get("ttfb_seconds_count", 0)
        return f"{totals.get('ttfb_seconds_sum', 0) / count:.4f}" if count else "-"
    value = totals.get(key, 0)
    return f"{value:.1f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def render_page(snap: Mapping[str, Any]) -> str:
    """The HTML page for the snapshot ``snap``, with the script that keeps it live."""
    totals = snap["totals"]
    total_rows = "".join(
        f'<tr><th>{escape(label)}</th><td id="total-{key}">'
        f"{escape(_total_value(key, totals))}</td></tr>"
        for key, label in _TOTALS
    )
    stream_rows = "".join(
        f'<tr data-id="{s["id"]}"><td>{escape(s["path"])}</td><td>{escape(s["client"])}</td>'
        f"<td>{_bytes(s['bytes_sent'])}</td><td>{_bytes(s['rate'])}/s</td>"
        f"<td>{'yes' if s['paused'] else 'no'}</td><td>{_age(s['age'])}</td></tr>"
        for s in snap["streams"]
    )
    head = "".join(f"<th>{escape(c)}</th>" for c in _COLUMNS)
    return _PAGE.format(
        totals=total_rows,
        head=head,
        rows=stream_rows,
        shown=_shown_text(snap),
        labels=_json(dict(_TOTALS)),
    )


def _shown_text(snap: Mapping[str, Any]) -> str:
    if snap["shown"] < snap["active"]:
        return f"showing the {snap['shown']} oldest of {snap['active']} streams"
    return f"{snap['active']} streams"


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>twisted_stream status</title>
<style>
body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}}
#streams td:nth-child(3),#streams td:nth-child(4),#streams td:nth-child(6){{text-align:right}}
#feed-state{{font-size:.9em;color:#666}}#feed-state.live{{color:#080}}
#totals{{margin-bottom:1.5em}}
</style></head><body>
<h1>Streams</h1>
<p id="feed-state">snapshot (connecting to the live feed&hellip;)</p>
<table id="totals"><tbody>{totals}</tbody></table>
<p id="shown">{shown}</p>
<table id="streams"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<script>
"use strict";
(function () {{
  var labels = {labels};
  function bytes(n) {{
    var units = ["B", "KB", "MB", "GB"];
    for (var i = 0; i < units.length; i++) {{
      if (Math.abs(n) < 1000 || i === units.length - 1) {{
        return i === 0 ? n.toFixed(0) + " B" : n.toFixed(1) + " " + units[i];
      }}
      n /= 1000;
    }}
  }}
  function age(s) {{
    if (s < 60) return s.toFixed(1) + " s";
    var t = Math.floor(s), h = Math.floor(t / 3600), m = Math.floor(t / 60) % 60, x = t % 60;
    var mm = (h && m < 10 ? "0" : "") + m, ss = (x < 10 ? "0" : "") + x;
    return (h ? h + ":" : "") + mm + ":" + ss;
  }}
  function total(key, totals) {{
    if (key === "ttfb_average") {{
      var c = totals.ttfb_seconds_count;
      return c ? (totals.ttfb_seconds_sum / c).toFixed(4) : "-";
    }}
    var v = totals[key] || 0;
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }}
  function cell(row, text) {{
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }}
  function show(snap) {{
    Object.keys(labels).forEach(function (key) {{
      document.getElementById("total-" + key).textContent = total(key, snap.totals);
    }});
    document.getElementById("shown").textContent = snap.shown < snap.active
      ? "showing the " + snap.shown + " oldest of " + snap.active + " streams"
      : snap.active + " streams";
    var body = document.createElement("tbody");
    snap.streams.forEach(function (s) {{
      var row = document.createElement("tr");
      row.dataset.id = s.id;
      cell(row, s.path);
      cell(row, s.client);
      cell(row, bytes(s.bytes_sent));
      cell(row, bytes(s.rate) + "/s");
      cell(row, s.paused ? "yes" : "no");
      cell(row, age(s.age));
      if (s.paused) row.className = "paused";
      body.appendChild(row);
    }});
    var table = document.getElementById("streams");
    table.replaceChild(body, table.tBodies[0]);
  }}
  var state = document.getElementById("feed-state");
  if (!window.EventSource) {{
    state.textContent = "snapshot (this browser has no EventSource: reload to refresh)";
    return;
  }}
  var feed = new EventSource("?events");
  feed.onopen = function () {{
    state.textContent = "live";
    state.className = "live";
  }};
  feed.onmessage = function (event) {{
    state.textContent = "live";
    state.className = "live";
    show(JSON.parse(event.data));
  }};
  feed.onerror = function () {{
    state.textContent = "feed lost, reconnecting\\u2026";
    state.className = "";
  }};
}})();
</script>
</body></html>
"""
