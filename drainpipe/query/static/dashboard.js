"use strict";
// The dashboard: sign-in, the app list, and an app's charts from the Metrics API.
// The token stays in this browser (localStorage); a `#token=` fragment is read once and
// removed from the address bar, and fragments never reach the server.
(function () {
  const C = window.DrainpipeCharts;
  const TOKEN_KEY = "drainpipe.token";
  const WINDOWS = { "2h": [7200, 60], "24h": [86400, 600], "72h": [259200, 3600], "7d": [604800, 7200] };
  const REFRESH_MS = 60000;
  const FAMILIES = [
    ["latency", "router.latency"], ["throughput", "router.status"], ["errors", "router.errors"],
    ["memory", "dyno.memory"], ["load", "dyno.load"],
  ];
  const main = document.getElementById("main");
  const statusEl = document.getElementById("status");
  const crumbs = document.getElementById("crumbs");
  const signOut = document.getElementById("sign-out");
  const view = { charts: [], timer: null, loads: 0, generation: 0 };
  window.drainpipe = view; // what is on screen, for tests and the curious

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function token() { return localStorage.getItem(TOKEN_KEY); }

  function takeFragmentToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (!m) return;
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` }, cache: "no-store" });
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON: reported below */ }
    if (!response.ok) {
      throw new HttpError(response.status, (body && body.error) || `${path} answered ${response.status}`);
    }
    return body;
  }

  function say(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function stop() {
    if (view.timer) clearInterval(view.timer);
    view.timer = null;
    for (const c of view.charts) c.u.destroy();
    view.charts = [];
  }

  function showSignIn(message) {
    stop();
    localStorage.removeItem(TOKEN_KEY);
    signOut.hidden = true;
    crumbs.textContent = "";
    main.textContent = "";
    main.append(document.getElementById("sign-in-template").content.cloneNode(true));
    const error = document.getElementById("sign-in-error");
    if (message) { error.textContent = message; error.hidden = false; }
    document.getElementById("sign-in").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      localStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
      route();
    });
    document.getElementById("token").focus();
    document.body.dataset.state = "sign-in";
    say("");
  }

  function failed(err) {
    if (err instanceof HttpError && err.status === 401) return showSignIn(`${err.message}: sign in again.`);
    say(err.message, true);
    document.body.dataset.state = "error";
    if (!view.charts.length) {
      main.textContent = "";
      main.append(el("div", { class: "card error", id: "failure" }, err.message));
    }
  }

  async function appList() {
    crumbs.textContent = "apps";
    const { apps } = await api("/api/v1/apps");
    const rows = await Promise.all(apps.map(async (a) => {
      try { return [a, await api(a.url)]; } catch (err) { return [a, { error: err.message }]; }
    }));
    main.textContent = "";
    if (!apps.length) {
      main.append(el("div", { class: "card" }, "This token reads no apps yet. Create one with ",
        el("code", {}, "drainpipe apps create NAME"), "."));
    } else {
      main.append(el("div", { class: "card" }, el("table", { class: "apps" },
        el("thead", {}, el("tr", {}, el("th", {}, "app"), el("th", {}, "process types"),
          el("th", {}, "last data"), el("th", {}, "dropped (24 h)"))),
        el("tbody", {}, rows.map(([a, c]) => el("tr", {},
          el("td", {}, el("a", { href: `/apps/${encodeURIComponent(a.name)}` }, a.name)),
          el("td", {}, c.error || (c.process_types.join(", ") || "no data yet")),
          el("td", {}, c.last_data ? new Date(c.last_data).toLocaleString() : "–"),
          el("td", {}, c.dropped ? C.fmt(c.dropped.total) : "–")))))));
    }
    document.body.dataset.state = "ready";
    say(`${apps.length} app${apps.length === 1 ? "" : "s"}`);
  }

  function params() { return new URLSearchParams(location.search); }

  function navigate(changes) {
    const q = params();
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) q.delete(k); else q.set(k, v);
    }
    history.pushState(null, "", `${location.pathname}?${q}`);
    route();
  }

  function iso(ms) { return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"); }

  // The resolution of the smallest preset window that holds the span.
  function stepFor(spanMs) {
    for (const [secs, step] of Object.values(WINDOWS)) if (spanMs <= secs * 1000) return step;
    return 7200;
  }

  function rangeQuery(q) {
    if (q.get("start") && q.get("end")) {
      const span = Date.parse(q.get("end")) - Date.parse(q.get("start"));
      return `start=${encodeURIComponent(q.get("start"))}&end=${encodeURIComponent(q.get("end"))}&step=${stepFor(span)}`;
    }
    return `window=${WINDOWS[q.get("window")] ? q.get("window") : "2h"}`;
  }

  function emptyState(name) {
    const drain = `${location.protocol}//drain:DRAIN_SECRET@${location.host}/logs`;
    return el("div", { class: "card empty", id: "empty" },
      el("h2", {}, `No data from ${name} yet`),
      el("p", {}, "Point the app's log drain here. DRAIN_SECRET was printed by ",
        el("code", {}, `drainpipe apps create ${name}`), " (", el("code", {}, `drainpipe apps rotate ${name} --drain-secret`),
        " prints a new one)."),
      el("ol", {},
        el("li", {}, "Add the drain:", el("pre", {}, `heroku drains:add ${drain} -a ${name}`)),
        el("li", {}, "Turn on dyno memory and load metrics:", el("pre", {}, `heroku labs:enable log-runtime-metrics -a ${name}`)),
        el("li", {}, "Restart the dynos so they log them, then wait a minute:", el("pre", {}, `heroku ps:restart -a ${name}`))),
      el("p", { class: "muted" }, "This page checks again every minute."));
  }

  function controls(name, catalogue, pt, q) {
    const zoomed = q.get("start") && q.get("end");
    const current = WINDOWS[q.get("window")] ? q.get("window") : "2h";
    const windows = el("div", { class: "group", role: "group", "aria-label": "window" }, el("label", {}, "window"),
      Object.keys(WINDOWS).map((w) => el("button", {
        type: "button", "data-window": w, "aria-pressed": String(!zoomed && w === current),
        onclick: () => navigate({ window: w, start: null, end: null }),
      }, w)));
    const select = el("select", { id: "process-type", onchange: (ev) => navigate({ process_type: ev.target.value }) },
      catalogue.process_types.map((p) => el("option", { value: p, selected: p === pt }, p)));
    const parts = [windows, el("div", { class: "group" }, el("label", { for: "process-type" }, "process type"), select)];
    if (zoomed) {
      parts.push(el("div", { class: "group" }, el("span", { class: "muted" },
        `${C.timeLabel(Date.parse(q.get("start")) / 1000)} – ${C.timeLabel(Date.parse(q.get("end")) / 1000)}`),
        el("button", { type: "button", id: "reset-zoom", onclick: () => navigate({ start: null, end: null }) }, "Back to the window")));
    }
    const d = catalogue.dropped;
    if (d && d.total) {
      const late = Object.values(d.late).reduce((a, b) => a + b, 0);
      parts.push(el("span", { class: "drops", title: JSON.stringify(d) },
        `${C.fmt(d.total)} lines dropped in the past day (${C.fmt(late)} late, ${C.fmt(d.total - late)} skipped)`));
    }
    if (catalogue.partial) {
      parts.push(el("span", { class: "drops", id: "partial", title: catalogue.partial.reason },
        `Part of the store did not answer (shard ${catalogue.partial.missing_shards.join(", ")}): ` +
        "process types stored there are missing"));
    }
    return el("div", { class: "controls card" }, parts);
  }

  // The router and dyno families for a process type, and the window's events.
  // Alert history of a little more than the view (its exact span comes with the answers).
  function historyRange(q) {
    if (q.get("start") && q.get("end")) {
      return `start=${encodeURIComponent(q.get("start"))}&end=${encodeURIComponent(q.get("end"))}`;
    }
    const span = (WINDOWS[q.get("window")] || WINDOWS["2h"])[0] * 1000;
    const end = Date.now() + 3600000;
    return `start=${iso(end - span - 2 * 3600000)}&end=${iso(end)}`;
  }

  function fetchFamilies(name, pt, q) {
    const base = `/api/v1/apps/${encodeURIComponent(name)}`;
    const range = rangeQuery(q);
    return Promise.all([
      api(`${base}/alerts/history?${historyRange(q)}`).catch(() => ({ history: [] })),
      api(`${base}/events?${range.replace(/&step=\d+/, "")}`),
      ...FAMILIES.map(([, m]) => api(`${base}/metrics/${m}?${range}&process_type=${encodeURIComponent(pt)}`)),
    ]);
  }

  async function fetchAll(name, pt, q, customs, families) {
    const base = `/api/v1/apps/${encodeURIComponent(name)}`;
    const range = rangeQuery(q);
    const [[history, events, ...bodies], more] = await Promise.all([
      families || fetchFamilies(name, pt, q),
      Promise.all(customs.map((m) => api(`${base}/metrics/${m}?${range}&process_type=${encodeURIComponent(pt)}`))),
    ]);
    const points = {};
    const metrics = [...FAMILIES.map(([, m]) => m), ...customs];
    [...bodies, ...more].forEach((body, i) => {
      const s = body.series.find((x) => x.process_type === pt);
      points[metrics[i]] = s ? s.points : [];
    });
    return { events: events.events, history: history.history, points, first: bodies[0] };
  }

  function specsOf(data, xs, step, customs) {
    const specs = FAMILIES.map(([id, m]) => C.BUILD[id](xs, data.points[m], step));
    for (const m of customs) specs.push(C.BUILD.custom(xs, data.points[m], step, m));
    return specs;
  }

  function draw(container, specs, state, onZoom) {
    for (const c of view.charts) c.u.destroy();
    view.charts = [];
    container.textContent = "";
    const width = Math.max(320, container.clientWidth - 34);
    const strip = el("section", { class: "card chart-card", "data-chart": "events" },
      el("div", { class: "chart-head" }, el("h2", {}, "Events"),
        el("span", { class: "note" }, state.events.length ? `${state.events.length} in this window` : "none in this window")));
    const stripChart = el("div", { class: "chart" });
    strip.append(stripChart);
    container.append(strip);
    view.charts.push(C.eventsStrip(stripChart, state, width, onZoom));
    for (const spec of specs) {
      const section = el("section", { class: "card chart-card", "data-chart": spec.id },
        el("div", { class: "chart-head" }, el("h2", {}, spec.title), el("span", { class: "note" }, spec.note || spec.unit || "")));
      const root = el("div", { class: "chart" });
      section.append(root);
      container.append(section);
      const u = new uPlot(C.options(spec, state, width, 200, onZoom), [state.xs, ...spec.series.map((s) => s.values)], root);
      view.charts.push({ spec, u });
    }
  }

  async function appView(name) {
    const mine = view.generation;
    const stale = () => mine !== view.generation;
    crumbs.textContent = "";
    crumbs.append(el("a", { href: "/" }, "apps"), " / ", name);
    const q = params();
    // The charts every app has are asked for with the catalogue, not after it: a view
    // costs one round trip, and one more only for an app's own metrics.
    const guess = q.get("process_type") || "web";
    const early = fetchFamilies(name, guess, q);
    early.catch(() => {}); // its failure is reported if it is used
    const catalogue = await api(`/api/v1/apps/${encodeURIComponent(name)}`);
    if (stale()) return;
    main.textContent = "";
    if (!catalogue.process_types.length) {
      main.append(emptyState(name));
      document.body.dataset.state = "ready";
      say("waiting for data");
      if (!stale()) view.timer = setInterval(() => { if (!document.hidden) route(); }, REFRESH_MS);
      return;
    }
    const pts = catalogue.process_types;
    const pt = pts.includes(q.get("process_type")) ? q.get("process_type") : pts.includes("web") ? "web" : pts[0];
    const customs = catalogue.metrics.filter((m) => m.startsWith("custom."));
    main.append(controls(name, catalogue, pt, q));
    const container = el("div", { id: "charts" });
    main.append(container);
    const live = !(q.get("start") && q.get("end"));
    const onZoom = (lo, hi) => {
      const span = Math.max(hi - lo, 5 * 60000);
      navigate({ start: iso(lo), end: iso(lo + span) });
    };
    let prefetched = pt === guess ? early : null;
    const load = async (first) => {
      const data = await fetchAll(name, pt, q, customs, prefetched);
      prefetched = null;
      if (stale()) return;
      const startMs = Date.parse(data.first.start);
      const endMs = Date.parse(data.first.end);
      const step = data.first.step;
      const state = {
        startS: startMs / 1000, endS: endMs / 1000, stepS: step,
        xs: C.grid(startMs, endMs, step), events: C.visibleEvents(data.events, pt),
        bands: C.alertBands(data.history, pt),
      };
      const specs = specsOf(data, state.xs, step, customs);
      const same = !first && view.charts.length === specs.length + 1 &&
        specs.every((s, i) => view.charts[i + 1].spec.series.map((x) => x.label).join() === s.series.map((x) => x.label).join());
      if (same) {
        // A refresh: new data into the same charts, so a reader's place is kept.
        Object.assign(view.state, state);
        view.charts[0].u.setData([state.xs, state.xs.map(() => null)]);
        specs.forEach((s, i) => {
          const c = view.charts[i + 1];
          c.spec.series.forEach((old, k) => { old.values = s.series[k].values; old.raw = s.series[k].raw; });
          c.u.root.closest(".chart-card").querySelector(".note").textContent = s.note || s.unit || "";
          c.u.setData([state.xs, ...s.series.map((x) => x.values)]);
        });
      } else {
        view.state = state;
        draw(container, specs, state, onZoom);
      }
      await Promise.resolve(); // uPlot draws in a microtask queued as each chart is made
      view.loads += 1;
      view.drawnAt = performance.now();
      document.body.dataset.state = "ready";
      say(`${live ? "live · " : ""}updated ${new Date().toLocaleTimeString()}`);
    };
    await load(true);
    if (live && !stale()) {
      view.timer = setInterval(() => {
        if (!document.hidden) load(false).catch(failed);
      }, REFRESH_MS);
    }
  }

  async function route() {
    stop();
    view.generation += 1; // a view still loading from before sees it is stale and stops
    takeFragmentToken();
    if (!token()) return showSignIn();
    signOut.hidden = false;
    document.body.dataset.state = "loading";
    say("loading…");
    const m = /^\/apps\/([^/]+)\/?$/.exec(location.pathname);
    try {
      if (m) await appView(decodeURIComponent(m[1]));
      else await appList();
    } catch (err) {
      failed(err);
    }
  }

  signOut.addEventListener("click", () => showSignIn());
  window.addEventListener("popstate", route);
  window.addEventListener("hashchange", route);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      const box = document.getElementById("charts");
      if (!box) return;
      const width = Math.max(320, box.clientWidth - 34);
      for (const c of view.charts) c.u.setSize({ width, height: c.u.height });
    }, 100);
  });
  route();
})();
