"use strict";
// The dashboard's charts: API points on a step grid, uPlot options, event markers and
// the tooltip. No network here: dashboard.js fetches, this draws.
(function () {
  const EVENT_COLORS = {
    deploy: "#5b4fc7", release: "#5b4fc7", rollback: "#9f7aea", build: "#805ad5",
    restart: "#3182ce", cycle: "#63b3ed", scale: "#2f855a", config: "#b7791f",
    crash: "#c0362c", error: "#dd6b20", logplex_drop: "#718096",
  };
  // Dyno state, start, stop and exit lines come with every restart; the restart says it.
  const SHOWN_KINDS = new Set(Object.keys(EVENT_COLORS));
  const PALETTE = ["#5b4fc7", "#2b8a99", "#d97706", "#c0362c", "#3182ce", "#7c3aed",
    "#2f855a", "#b83280", "#4a5568", "#dd6b20"];
  const CLASS_COLORS = {
    "1xx": ["#a0aec0", "#e2e8f0"], "2xx": ["#2f855a", "#c6efd6"], "3xx": ["#3182ce", "#cfe3f8"],
    "4xx": ["#d69e2e", "#f8e6b8"], "5xx": ["#c0362c", "#f6c9c4"],
  };
  const AXIS_SIZE = 64; // every chart's y axis is this wide, so plot areas line up

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
    return v.toLocaleString("en-US", { maximumFractionDigits: digits });
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function timeLabel(sec, stepS) {
    const d = new Date(sec * 1000);
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const t = `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (!stepS || stepS <= 60) return t;
    const e = new Date((sec + stepS) * 1000);
    return `${t}–${pad(e.getHours())}:${pad(e.getMinutes())}`;
  }

  // Interval starts (seconds) of [startMs, endMs) at stepS, aligned as the API aligns them.
  function grid(startMs, endMs, stepS) {
    const stepMs = stepS * 1000;
    const xs = [];
    for (let t = startMs - (startMs % stepMs); t < endMs; t += stepMs) xs.push(t / 1000);
    return xs;
  }

  function byTime(points) {
    const m = new Map();
    for (const p of points || []) m.set(Date.parse(p.t) / 1000, p);
    return m;
  }

  // One field at every grid time. `fill` stands for a missing interval between the
  // series' first and last point (0 for counts: no line was seen); outside them, and
  // for gauges, a gap stays a gap.
  function column(xs, at, field, fill, scale) {
    let first = -1;
    let last = -1;
    xs.forEach((x, i) => {
      if (at.has(x)) { if (first < 0) first = i; last = i; }
    });
    return xs.map((x, i) => {
      const p = at.get(x);
      const v = p ? p[field] : undefined;
      if (v === undefined || v === null) return i >= first && i <= last ? fill : null;
      return scale ? v * scale : v;
    });
  }

  function line(label, values, color, extra) {
    return Object.assign({ label, values, stroke: color, width: 1.6 }, extra || {});
  }

  // Each builder returns {title, unit, note, series: [{label, values, ...}]} or null.
  const BUILD = {
    latency(xs, pts) {
      const at = byTime(pts);
      return {
        id: "latency", title: "Response time", unit: "ms",
        series: [
          line("p50", column(xs, at, "p50", null), "#2b8a99"),
          line("p95", column(xs, at, "p95", null), "#5b4fc7"),
          line("p99", column(xs, at, "p99", null), "#d97706"),
          // As on Heroku, max is one click away: one timeout flattens every other line.
          line("max", column(xs, at, "max", null), "#c0362c", { dash: [4, 3], width: 1, show: false }),
        ],
      };
    },
    throughput(xs, pts, stepS) {
      const at = byTime(pts);
      const perMin = 60 / stepS;
      const classes = ["1xx", "2xx", "3xx", "4xx", "5xx"].filter(
        (c) => c !== "1xx" || (pts || []).some((p) => p[c])
      );
      let total = 0;
      let failed = 0;
      for (const p of pts || []) { total += p.total || 0; failed += p["5xx"] || 0; }
      const raw = classes.map((c) => column(xs, at, c, 0, perMin));
      // Stacked: each line is the sum of its class and those below it, drawn top first.
      const stacked = raw.map((_, i) => xs.map((__, j) => {
        if (raw[i][j] === null) return null;
        let s = 0;
        for (let k = 0; k <= i; k++) s += raw[k][j] || 0;
        return s;
      }));
      const series = classes.map((c, i) => ({
        label: c, values: stacked[i], raw: raw[i], stroke: CLASS_COLORS[c][0],
        fill: CLASS_COLORS[c][1], width: 1,
      })).reverse();
      const share = total ? (100 * failed) / total : 0;
      return {
        id: "throughput", title: "Throughput", unit: "req/min", series,
        note: `${fmt(total)} requests, failed (5xx) ${fmt(share)} %`,
        failedShare: share, total,
      };
    },
    errors(xs, pts, stepS) {
      const at = byTime(pts);
      const codes = [...new Set((pts || []).flatMap((p) => Object.keys(p).filter((k) => k !== "t")))].sort();
      const perMin = 60 / stepS;
      let total = 0;
      for (const p of pts || []) for (const c of codes) total += p[c] || 0;
      return {
        id: "errors", title: "Router errors", unit: "/min",
        note: codes.length ? `${fmt(total)} errors` : "none in this window",
        series: codes.map((c, i) => line(c, column(xs, at, c, 0, perMin), PALETTE[(i + 3) % PALETTE.length],
          { points: { show: true, size: 4 } })),
      };
    },
    memory(xs, pts) {
      const at = byTime(pts);
      return {
        id: "memory", title: "Memory", unit: "MB",
        series: [
          line("total (mean)", column(xs, at, "memory_total_mean", null), "#5b4fc7"),
          line("total (max)", column(xs, at, "memory_total_max", null), "#7c3aed", { dash: [4, 3], width: 1 }),
          line("RSS", column(xs, at, "memory_rss_mean", null), "#2b8a99"),
          line("swap (max)", column(xs, at, "memory_swap_max", null), "#d97706"),
          line("quota", column(xs, at, "memory_quota", null), "#c0362c", { dash: [8, 4], width: 1.2 }),
        ],
      };
    },
    load(xs, pts) {
      const at = byTime(pts);
      return {
        id: "load", title: "Dyno load", unit: "load",
        series: [
          line("1m (mean)", column(xs, at, "load_avg_1m_mean", null), "#2b8a99"),
          line("1m (max)", column(xs, at, "load_avg_1m_max", null), "#c0362c", { dash: [4, 3], width: 1 }),
        ],
      };
    },
    custom(xs, pts, stepS, name) {
      const at = byTime(pts);
      const has = (f) => (pts || []).some((p) => p[f] !== undefined && p[f] !== null);
      let fields;
      if (has("p50")) fields = [["p50", "p50"], ["p95", "p95"], ["p99", "p99"], ["max", "max"]];
      else if (has("sample_mean")) fields = [["sample_mean", "mean"], ["sample_min", "min"], ["sample_max", "max"]];
      else fields = [["total", "total"]];
      const counts = fields[0][0] === "total";
      return {
        id: name, title: name.replace(/^custom\./, ""), unit: counts ? "per interval" : "",
        series: fields.map(([f, label], i) => line(label, column(xs, at, f, counts ? 0 : null), PALETTE[i])),
      };
    },
  };

  function visibleEvents(events, processType) {
    return (events || []).filter(
      (e) => SHOWN_KINDS.has(e.kind) && (!e.process_type || !processType || e.process_type === processType)
    );
  }

  // Vertical lines at the events on a chart, under its series.
  // Which chart shows an alert rule's metric.
  function chartOfRule(metric) {
    if (metric === "latency_p95") return "latency";
    if (metric === "error_rate" || metric === "throughput_below") return "throughput";
    if (metric.startsWith("errors:")) return "errors";
    if (metric === "memory_quota") return "memory";
    if (metric === "load") return "load";
    return metric.startsWith("custom.") ? metric.slice(0, metric.lastIndexOf(":")) : null;
  }

  // Alert history as bands: from each firing to the notice that ended it (resolved or
  // no data), or to the window's end while it lasts.
  function alertBands(history, processType) {
    const open = new Map();
    const seen = new Set();
    const bands = [];
    for (const h of history || []) {
      if (processType && h.process_type !== processType) continue;
      const key = h.rule_id;
      const first = !seen.has(key);
      seen.add(key);
      // A rule whose first notice here is a reminder or an end was firing before the
      // history starts: its band starts with it.
      if (h.state === "firing" || (first && h.state === "reminder")) {
        if (!open.has(key)) open.set(key, h.state === "firing" ? h : { ...h, minute_ms: -Infinity });
      } else if (h.state === "resolved" || h.state === "no_data") {
        const f = open.get(key) || (first ? { ...h, minute_ms: -Infinity } : null);
        open.delete(key);
        if (f) bands.push({ chart: chartOfRule(f.metric), from: f.minute_ms / 1000, to: h.minute_ms / 1000 + 60, rule: f, end: h.state });
      }
    }
    for (const f of open.values()) {
      bands.push({ chart: chartOfRule(f.metric), from: f.minute_ms / 1000, to: Infinity, rule: f, end: null });
    }
    return bands;
  }

  function markersPlugin(spec, state) {
    return {
      hooks: {
        drawAxes: [(u) => {
          const ctx = u.ctx;
          const { top, height } = u.bbox;
          ctx.save();
          let bands = 0;
          ctx.fillStyle = "rgba(192, 54, 44, 0.10)";
          for (const b of state.bands || []) {
            if (b.chart !== spec.id) continue;
            const x0 = Math.max(u.bbox.left, u.valToPos(Math.max(b.from, state.startS), "x", true));
            const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(Math.min(b.to, state.endS), "x", true));
            if (x1 <= x0) continue;
            ctx.fillRect(x0, top, x1 - x0, height);
            bands += 1;
          }
          u.alertBands = bands; // for tests: the alert bands this chart shows
          let drawn = 0;
          ctx.lineWidth = Math.max(1, devicePixelRatio);
          ctx.setLineDash([3 * devicePixelRatio, 3 * devicePixelRatio]);
          for (const e of state.events) {
            const x = u.valToPos(e.ts_ms / 1000, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = EVENT_COLORS[e.kind] || "#718096";
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            drawn += 1;
          }
          ctx.restore();
          u.eventsDrawn = drawn; // for tests: what this chart shows of the events
        }],
      },
    };
  }

  function eventsNear(u, state, idx, left) {
    const xs = u.data[0];
    const from = xs[idx];
    const to = from + state.stepS;
    const px = u.posToVal(left - 6, "x");
    const qx = u.posToVal(left + 6, "x");
    return state.events.filter((e) => {
      const s = e.ts_ms / 1000;
      return (s >= from && s < to) || (s >= px && s <= qx);
    });
  }

  function escape(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // One tooltip per chart, shown on the chart under the mouse; the others follow the
  // synchronized cursor in their legends.
  function tooltipPlugin(spec, state) {
    let tip;
    let hovered = false;
    return {
      hooks: {
        init: [(u) => {
          tip = document.createElement("div");
          tip.className = "tooltip";
          u.over.appendChild(tip);
          u.over.addEventListener("mouseenter", () => { hovered = true; });
          u.over.addEventListener("mouseleave", () => { hovered = false; tip.style.display = "none"; });
        }],
        setCursor: [(u) => {
          const { left, top, idx } = u.cursor;
          if (!hovered || idx === null || idx === undefined || left < 0) {
            tip.style.display = "none";
            return;
          }
          const rows = [`<div class="t">${escape(timeLabel(u.data[0][idx], state.stepS))}</div>`];
          spec.series.forEach((s, i) => {
            if (spec.noValues || !u.series[i + 1].show) return;
            const v = (s.raw || s.values)[idx];
            rows.push(`<div><span class="sw" style="background:${s.stroke}"></span>${escape(s.label)}: <b>${fmt(v)}</b> ${escape(spec.unit || "")}</div>`);
          });
          if (spec.id === "throughput") {
            const tot = spec.series.reduce((a, s) => a + (s.raw[idx] || 0), 0);
            const bad = (spec.series.find((s) => s.label === "5xx") || { raw: [] }).raw[idx] || 0;
            rows.push(`<div>failed: <b>${fmt(tot ? (100 * bad) / tot : 0)} %</b></div>`);
          }
          const at = u.data[0][idx];
          for (const b of state.bands || []) {
            if (b.chart === spec.id && at >= b.from && at < b.to) {
              const r = b.rule;
              rows.push(`<div class="al">▮ alert ${escape(r.metric)} ${r.metric === "throughput_below" ? "<" : "≥"} ${fmt(r.threshold)} ${Number.isFinite(b.from) ? `since ${escape(timeLabel(b.from))}` : "(since before this view)"}</div>`);
            }
          }
          for (const e of eventsNear(u, state, idx, left)) {
            rows.push(`<div class="ev">◆ ${escape(e.kind)}: ${escape(e.text)}</div>`);
          }
          tip.innerHTML = rows.join("");
          tip.style.display = "block";
          const w = tip.offsetWidth;
          const x = left + 14 + w > u.over.clientWidth ? left - 14 - w : left + 14;
          tip.style.left = `${Math.max(0, x)}px`;
          tip.style.top = `${Math.max(0, top - 10)}px`;
        }],
      },
    };
  }

  function zoomPlugin(onZoom) {
    return {
      hooks: {
        setSelect: [(u) => {
          const { left, width } = u.select;
          if (width < 4) return;
          const lo = u.posToVal(left, "x");
          const hi = u.posToVal(left + width, "x");
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          onZoom(Math.round(lo * 1000), Math.round(hi * 1000));
        }],
      },
    };
  }

  // Values with no neighbour draw no line: a dot shows them (the first minute of an app).
  function isolated(u, si) {
    const d = u.data[si];
    const out = [];
    for (let i = 0; i < d.length; i++) {
      if (d[i] != null && d[i - 1] == null && d[i + 1] == null) out.push(i);
    }
    return out;
  }

  function options(spec, state, width, height, onZoom) {
    return {
      width, height,
      cursor: {
        sync: { key: "drainpipe", setSeries: false },
        y: false,
        drag: { x: true, y: false, setScale: false },
        focus: { prox: 16 },
      },
      select: { show: true },
      scales: {
        x: { time: true, range: () => [state.startS, state.endS] },
        y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.08 : 1] },
      },
      legend: { live: true },
      axes: [
        { stroke: "#667085", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e4e7ec" } },
        {
          stroke: "#667085", size: AXIS_SIZE, grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e4e7ec" },
          values: (u, vals) => vals.map((v) => fmt(v)),
        },
      ],
      series: [
        { label: "time", value: (u, v) => (v === null ? "–" : timeLabel(v, state.stepS)) },
        ...spec.series.map((s) => ({
          label: s.label, stroke: s.stroke, width: s.width, dash: s.dash, fill: s.fill,
          show: s.show !== false,
          points: s.points || { show: true, size: 5, filter: isolated }, spanGaps: false,
          value: (u, v, si, i) => (i === null ? "–" : fmt((s.raw || s.values)[i])),
        })),
      ],
      plugins: [markersPlugin(spec, state), tooltipPlugin(spec, state), zoomPlugin(onZoom)],
    };
  }

  // The events strip: a chart with no series whose plot area lines up with the others,
  // and one hoverable marker per event.
  function eventsStrip(root, state, width, onZoom) {
    const spec = { id: "events", title: "Events", unit: "", noValues: true, series: [{ label: "events", values: state.xs.map(() => null), stroke: "transparent" }] };
    const opts = options(spec, state, width, 44, onZoom);
    opts.axes[1] = { size: AXIS_SIZE, values: () => [], grid: { show: false }, ticks: { show: false } };
    opts.axes[0] = { show: false };
    opts.legend = { show: false };
    opts.scales.y = { range: [0, 1] };
    let layer;
    const place = (u) => {
      layer.textContent = "";
      for (const e of state.events) {
        const x = u.valToPos(e.ts_ms / 1000, "x");
        if (x < 0 || x > u.over.clientWidth) continue;
        const m = document.createElement("span");
        m.className = "marker";
        m.style.left = `${x}px`;
        m.style.background = EVENT_COLORS[e.kind] || "#718096";
        m.title = `${timeLabel(e.ts_ms / 1000)} ${e.kind}${e.process_type ? ` (${e.process_type})` : ""}: ${e.text}`;
        m.dataset.kind = e.kind;
        layer.appendChild(m);
      }
    };
    opts.plugins.push({
      hooks: {
        init: [(u) => {
          layer = document.createElement("div");
          layer.className = "events-layer";
          u.over.appendChild(layer);
        }],
        draw: [place],
      },
    });
    const u = new uPlot(opts, [state.xs, spec.series[0].values], root);
    return { spec, u };
  }

  window.DrainpipeCharts = { BUILD, grid, options, eventsStrip, visibleEvents, alertBands, fmt, timeLabel, EVENT_COLORS };
})();
