"""The HTML of the live status page (:mod:`._status`): complete as served, then kept live
by its script from the page's event stream."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any


def script_json(value: object) -> str:
    """Compact JSON that is also safe inside an HTML ``<script>`` element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
        f"<td>{'yes' if s['paused'] else 'no'}</td><td>{_age(s['age'])}</td>"
        + (f"<td>{escape(str(s['worker']))}</td>" if "worker" in s else "")
        + "</tr>"
        for s in snap["streams"]
    )
    # Under --workers N every stream row names its worker.
    columns = (*_COLUMNS, "worker") if "workers" in snap else _COLUMNS
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    return _PAGE.format(
        totals=total_rows,
        head=head,
        rows=stream_rows,
        shown=_shown_text(snap),
        labels=script_json(dict(_TOTALS)),
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
      if ("worker" in s) cell(row, String(s.worker));
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
