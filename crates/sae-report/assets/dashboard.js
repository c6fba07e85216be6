// SAE report dashboard: builds the page from the inlined index of the report (each group's units as
// one array per summary field) and shows a unit's card from its chunk file (units-<hash>/<kind>-<n>.js,
// added as a <script> element when first needed, so it works from file://). Corpus text only ever
// reaches the page through text nodes (createTextNode / textContent), never as HTML.
"use strict";
(function () {
  const R = JSON.parse(document.getElementById("report-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const COLORS = { latents: "#d9480f", neurons: "#1971c2", basis: "#2f9e44", untrained: "#868e96", random: "#9c36b5" };
  const vocab = {}; // token id -> text, filled from each chunk loaded
  const tok = (id) => (Object.prototype.hasOwnProperty.call(vocab, id) ? vocab[id] : "<id " + id + ">");
  const show = (s) => String(s).replace(/\n/g, "\u23ce").replace(/\t/g, "\u21e5");

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  const fmt = (x, d) => (x === null || x === undefined ? "-" : Number(x).toFixed(d === undefined ? 3 : d));
  const sci = (x) => (x === null || x === undefined ? "-" : Number(x).toExponential(2));
  const f1 = (u) => (u.explanation ? u.explanation.f1 : 0);
  // Scored: active on at least min_active rows of each half (fit half, held-out half).
  const scored = (u) => u.active > 0 && u.active_fit >= Math.max(1, R.settings.min_active) && u.active_heldout >= Math.max(1, R.settings.min_active);
  const ci = (c) => (c ? "[" + fmt(c.lo) + ", " + fmt(c.hi) + "]" : "");

  // ---------- units: the inlined index, and the chunks with their full data ----------
  // Index units carry what the table, the search and the plots use (density = active / rows, as the
  // analyzer computes it); g.full[id] is the unit as in report.json once its chunk has loaded.
  for (const g of R.groups) {
    const x = g.index;
    g.units = x.active.map((a, i) => ({
      id: i, active: a, density: g.rows > 0 ? a / g.rows : 0, log10_density: a > 0 && g.rows > 0 ? Math.log10(a / g.rows) : null,
      max: x.max[i], kurtosis: x.kurtosis[i], active_fit: x.active_fit[i], active_heldout: x.active_heldout[i],
      explanation: x.f1[i] === null ? null : { f1: x.f1[i] }, explanation_text: x.explanation_text[i],
    }));
    g.full = {};
    g.logits = {};
  }
  const chunkState = {}; // file -> "loading" | "loaded" | "failed"
  const chunkWaiting = {}; // file -> callbacks waiting for it
  window[R.chunks.callback] = (c) => {
    const g = R.groups.find((x) => x.kind === c.group);
    if (!g) return;
    Object.assign(vocab, c.vocab);
    c.units.forEach((u, i) => {
      g.full[c.start + i] = u;
      if (c.logits && c.logits[i]) g.logits[c.start + i] = c.logits[i];
    });
  };
  const chunkFile = (kind, id) => R.chunks.dir + "/" + kind + "-" + Math.floor(id / R.chunks.units) + ".js";
  function loadChunk(kind, id, done) {
    const file = chunkFile(kind, id);
    if (chunkState[file] === "loaded" || chunkState[file] === "failed") { done(); return; }
    (chunkWaiting[file] = chunkWaiting[file] || []).push(done);
    if (chunkState[file] === "loading") return;
    chunkState[file] = "loading";
    const s = document.createElement("script");
    const finish = (ok) => {
      chunkState[file] = ok ? "loaded" : "failed";
      s.remove();
      for (const f of chunkWaiting[file].splice(0)) f();
    };
    s.addEventListener("load", () => finish(true));
    s.addEventListener("error", () => finish(false));
    s.src = file;
    document.head.appendChild(s);
  }

  // ---------- header ----------
  const sae = R.sae;
  // A transcoder (d_out set) reads one hook and writes another: "transcoder: IN -> OUT".
  const tc = sae.d_out !== null && sae.d_out !== undefined;
  document.getElementById("title").textContent = (tc ? "Transcoder report: " : "SAE report: ") + sae.d_sae + " latents, " + sae.architecture;
  const hooks = tc
    ? "transcoder: " + (sae.hook_name || "?") + " -> " + (sae.hook_name_out || "?") + " \u00b7 d_in " + sae.d_in + " \u00b7 d_out " + sae.d_out
    : "hook " + (sae.hook_name || "?") + " \u00b7 d_in " + sae.d_in;
  document.getElementById("meta").textContent =
    "model " + (sae.model_name || "?") + " \u00b7 " + hooks +
    " \u00b7 SAE " + sae.path + " \u00b7 monosemantic: F1 \u2265 " + R.settings.mono_threshold +
    (R.spliced_eval && R.spliced_eval.ce_loss_recovered !== null && R.spliced_eval.ce_loss_recovered !== undefined
      ? " \u00b7 CE loss recovered " + fmt(R.spliced_eval.ce_loss_recovered) : "");

  // ---------- plots ----------
  function axes(g, w, h, pad, xlab, ylab, xr, yr) {
    g.appendChild(svg("line", { x1: pad, y1: h - pad, x2: w - 5, y2: h - pad, stroke: "#889" }));
    g.appendChild(svg("line", { x1: pad, y1: 5, x2: pad, y2: h - pad, stroke: "#889" }));
    g.appendChild(svg("text", { x: w / 2, y: h - 4, "text-anchor": "middle" }, xlab));
    g.appendChild(svg("text", { x: 10, y: h / 2, transform: "rotate(-90 10 " + h / 2 + ")", "text-anchor": "middle" }, ylab));
    g.appendChild(svg("text", { x: pad, y: h - pad + 12, "text-anchor": "middle" }, fmt(xr[0], 1)));
    g.appendChild(svg("text", { x: w - 5, y: h - pad + 12, "text-anchor": "end" }, fmt(xr[1], 1)));
    g.appendChild(svg("text", { x: pad - 3, y: h - pad, "text-anchor": "end" }, fmt(yr[0], 2)));
    g.appendChild(svg("text", { x: pad - 3, y: 12, "text-anchor": "end" }, fmt(yr[1], 2)));
  }
  function lineChart(title, series, xlab, ylab) {
    const w = 360, h = 220, pad = 36;
    const s = svg("svg", { width: w, height: h, role: "img" });
    s.appendChild(svg("title", {}, title));
    let xs = [], ys = [];
    for (const se of series) for (const p of se.points) { xs.push(p[0]); ys.push(p[1]); }
    if (!xs.length) return s;
    const xr = [Math.min(...xs), Math.max(...xs)], yr = [0, Math.max(...ys, 1e-9)];
    const X = (x) => pad + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (w - pad - 5);
    const Y = (y) => h - pad - ((y - yr[0]) / (yr[1] - yr[0] || 1)) * (h - pad - 5);
    axes(s, w, h, pad, xlab, ylab, xr, yr);
    for (const se of series) {
      const pts = se.points.map((p) => X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join(" ");
      s.appendChild(svg("polyline", { points: pts, fill: "none", stroke: se.color, "stroke-width": 2 }));
    }
    return s;
  }
  function scatter(title, series, xlab, ylab) {
    const w = 360, h = 220, pad = 36;
    const s = svg("svg", { width: w, height: h, role: "img" });
    s.appendChild(svg("title", {}, title));
    let xs = [], ys = [];
    for (const se of series) for (const p of se.points) { xs.push(p[0]); ys.push(p[1]); }
    if (!xs.length) return s;
    const xr = [Math.min(...xs), Math.max(...xs)], yr = [0, 1];
    const X = (x) => pad + ((x - xr[0]) / (xr[1] - xr[0] || 1)) * (w - pad - 5);
    const Y = (y) => h - pad - y * (h - pad - 5);
    axes(s, w, h, pad, xlab, ylab, xr, yr);
    for (const se of series) {
      for (const p of se.points) {
        s.appendChild(svg("circle", { cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: 2, fill: se.color, "fill-opacity": 0.45 }));
      }
    }
    return s;
  }
  function sample(arr, n) {
    if (arr.length <= n) return arr;
    const out = [];
    for (let i = 0; i < n; i++) out.push(arr[Math.floor((i * arr.length) / n)]);
    return out;
  }
  function barChart(title, bins, label, color) {
    const w = 300, h = 160, pad = 30;
    const s = svg("svg", { width: w, height: h, role: "img" });
    s.appendChild(svg("title", {}, title));
    if (!bins.length) return s;
    const peak = Math.max(...bins.map((b) => b.count), 1);
    const bw = (w - pad - 5) / bins.length;
    bins.forEach((b, i) => {
      const bh = (b.count / peak) * (h - pad - 10);
      const r = svg("rect", { x: (pad + i * bw).toFixed(1), y: (h - pad - bh).toFixed(1), width: Math.max(bw - 1, 1).toFixed(1), height: bh.toFixed(1), fill: color });
      r.appendChild(svg("title", {}, "[" + fmt(b.lo, 3) + ", " + fmt(b.hi, 3) + "): " + b.count));
      s.appendChild(r);
    });
    axes(s, w, h, pad, label, "count", [bins[0].lo, bins[bins.length - 1].hi], [0, peak]);
    return s;
  }

  // ---------- overview: neurons vs latents ----------
  function overview() {
    const sec = document.getElementById("overview");
    const head = ["group", "units", "alive", "dead", "dense", "scored", "unscored", "median held-out F1 [95% CI]", "in-sample median F1", "F1 q25\u2013q75", "monosemantic", "precision top / middle / bottom band", "median kurtosis", "median density", "\u03c1(kurtosis, F1)", "\u03c1(log density, F1)"];
    const t = el("table", { id: "comparison" }, [el("tr", {}, head.map((h) => el("th", {}, [h])))]);
    for (const g of R.groups) {
      const s = g.summary;
      const q = Object.fromEntries(s.f1_quantiles.map((p) => [p[0], p[1]]));
      t.appendChild(el("tr", {}, [
        el("td", {}, [el("i", { style: "color:" + COLORS[g.kind] }, ["\u25a0 "]), g.label]),
        el("td", { class: "num" }, [s.units]), el("td", { class: "num" }, [s.alive]),
        el("td", { class: "num" }, [s.dead]), el("td", { class: "num" }, [s.dense]),
        el("td", { class: "num" }, [s.scored]), el("td", { class: "num" }, [s.unscored === undefined ? "-" : s.unscored]),
        el("td", { class: "num" }, [fmt(s.median_f1) + " " + ci(s.median_f1_ci)]),
        el("td", { class: "num" }, [fmt(s.in_sample_median_f1)]),
        el("td", { class: "num" }, [fmt(q[0.25]) + "\u2013" + fmt(q[0.75])]),
        el("td", { class: "num" }, [s.monosemantic + " (" + fmt(s.monosemantic_frac === null ? null : 100 * s.monosemantic_frac, 1) + "%)"]),
        el("td", { class: "num" }, [(s.median_band_precision || []).map((b) => fmt(b[1], 2)).join(" / ") || "-"]),
        el("td", { class: "num" }, [fmt(s.median_kurtosis, 1)]), el("td", { class: "num" }, [sci(s.median_density)]),
        el("td", { class: "num" }, [fmt(s.spearman_kurtosis_f1, 2)]), el("td", { class: "num" }, [fmt(s.spearman_density_f1, 2)]),
      ]));
    }
    sec.appendChild(t);
    if (R.comparisons && R.comparisons.length) {
      const ct = el("table", { id: "differences" }, [el("tr", {}, ["median held-out F1 of latents minus", "difference", "95% bootstrap interval"].map((h) => el("th", {}, [h])))]);
      for (const c of R.comparisons) ct.appendChild(el("tr", {}, [el("td", {}, [c.label]), el("td", { class: "num" }, [fmt(c.difference)]), el("td", { class: "num" }, [ci(c.interval)])]));
      sec.appendChild(ct);
    }
    const rules = R.groups.map((g) => g.label + ": active when " + (g.active_rule.rule === "positive" ? "> 0" : "> " + g.active_rule.fraction + " \u00d7 max"));
    rules.push("explanations chosen on half of the documents, F1 measured on the other half; scores over units active on \u2265 " + R.settings.min_active + " rows of each half");
    sec.appendChild(el("p", { class: "muted" }, [rules.join(" \u00b7 ")]));
    const legend = el("div", { class: "legend" }, R.groups.map((g) => el("span", {}, [el("i", { style: "background:" + COLORS[g.kind] }), g.label])));
    sec.appendChild(legend);
    const plots = el("div", { class: "plots" });
    const f1Series = R.groups.map((g) => {
      const alive = g.units.filter(scored);
      const bins = new Array(20).fill(0);
      for (const u of alive) bins[Math.min(19, Math.floor(f1(u) * 20))]++;
      return { color: COLORS[g.kind], points: bins.map((c, i) => [(i + 0.5) / 20, alive.length ? c / alive.length : 0]) };
    });
    plots.appendChild(el("div", {}, [el("h3", {}, ["F1 score distribution (fraction of scored units)"]), lineChart("F1 distribution", f1Series, "F1 of best explanation", "fraction")]));
    const kSeries = R.groups.map((g) => ({
      color: COLORS[g.kind],
      points: sample(g.units.filter((u) => scored(u) && u.kurtosis > 0).map((u) => [Math.log10(u.kurtosis), f1(u)]), 3000),
    }));
    plots.appendChild(el("div", {}, [el("h3", {}, ["Kurtosis vs score"]), scatter("kurtosis vs F1", kSeries, "log10 kurtosis", "F1")]));
    const dSeries = R.groups.map((g) => ({
      color: COLORS[g.kind],
      points: sample(g.units.filter(scored).map((u) => [u.log10_density, f1(u)]), 3000),
    }));
    plots.appendChild(el("div", {}, [el("h3", {}, ["Sparsity vs score"]), scatter("density vs F1", dSeries, "log10 density", "F1")]));
    for (const g of R.groups) {
      const h = g.density_histogram;
      plots.appendChild(el("div", {}, [el("h3", {}, ["log10 density: " + g.label + " (" + h.dead + " dead)"]), barChart("density histogram", h.bins, "log10 density", COLORS[g.kind])]));
    }
    sec.appendChild(plots);
  }

  // ---------- index of units ----------
  // Initial view from the query string: ?group=neurons&sort=density&desc=0&q=text
  const params = new URLSearchParams(location.search);
  const state = { group: R.groups[0].kind, sort: "f1", desc: true, query: "", limit: 200, selected: null };
  if (R.groups.some((g) => g.kind === params.get("group"))) state.group = params.get("group");
  if (["id", "density", "max", "kurtosis", "f1", "explanation"].includes(params.get("sort"))) state.sort = params.get("sort");
  if (params.get("desc") === "0") state.desc = false;
  if (params.get("q")) state.query = params.get("q").trim().toLowerCase();
  const COLS = [
    ["id", "id", (u) => u.id, (u) => u.id],
    ["density", "density", (u) => u.density, (u) => sci(u.density)],
    ["max", "max", (u) => u.max, (u) => fmt(u.max)],
    ["kurtosis", "kurtosis", (u) => (u.kurtosis === null ? -1 : u.kurtosis), (u) => fmt(u.kurtosis, 1)],
    // Units active on fewer than min_active rows get no score in the summaries: they sort below every
    // scored unit (a unit seen once is trivially explained with F1 1) and are marked.
    ["f1", "F1", (u) => (scored(u) ? f1(u) : f1(u) - 2), (u) => fmt(f1(u)) + (scored(u) ? "" : " (rare)")],
    ["explanation", "explanation", (u) => u.explanation_text || "", (u) => u.explanation_text || "(dead)"],
  ];
  function groupOf(kind) { return R.groups.find((g) => g.kind === kind); }
  function indexSection() {
    const sec = document.getElementById("index");
    const select = el("select", { id: "group-select" }, R.groups.map((g) => el("option", { value: g.kind }, [g.label])));
    select.value = state.group;
    select.addEventListener("change", () => { state.group = select.value; state.limit = 200; renderTable(); });
    const input = el("input", { id: "search", type: "search", placeholder: "search id or explanation\u2026" });
    input.value = params.get("q") || "";
    input.addEventListener("input", () => { state.query = input.value.trim().toLowerCase(); state.limit = 200; renderTable(); });
    sec.appendChild(el("div", { class: "controls" }, [select, input]));
    sec.appendChild(el("div", { id: "table-holder" }));
    renderTable();
  }
  function renderTable() {
    const g = groupOf(state.group);
    const col = COLS.find((c) => c[0] === state.sort);
    let rows = g.units;
    if (state.query) {
      const q = state.query;
      rows = rows.filter((u) => String(u.id) === q || (u.explanation_text || "").toLowerCase().includes(q));
    }
    rows = rows.slice().sort((a, b) => {
      const x = col[2](a), y = col[2](b);
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return (state.desc ? -c : c) || a.id - b.id;
    });
    const head = el("tr", {}, COLS.map((c) => {
      const arrow = c[0] === state.sort ? (state.desc ? " \u25bc" : " \u25b2") : "";
      const th = el("th", { class: "sortable" + (c[0] === "explanation" ? "" : " num"), "data-col": c[0] }, [c[1] + arrow]);
      th.addEventListener("click", () => {
        if (state.sort === c[0]) state.desc = !state.desc; else { state.sort = c[0]; state.desc = c[0] !== "id" && c[0] !== "explanation"; }
        renderTable();
      });
      return th;
    }));
    const table = el("table", { id: "units-table" }, [head]);
    for (const u of rows.slice(0, state.limit)) {
      const tr = el("tr", { class: "unit-row" + (state.selected === g.kind + "/" + u.id ? " selected" : ""), "data-id": u.id },
        COLS.map((c) => el("td", { class: c[0] === "explanation" ? "" : "num" }, [c[3](u)])));
      tr.addEventListener("click", () => { location.hash = g.kind + "/" + u.id; });
      table.appendChild(tr);
    }
    const holder = document.getElementById("table-holder");
    holder.replaceChildren(el("p", { class: "muted" }, [rows.length + " of " + g.units.length + " units"]), table);
    if (rows.length > state.limit) {
      const more = el("button", {}, ["show more"]);
      more.addEventListener("click", () => { state.limit += 500; renderTable(); });
      holder.appendChild(more);
    }
  }

  // ---------- one unit ----------
  function contextRow(c, peak) {
    const div = el("div", { class: "ctx" }, [el("span", { class: "act" }, [fmt(c.act, 3)])]);
    c.tokens.forEach((t, i) => {
      const a = c.acts[i];
      const alpha = peak > 0 ? Math.max(0, Math.min(1, a / peak)) : 0;
      const span = el("span", { class: "tok" + (i === c.center ? " center" : ""), title: "act " + fmt(a, 4) + " \u00b7 id " + t }, [show(tok(t))]);
      span.style.background = "rgba(255, 110, 0, " + alpha.toFixed(3) + ")";
      div.appendChild(span);
    });
    return div;
  }
  function logitChart(title, pairs, color) {
    const w = 300, rowH = 16, h = pairs.length * rowH + 6;
    const s = svg("svg", { width: w, height: h, role: "img" });
    s.appendChild(svg("title", {}, title));
    const peak = Math.max(...pairs.map((p) => Math.abs(p[1])), 1e-9);
    pairs.forEach((p, i) => {
      const y = 3 + i * rowH;
      s.appendChild(svg("text", { x: 110, y: y + 11, "text-anchor": "end" }, show(tok(p[0]))));
      s.appendChild(svg("rect", { x: 115, y: y + 2, width: ((Math.abs(p[1]) / peak) * 140).toFixed(1), height: rowH - 4, fill: color }));
      s.appendChild(svg("text", { x: w - 2, y: y + 11, "text-anchor": "end" }, fmt(p[1], 2)));
    });
    return s;
  }
  // Shows the card of a unit, loading its chunk first when needed; `done` runs once the card (or why
  // it cannot be shown) is on the page.
  function renderPanel(kind, id, done) {
    const g = groupOf(kind);
    const sec = document.getElementById("panel");
    const finished = done || (() => {});
    if (!g || !g.units[id]) { sec.replaceChildren(el("h2", {}, ["Unit"]), el("p", { class: "muted" }, ["No such unit."])); finished(); return; }
    state.selected = kind + "/" + id;
    if (!g.full[id]) {
      const file = chunkFile(kind, id);
      const title = el("h2", { id: "unit-title" }, [g.label + " #" + id]);
      sec.replaceChildren(title, el("p", { class: "muted" }, ["loading " + file + "\u2026"]));
      selectGroup(kind);
      loadChunk(kind, id, () => {
        if (state.selected !== kind + "/" + id) { finished(); return; }
        if (g.full[id]) { renderPanel(kind, id, finished); return; }
        sec.replaceChildren(title, el("p", { class: "muted", id: "unit-missing" }, ["Cannot load " + file + ": the dashboard's side files must sit next to index.html."]));
        finished();
      });
      return;
    }
    showUnit(g, g.full[id], sec);
    selectGroup(kind);
    finished();
  }
  function selectGroup(kind) {
    if (state.group !== kind) {
      state.group = kind;
      document.getElementById("group-select").value = kind;
    }
    renderTable();
  }
  function showUnit(g, u, sec) {
    const id = u.id;
    const e = u.explanation;
    const parts = [el("h2", { id: "unit-title" }, [g.label + " #" + u.id])];
    parts.push(el("p", { id: "unit-explanation" }, e
      ? [el("span", { class: "expl" }, [u.explanation_text]), "  held-out F1 " + fmt(e.f1) + " \u00b7 precision " + fmt(e.precision) + " \u00b7 recall " + fmt(e.recall) +
        (u.in_sample ? " \u00b7 in-sample F1 " + fmt(u.in_sample.f1) : "") + (u.counts_exact ? "" : " (lower bounds)") + (scored(u) ? "" : " \u00b7 too rare to score")]
      : ["never active on the fit half"]));
    if (u.bands && u.bands.length) {
      parts.push(el("p", { id: "unit-bands", class: "muted" }, ["held-out precision by activation band: " + u.bands.map((b) => b.band + " " + fmt(b.precision, 2) + " (" + b.hits + "/" + b.rows + ")").join(" \u00b7 ")]));
    }
    const stats = [["density", sci(u.density) + " (" + u.active + " of " + g.rows + ")"], ["mean / when active", fmt(u.mean, 4) + " / " + fmt(u.mean_active, 4)],
      ["max / std", fmt(u.max, 4) + " / " + fmt(u.std, 4)], ["skewness / kurtosis", fmt(u.skewness, 2) + " / " + fmt(u.kurtosis, 2)], ["active above", fmt(u.threshold, 4)]];
    parts.push(el("table", { class: "stats" }, stats.map((r) => el("tr", {}, [el("td", {}, [r[0]]), el("td", {}, [r[1]])]))));
    parts.push(el("h3", {}, ["Activation histogram (active values, log bins)"]));
    parts.push(barChart("activation histogram", u.histogram, "activation", COLORS[g.kind]));
    const lg = g.logits[id];
    if (lg) {
      const lensOf = tc && g.kind === "latents" ? " of the decoder row (in the space of " + (sae.hook_name_out || "?") + ")" : "";
      parts.push(el("h3", {}, ["Logit lens" + lensOf + ": promoted / suppressed tokens"]));
      parts.push(el("div", { class: "plots" }, [logitChart("promoted", lg.promoted, "#2f9e44"), logitChart("suppressed", lg.suppressed, "#c92a2a")]));
    }
    const peak = u.max;
    parts.push(el("h3", {}, ["Top contexts"]));
    parts.push(el("div", { id: "top-contexts" }, u.top.map((c) => contextRow(c, peak))));
    for (const q of u.quantiles) {
      parts.push(el("h3", {}, ["Samples from quantile " + Math.round(q.q_lo * 100) + "\u2013" + Math.round(q.q_hi * 100) + "% (" + fmt(q.act_lo) + " \u2026 " + fmt(q.act_hi) + ")"]));
      parts.push(el("div", { class: "quantile" }, q.contexts.map((c) => contextRow(c, peak))));
    }
    sec.replaceChildren(...parts);
  }
  function route(done) {
    const m = /^#(latents|neurons|basis|untrained|random)\/(\d+)$/.exec(location.hash);
    if (m) renderPanel(m[1], Number(m[2]), done);
    else if (done) done();
  }

  // data-rendered once the first card is on the page; data-render-ms: milliseconds since navigation.
  const rendered = () => {
    if (document.body.hasAttribute("data-rendered")) return;
    document.body.setAttribute("data-render-ms", String(Math.round(performance.now())));
    document.body.setAttribute("data-rendered", "true");
  };
  overview();
  indexSection();
  window.addEventListener("hashchange", () => route());
  if (location.hash) route(rendered);
  else {
    const g = groupOf(state.group);
    const key = (u) => (scored(u) ? f1(u) : f1(u) - 2);
    const best = g.units.slice().sort((a, b) => key(b) - key(a) || a.id - b.id)[0];
    if (best) renderPanel(g.kind, best.id, rendered);
  }
  if (!state.selected) rendered();
})();
