// The live status page of twisted_stream (served inline by _status_page.py).
//
// Reads the page's own event stream (?events): the first event carries the history of the
// last minutes, each later one a snapshot and the samples taken since. Draws the
// charts as inline SVG (no library, no network: the page works offline) and keeps the
// tables current. Numbers are formatted as twisted_stream/_format.py formats them.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var body = document.body;
  var WINDOW = Number(body.dataset.window);          // seconds the charts cover
  var SPARK_POINTS = 60;                             // samples in a row's sparkline
  var OUTCOMES = JSON.parse(body.dataset.outcomes);  // [[key, label], ...]

  // Numbers for people (the same rules as _format.py).
  var UNITS = ["KB", "MB", "GB", "TB", "PB", "EB"];
  function three(v) {
    return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
  }
  function bytes(n) {
    if (!isFinite(n)) return "-";
    var sign = n < 0 ? "-" : "", v = Math.abs(n);
    if (v < 1000) return sign + v.toFixed(0) + " B";
    for (var i = 0; i < UNITS.length; i++) {
      v /= 1000;
      if (Number(three(v)) < 1000 || i === UNITS.length - 1) {
        return sign + three(v) + " " + UNITS[i];
      }
    }
  }
  function rate(n) { return bytes(n) + "/s"; }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function duration(s) {
    if (!isFinite(s) || s < 0) return "-";
    if (s < 1) {
      var ms = s * 1000;
      if (ms >= 1) return Number(three(ms)) >= 1000 ? "1.00 s" : three(ms) + " ms";
      var us = s * 1e6;
      if (us >= 1) return Number(three(us)) >= 1000 ? "1.00 ms" : three(us) + " \u00b5s";
      return s === 0 ? "0 s" : "< 1 \u00b5s";
    }
    if (s < 60) return Number(three(s)) < 60 ? three(s) + " s" : "1 min 00 s";
    var t = Math.floor(s);
    if (t < 3600) return Math.floor(t / 60) + " min " + pad(t % 60) + " s";
    if (t < 86400) return Math.floor(t / 3600) + " h " + pad(Math.floor(t / 60) % 60) + " min";
    return Math.floor(t / 86400) + " d " + pad(Math.floor(t / 3600) % 24) + " h";
  }
  function count(n) { return Math.round(n).toLocaleString("en-US"); }
  window.twistedStreamFormat = {bytes: bytes, rate: rate, duration: duration, count: count};

  // SVG charts.
  var W = 380, H = 150, LEFT = 62, RIGHT = 12, TOP = 8, BOTTOM = 20;
  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function axes(svg, now, max, format) {
    var plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM;
    [0, 0.5, 1].forEach(function (f) {
      var y = TOP + plotH * (1 - f);
      el("line", {x1: LEFT, x2: W - RIGHT, y1: y, y2: y, "class": "grid"}, svg);
      var label = el("text", {x: LEFT - 6, y: y + 4, "text-anchor": "end", "class": "tick"}, svg);
      label.textContent = format(max * f);
    });
    var step = [5, 10, 15, 30, 60, 120, 300, 600].filter(function (s) {
      return WINDOW / s <= 6;
    })[0] || WINDOW;
    for (var ago = 0; ago <= WINDOW + 1e-9; ago += step) {
      var x = LEFT + plotW * (1 - ago / WINDOW);
      var text = el("text", {x: x, y: H - 4, "text-anchor": ago === 0 ? "end" : "middle",
                             "class": "tick"}, svg);
      text.textContent = ago === 0 ? "now" : step >= 60 ? "-" + ago / 60 + " min" : "-" + ago + " s";
    }
    return {
      x: function (t) { return LEFT + plotW * (1 - (now - t) / WINDOW); },
      y: function (v) { return TOP + plotH * (1 - v / max); },
      bottom: TOP + plotH,
      step: plotW / WINDOW
    };
  }
  function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }
  // Consecutive samples further apart than this are drawn with a gap between them.
  function runs(points, interval) {
    var out = [], run = [];
    points.forEach(function (p, i) {
      if (i && p.t - points[i - 1].t > 2.5 * interval) { out.push(run); run = []; }
      run.push(p);
    });
    if (run.length) out.push(run);
    return out;
  }
  function lineChart(svg, history, now, interval, series, format) {
    clear(svg);
    var max = 0;
    history.forEach(function (p) {
      series.forEach(function (s) { max = Math.max(max, p[s.key]); });
    });
    max = niceMax(max);
    var ax = axes(svg, now, max, format);
    series.forEach(function (s) {
      runs(history, interval).forEach(function (run) {
        var d = run.map(function (p, i) {
          return (i ? "L" : "M") + ax.x(p.t).toFixed(1) + " " + ax.y(p[s.key]).toFixed(1);
        }).join(" ");
        if (s.area && run.length) {
          el("path", {d: d + " L" + ax.x(run[run.length - 1].t).toFixed(1) + " " + ax.bottom +
                         " L" + ax.x(run[0].t).toFixed(1) + " " + ax.bottom + " Z",
                      "class": "area " + s.key}, svg);
        }
        el("path", {d: d, "class": "line " + s.key}, svg);
      });
    });
    var last = history.length ? history[history.length - 1] : null;
    svg.dataset.points = String(history.length);
    svg.dataset.max = String(max);
    svg.dataset.last = last ? JSON.stringify(series.map(function (s) { return last[s.key]; }))
                            : "";
  }
  function outcomeChart(svg, history, now, interval) {
    clear(svg);
    var max = 0;
    history.forEach(function (p) {
      var sum = 0;
      OUTCOMES.forEach(function (o) { sum += p.outcomes[o[0]] || 0; });
      max = Math.max(max, sum);
    });
    max = niceMax(max);
    var ax = axes(svg, now, max, function (v) { return count(v); });
    var width = Math.max(1, ax.step * interval - 0.5), bars = 0;
    history.forEach(function (p) {
      var base = 0;
      OUTCOMES.forEach(function (o) {
        var n = p.outcomes[o[0]] || 0;
        if (!n) return;
        var top = ax.y(base + n), bottom = ax.y(base);
        el("rect", {x: (ax.x(p.t) - width).toFixed(1), y: top.toFixed(1), width: width.toFixed(1),
                    height: Math.max(0.5, bottom - top).toFixed(1), "class": "bar " + o[0]}, svg);
        base += n;
        bars++;
      });
    });
    svg.dataset.points = String(history.length);
    svg.dataset.bars = String(bars);
  }
  function sparkline(values) {
    var svg = el("svg", {viewBox: "0 0 " + SPARK_POINTS + " 16", "class": "spark",
                         preserveAspectRatio: "none"});
    var max = Math.max.apply(null, values.concat([1]));
    var offset = SPARK_POINTS - values.length;
    el("polyline", {points: values.map(function (v, i) {
      return (offset + i) + "," + (15 - 14 * v / max).toFixed(1);
    }).join(" ")}, svg);
    svg.dataset.points = String(values.length);
    return svg;
  }

  // Tables.
  var sparks = {};
  var HINTS = JSON.parse(body.dataset.hints);
  function cell(row, col, text, cls) {
    var td = document.createElement("td");
    td.dataset.col = col;
    if (cls) td.className = cls;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }
  function condition(s) {
    if (s.stalled) return "stalled";
    if (s.paused) return "paused";
    return s.state === "waiting" ? "waiting" : "streaming";
  }
  function showStreams(snap) {
    var table = document.getElementById("streams");
    var tbody = document.createElement("tbody"), seen = {};
    snap.streams.forEach(function (s) {
      var row = document.createElement("tr"), kind = condition(s);
      row.dataset.id = s.id;
      row.className = kind;
      var values = (sparks[s.id] = (sparks[s.id] || []).concat([s.rate]).slice(-SPARK_POINTS));
      seen[s.id] = true;
      cell(row, "path", s.path);
      cell(row, "client", s.client);
      cell(row, "protocol", s.protocol);
      cell(row, "kind", s.kind);
      var upload = s.kind === "upload";
      cell(row, "sent", bytes(upload ? s.bytes_received : s.bytes_sent), "num");
      var r = cell(row, "rate", "", "num");
      r.appendChild(sparkline(values));
      r.appendChild(document.createTextNode(rate(s.rate)));
      var state = cell(row, "state", "");
      var badge = document.createElement("span");
      badge.className = "badge " + kind;
      badge.textContent = kind === "paused" || kind === "stalled"
        ? kind + " " + duration(s.paused_for) : kind;
      badge.title = HINTS[s.kind + " " + kind] || HINTS[kind];
      state.appendChild(badge);
      if (upload) cell(row, "ttfb", "-", "num");
      else if (s.ttfb === null) cell(row, "ttfb", "waiting " + duration(s.age), "num pending");
      else cell(row, "ttfb", duration(s.ttfb), "num");
      cell(row, "age", duration(s.age), "num");
      if ("worker" in s) cell(row, "worker", String(s.worker), "num");
      tbody.appendChild(row);
    });
    Object.keys(sparks).forEach(function (id) { if (!seen[id]) delete sparks[id]; });
    table.replaceChild(tbody, table.tBodies[0]);
    var uploads = snap.uploads
      ? ", " + count(snap.uploads) + (snap.uploads === 1 ? " upload" : " uploads") : "";
    document.getElementById("shown").textContent = (snap.shown < snap.active
      ? "showing the " + count(snap.shown) + " oldest of " + count(snap.active) + " streams"
      : count(snap.active) + (snap.active === 1 ? " stream" : " streams")) + uploads;
  }
  function showTotals(totals) {
    Array.prototype.forEach.call(document.querySelectorAll("#totals td"), function (td) {
      var key = td.dataset.key, format = td.dataset.format;
      if (key === "ttfb_average") {
        var c = totals.ttfb_seconds_count;
        td.textContent = c ? duration(totals.ttfb_seconds_sum / c) : "-";
      } else if (format === "bytes") td.textContent = bytes(totals[key] || 0);
      else if (format === "duration") td.textContent = duration(totals[key] || 0);
      else td.textContent = count(totals[key] || 0);
    });
  }
  function setText(id, text) { document.getElementById(id).textContent = text; }

  // The feed.
  var history = [];
  function show(snap) {
    if (snap.history) history = snap.history.slice();
    else {
      (snap.samples || []).forEach(function (sample) {
        if (!history.length || sample.t > history[history.length - 1].t) history.push(sample);
      });
    }
    history = history.filter(function (p) { return p.t >= snap.time - WINDOW; });
    var interval = snap.interval, last = history[history.length - 1];
    lineChart(document.getElementById("chart-throughput"), history, snap.time, interval,
              [{key: "rate", area: true}], rate);
    lineChart(document.getElementById("chart-streams"), history, snap.time, interval,
              [{key: "active"}, {key: "paused"}, {key: "stalled"}], count);
    outcomeChart(document.getElementById("chart-outcomes"), history, snap.time, interval);
    setText("tile-rate", last ? rate(last.rate) : "-");
    setText("tile-active", count(snap.active));
    setText("tile-paused", count(snap.paused));
    setText("tile-stalled", count(snap.stalled));
    setText("tile-sent", bytes(snap.totals.bytes_sent));
    var c = snap.totals.ttfb_seconds_count;
    setText("tile-ttfb", c ? duration(snap.totals.ttfb_seconds_sum / c) : "-");
    document.getElementById("tile-paused").parentNode.classList.toggle("warn", snap.paused > 0);
    document.getElementById("tile-stalled").parentNode.classList.toggle("bad", snap.stalled > 0);
    showStreams(snap);
    showTotals(snap.totals);
  }
  var state = document.getElementById("feed-state");
  if (!window.EventSource) {
    state.textContent = "snapshot (this browser has no EventSource: reload to refresh)";
    return;
  }
  var feed = new EventSource("?events");
  function live() {
    state.textContent = "live";
    state.className = "live";
  }
  feed.onopen = live;
  feed.onmessage = function (event) {
    live();
    show(JSON.parse(event.data));
  };
  feed.onerror = function () {
    state.textContent = "feed lost, reconnecting\u2026";
    state.className = "";
  };
})();
