(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("wf-data").textContent);
  var C = JSON.parse(document.getElementById("wf-colours").textContent);
  var n = D.o.length, GUTTER = 190, LANE = 7, MAXLANES = 10, MINROW = 17, PAD = 4, AXIS = 32;
  var body = document.getElementById("wf-body"), canvas = document.getElementById("waterfall");
  var axis = document.getElementById("wf-axis"), tip = document.getElementById("tip");
  var groupBy = document.getElementById("wf-group"), rangeLabel = document.getElementById("wf-range");
  var end = Math.max(D.end, 0.001), from = 0, span = end * 1.03, layout = null;
  var done = new Float64Array(n);
  for (var i = 0; i < n; i++) done[i] = D.b[i] + D.t[i];

  function build(by) {  // rows of the waterfall: one per host (or source), lanes for overlaps
    var names = by === "source" ? D.sources : D.hosts, of = by === "source" ? D.s : D.h;
    var rows = names.map(function (name) { return { name: name, idx: [], lanes: [] }; });
    for (var i = 0; i < n; i++) rows[of[i]].idx.push(i);
    var lane = new Int32Array(n), top = 0;
    rows.forEach(function (row) {
      var ends = [];
      row.idx.forEach(function (i) {
        var k = -1, best = 0;
        for (var j = 0; j < ends.length; j++) if (ends[j] <= D.q[i]) { k = j; break; }
        if (k < 0 && ends.length < MAXLANES) { k = ends.length; ends.push(0); }
        if (k < 0) { for (j = 1; j < ends.length; j++) if (ends[j] < ends[best]) best = j; k = best; }
        ends[k] = done[i];
        lane[i] = k;
      });
      row.count = Math.max(1, ends.length);
      row.top = top;
      row.height = Math.max(MINROW, row.count * LANE + 2 * PAD);
      row.lanes = [];
      for (var j = 0; j < row.count; j++) row.lanes.push([]);
      row.idx.forEach(function (i) { row.lanes[lane[i]].push(i); });
      top += row.height;
    });
    var events = D.ev.map(function (e) { return { t: e[0], kind: e[1], row: by === "source" ? e[3] : e[2], wait: e[4] }; });
    return { rows: rows, height: Math.max(top, MINROW), lane: lane, events: events, of: of };
  }

  function x(t, width) { return GUTTER + (t - from) / span * (width - GUTTER - 12); }

  function size(c, w, h) {
    var r = window.devicePixelRatio || 1;
    c.width = Math.round(w * r); c.height = Math.round(h * r);
    c.style.width = w + "px"; c.style.height = h + "px";
    var g = c.getContext("2d"); g.setTransform(r, 0, 0, r, 0, 0); return g;
  }

  function step(s, pixels) {  // a tick step of 1, 2 or 5 times a power of ten, ~90 px apart
    var raw = s / Math.max(1, pixels / 90), p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function label(t, s) {
    var digits = s >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(s)));
    return t.toFixed(digits) + " s";
  }

  function draw() {
    var width = body.clientWidth, rows = layout.rows, marks = 0;
    var a = size(axis, width, AXIS), g = size(canvas, width, layout.height);
    var s = step(span, width - GUTTER), first = Math.ceil(from / s) * s;
    a.fillStyle = "#fff"; a.fillRect(0, 0, width, AXIS);
    a.font = "11px system-ui, sans-serif"; a.fillStyle = "#52606d"; a.textAlign = "center";
    a.textAlign = "left"; a.fillText("seconds from the run's start", 6, 26); a.textAlign = "center";
    g.clearRect(0, 0, width, layout.height);
    rows.forEach(function (row, k) {
      if (k % 2) { g.fillStyle = "#f7f9fb"; g.fillRect(0, row.top, width, row.height); }
    });
    g.strokeStyle = "#e4e7eb"; g.lineWidth = 1;
    for (var t = first; t <= from + span; t += s) {
      var px = Math.round(x(t, width)) + 0.5;
      if (px < GUTTER) continue;
      g.beginPath(); g.moveTo(px, 0); g.lineTo(px, layout.height); g.stroke();
      a.fillText(label(t, s), px, 24);
      a.fillRect(px - 0.5, AXIS - 6, 1, 6);
    }
    g.save(); g.beginPath(); g.rect(GUTTER, 0, width - GUTTER, layout.height); g.clip();
    layout.events.forEach(function (e) {  // pauses and breaker openings: bands over the row
      var row = rows[e.row]; if (!row) return;
      if (e.kind === "paused" || e.kind === "down") {
        g.fillStyle = e.kind === "paused" ? C.pause : C.down;
        var x0 = x(e.t, width), x1 = x(e.t + (e.wait || 0), width);
        g.fillRect(x0, row.top, Math.max(2, x1 - x0), row.height);
      }
    });
    var lo = from - span * 0.01, hi = from + span * 1.01;
    rows.forEach(function (row) {
      row.lanes.forEach(function (lane, k) {
        var y = row.top + PAD + k * LANE;
        lane.forEach(function (i) {
          marks++;
          if (done[i] < lo || D.q[i] > hi) return;
          var xq = x(D.q[i], width), xb = x(D.b[i], width), xd = x(done[i], width);
          if (xb - xq >= 1) { g.fillStyle = C.queue; g.fillRect(xq, y + 2, xb - xq, LANE - 5); }
          g.fillStyle = C.outcomes[D.outcomes[D.o[i]]] || "#333";
          g.fillRect(xb, y, Math.max(1.5, xd - xb), LANE - 1);
        });
      });
    });
    layout.events.forEach(function (e) {  // pauses and openings again, as strips over the bars
      var row = rows[e.row]; if (!row || (e.kind !== "paused" && e.kind !== "down")) return;
      var x0 = x(e.t, width), x1 = x(e.t + (e.wait || 0), width);
      g.fillStyle = e.kind === "paused" ? "#c2630a" : "#b42318";
      g.fillRect(x0 - 1, row.top, 2, row.height);
      g.fillRect(x0, row.top + row.height - 4, Math.max(2, x1 - x0), 3);
    });
    layout.events.forEach(function (e) {  // failed attempts that were retried: ticks on top
      var row = rows[e.row]; if (!row || (e.kind !== "retried" && e.kind !== "refused")) return;
      var px = x(e.t, width);
      g.fillStyle = e.kind === "retried" ? "#7c2d12" : "#111";
      g.beginPath(); g.moveTo(px - 3, row.top); g.lineTo(px + 3, row.top); g.lineTo(px, row.top + 4);
      g.fill();
    });
    var xe = Math.round(x(D.end, width)) + 0.5;
    g.strokeStyle = "#1f2933"; g.setLineDash([4, 3]);
    g.beginPath(); g.moveTo(xe, 0); g.lineTo(xe, layout.height); g.stroke(); g.setLineDash([]);
    g.restore();
    a.fillStyle = "#1f2933"; a.textAlign = xe > width - 60 ? "right" : "left";
    if (xe >= GUTTER && xe <= width) a.fillText(" end of the run: " + D.end.toFixed(2) + " s ", xe, 10);
    g.font = "11px system-ui, sans-serif"; g.textBaseline = "middle"; g.textAlign = "left";
    rows.forEach(function (row) {  // labels last, on a plain gutter
      g.fillStyle = "#fff"; g.fillRect(0, row.top, GUTTER - 6, row.height);
      g.fillStyle = "#1f2933";
      var text = row.name, room = GUTTER - 14, count = " (" + row.idx.length + ")";
      while (text.length > 3 && g.measureText(text + count).width > room) text = text.slice(0, -2);
      if (text !== row.name) text = text.slice(0, -1) + "\u2026";
      g.fillText(text + count, 6, row.top + Math.min(row.height / 2, 9));
      g.fillStyle = "#e4e7eb"; g.fillRect(0, row.top + row.height - 1, width, 1);
    });
    rangeLabel.textContent = "showing " + Math.max(0, from).toFixed(2) + "\u2013" +
      (from + span).toFixed(2) + " s of " + D.end.toFixed(2) + " s";
    canvas.setAttribute("data-marks", String(marks));
    return marks;
  }

  function zoom(factor, at) {
    var centre = at === undefined ? from + span / 2 : at, share = (centre - from) / span;
    span = Math.min(end * 1.03, Math.max(end / 20000, span * factor, 0.0005));
    from = Math.max(-span * 0.02, Math.min(centre - share * span, end * 1.02 - span));
    draw();
  }

  function timeAt(px) { return from + (px - GUTTER) / (body.clientWidth - GUTTER - 12) * span; }

  function hit(ev) {
    var r = canvas.getBoundingClientRect(), px = ev.clientX - r.left, py = ev.clientY - r.top;
    if (px < GUTTER) return -1;
    var rows = layout.rows, lo = 0, hi = rows.length - 1;
    while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (rows[mid].top <= py) lo = mid; else hi = mid - 1; }
    var row = rows[lo]; if (!row) return -1;
    var k = Math.floor((py - row.top - PAD) / LANE);
    if (k < 0 || k >= row.lanes.length) return -1;
    var t = timeAt(px), slack = span / body.clientWidth * 3, found = -1;
    row.lanes[k].forEach(function (i) { if (D.q[i] - slack <= t && t <= done[i] + slack) found = i; });
    return found;
  }

  function describe(i) {
    var lines = [];
    if (D.u) lines.push(D.u[i]);
    lines.push(D.hosts[D.h[i]] + (D.sources.length > 1 || D.sources[0] !== "-" ? " \u00b7 source " + D.sources[D.s[i]] : ""));
    lines.push(D.outcomes[D.o[i]] + (D.st[i] ? " \u00b7 HTTP " + D.st[i] : "") + " \u00b7 " +
      D.a[i] + (D.a[i] === 1 ? " attempt" : " attempts"));
    lines.push("queued " + D.q[i].toFixed(3) + " s \u00b7 waited " + (D.b[i] - D.q[i]).toFixed(3) +
      " s \u00b7 took " + D.t[i].toFixed(3) + " s \u00b7 done " + done[i].toFixed(3) + " s");
    return lines.join("\n");
  }

  var drag = null;
  canvas.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, from: from }; canvas.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", function () { drag = null; canvas.style.cursor = "grab"; });
  canvas.addEventListener("mousemove", function (ev) {
    if (drag) {
      from = drag.from - (ev.clientX - drag.x) / (body.clientWidth - GUTTER - 12) * span;
      from = Math.max(-span * 0.02, Math.min(from, end * 1.02 - span)); draw(); return;
    }
    var i = hit(ev);
    if (i < 0) { tip.style.display = "none"; return; }
    tip.textContent = describe(i); tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("wheel", function (ev) {
    var r = canvas.getBoundingClientRect();
    if (ev.ctrlKey || ev.metaKey) { ev.preventDefault(); zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(ev.clientX - r.left)); }
    else if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
      ev.preventDefault();
      var d = (ev.deltaX || ev.deltaY) / (body.clientWidth - GUTTER) * span;
      from = Math.max(-span * 0.02, Math.min(from + d, end * 1.02 - span)); draw();
    }
  }, { passive: false });
  document.getElementById("wf-in").onclick = function () { zoom(0.5); };
  document.getElementById("wf-out").onclick = function () { zoom(2); };
  document.getElementById("wf-fit").onclick = function () { from = 0; span = end * 1.03; draw(); };
  groupBy.onchange = function () { layout = build(groupBy.value); draw(); };
  window.addEventListener("resize", draw);
  layout = build(groupBy.value);
  draw();
  canvas.setAttribute("data-ready-ms", String(Math.round(performance.now())));
})();
