// streamrec console: a read-only view over the JSON API (GET /model, /stats, /metrics,
// /popular, /users/…, /items/…). Every URL is relative to the page (…/console/), so the
// console works behind an Ingress under any path prefix. Ids come from users of the API:
// they are only ever written with textContent, never as HTML.
"use strict";

const API = new URL("../", window.location.href);
const REFRESH_MS = 5000;
const KNOWN_SHOWN = 30;
// Every list asks for its items' titles (the API's fields=); an item without one shows its id.
const FIELDS = "title";
const ingestSeries = { labels: [], values: [] };
let lastCount = null;
let qualityChart = null;
let ingestChart = null;

function url(path, params) {
  const u = new URL(path, API);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u;
}

async function getJSON(path, params) {
  const r = await fetch(url(path, params), { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${r.status} ${body.error || ""}: ${body.message || r.statusText}`);
  return body;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? wrap(c) : el("td", c));
  return tr;
}

function wrap(node) { const td = document.createElement("td"); td.appendChild(node); return td; }
function fill(id, rows) { const b = document.querySelector(`#${id} tbody`); b.replaceChildren(...rows); }
function setText(id, v) { document.getElementById(id).textContent = v; }
function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(2) + " %"; }
function num(x, d) { return x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d); }
function when(unix) { return new Date(unix * 1000).toLocaleTimeString(); }
function itemLabel(it) { return it.title ? `${it.title} (${it.item})` : it.item; }

function age(seconds) {
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// Prometheus text exposition -> [{name, labels, value}].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: parseFloat(m[3]) });
  }
  return out;
}

function total(samples, name, filter) {
  return samples.filter((s) => s.name === name && (!filter || filter(s.labels)))
    .reduce((a, s) => a + s.value, 0);
}

// Upper bound of the bucket holding quantile q of a cumulative histogram.
function quantileBound(samples, name, q) {
  const buckets = samples.filter((s) => s.name === `${name}_bucket`)
    .map((s) => [parseFloat(s.labels.le), s.value]).sort((a, b) => a[0] - b[0]);
  const count = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!count) return null;
  const hit = buckets.find(([, c]) => c >= q * count);
  return hit ? hit[0] : null;
}

function renderModel(model, stats) {
  setText("model-version", model.version);
  setText("model-age", age(model.age_seconds));
  setText("fresh-events", model.fresh_events);
  const err = model.last_fit_error;
  const box = document.getElementById("fit-error");
  box.hidden = !err;
  if (err) box.textContent = "last fit error: " + (typeof err === "string" ? err : JSON.stringify(err));
  const rows = [...stats.models].reverse().map((m) => {
    const sizes = m.sizes || {};
    const cap = (m.window || {}).capacity;
    return row([m.version, when(m.created_at_unix), num((m.fit || {}).seconds, 2),
      cap ? `${sizes.window} of ${cap}` : (sizes.window ?? "–"), sizes.users ?? "–", sizes.items ?? "–"]);
  });
  fill("history", rows);
}

function renderMetrics(samples) {
  setText("lag-messages", num(total(samples, "streamrec_foldin_lag_messages"), 0));
  setText("lag-seconds", num(total(samples, "streamrec_foldin_lag_seconds"), 2));
  const vis = "streamrec_foldin_visible_seconds";
  const count = total(samples, `${vis}_count`);
  setText("visible-mean", count ? `${(1000 * total(samples, `${vis}_sum`) / count).toFixed(1)} ms` : "–");
  for (const [id, q] of [["visible-p50", 0.5], ["visible-p99", 0.99]]) {
    const b = quantileBound(samples, vis, q);
    setText(id, b === null ? "–" : `${1000 * b} ms`);
  }
  const read = total(samples, "streamrec_foldin_events_total",
    (l) => l.result === "kept" || l.result === "stale");
  const now = Date.now() / 1000;
  if (lastCount !== null && now > lastCount.t) {
    const rate = Math.max(0, (read - lastCount.v) / (now - lastCount.t));
    setText("events-rate", rate.toFixed(1));
    ingestSeries.labels.push(new Date().toLocaleTimeString());
    ingestSeries.values.push(rate);
    if (ingestSeries.labels.length > 120) { ingestSeries.labels.shift(); ingestSeries.values.shift(); }
  }
  lastCount = { t: now, v: read };
  const reasons = samples.filter((s) => s.name === "streamrec_foldin_invalid_total");
  fill("dead-letters", reasons.length ? reasons.map((s) => row([s.labels.reason, s.value]))
    : [row(["none", 0])]);
  drawIngest();
}

function renderOnline(stats) {
  const o = stats.online;
  if (!o) { setText("definitions", "online tracking is off on this replica"); return; }
  const d = o.definitions;
  setText("definitions", `CTR = attributed events / lists served; hit rate = hits / eligible `
    + `positive events within ${d.horizon_seconds} s of the user's last list (weight ≥ `
    + `${d.positive_weight ?? "any"}); buckets of ${d.bucket_seconds} s; ${o.workers} worker(s).`);
  setText("tracked", o.tracked_users);
  setText("tracked-max", o.max_tracked_users);
  setText("evicted", o.evicted);
  fill("versions", Object.entries(o.versions).reverse().map(([v, t]) => row([
    v, t.lists, t.attributed, pct(t.ctr), t.events, t.hits, pct(t.hit_rate), num(t.mean_rank, 2)])));
  drawQuality(o);
}

function interval(i, fmt) {
  return i ? `${fmt(i.estimate)} [${fmt(i.low)}, ${fmt(i.high)}]` : "–";
}

function renderExperiments(stats) {
  const experiments = stats.experiments || [];
  document.getElementById("experiments-none").hidden = experiments.length > 0;
  const rows = [];
  for (const e of experiments) {
    for (const [arm, a] of Object.entries(e.arms)) {
      const vs = e.vs_control[arm];
      // Says plainly, per metric, whether the difference is shown yet.
      const verdict = vs ? vs.verdicts.join("; ") : "control";
      rows.push(row([e.name, e.state, arm, a.lists, interval(a.ctr, pct),
        interval(a.hit_rate, pct), interval(a.mean_rank, (x) => num(x, 2)), verdict]));
    }
  }
  fill("experiment-arms", rows);
}

function drawQuality(o) {
  const labels = o.series.map((b) => when(b.start));
  const datasets = [];
  for (const v of Object.keys(o.versions)) {
    const pick = (k) => o.series.map((b) => (b.versions[v] && b.versions[v][k] !== null
      && b.versions[v][k] !== undefined ? 100 * b.versions[v][k] : null));
    datasets.push({ label: `hit rate ${v}`, data: pick("hit_rate"), spanGaps: true });
    datasets.push({ label: `CTR ${v}`, data: pick("ctr"), borderDash: [4, 3], spanGaps: true });
  }
  if (!qualityChart) {
    qualityChart = new Chart(document.getElementById("quality-chart"), {
      type: "line", data: { labels, datasets },
      options: { animation: false, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "%" } } } },
    });
  } else {
    qualityChart.data.labels = labels;
    qualityChart.data.datasets = datasets;
    qualityChart.update();
  }
}

function drawIngest() {
  if (!ingestChart) {
    ingestChart = new Chart(document.getElementById("ingest-chart"), {
      type: "line",
      data: { labels: ingestSeries.labels, datasets: [{ label: "events/s", data: ingestSeries.values }] },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    });
  } else {
    ingestChart.update();
  }
}

function renderPlacements(placed) {
  const names = placed.placements.map((p) => p.name);
  document.getElementById("placements-none").hidden = names.length > 0;
  const error = document.getElementById("placements-error");
  error.hidden = !placed.error;
  error.textContent = placed.error ? `last change refused: ${placed.error}` : "";
  fill("placement-rows", names.map((name) => {
    const o = placed.online[name];
    return row([name, o.lists, interval(o.ctr, pct), interval(o.hit_rate, pct), pct(o.coverage),
      pct(o.promoted_share), pct(o.exploration_share)]);
  }));
  const select = document.getElementById("placement-select");
  const chosen = select.value;
  const current = [...select.options].map((o) => o.value).slice(1);
  if (current.join(",") !== names.join(",")) {  // keep the choice across refreshes
    const option = (value, label) => { const o = el("option", label); o.value = value; return o; };
    select.replaceChildren(option("", "none"), ...names.map((n) => option(n, n)));
    select.value = names.includes(chosen) ? chosen : "";
  }
}

async function refresh() {
  try {
    const [model, stats, metricsText, popular, placed] = await Promise.all([
      getJSON("model"), getJSON("stats"),
      fetch(url("metrics")).then((r) => r.text()), getJSON("popular", { n: 20, fields: FIELDS }),
      getJSON("placements")]);
    renderModel(model, stats);
    renderMetrics(parseMetrics(metricsText));
    renderOnline(stats);
    renderExperiments(stats);
    renderPlacements(placed);
    document.getElementById("top-items").replaceChildren(
      ...popular.items.map((it) => el("li", itemLabel(it))));
    setText("status", `updated ${new Date().toLocaleTimeString()}`);
    document.body.dataset.ready = "1";
  } catch (e) {
    setText("status", `refresh failed: ${e.message}`);
  }
}

async function because(user, it) {
  const box = document.getElementById("because");
  try {
    const why = await getJSON(`users/${encodeURIComponent(user)}/because/${encodeURIComponent(it.item)}`,
      { fields: FIELDS });
    box.replaceChildren(el("h3", `because of (for ${itemLabel(it)})`), el("ol"));
    box.querySelector("ol").replaceChildren(...why.items.map((x) => el("li", `${itemLabel(x)} — ${num(x.score, 4)}`)));
    if (why.driven_by === "sequential" && why.transitions && why.transitions.length) {
      // The sequential scorer leads: name the transition (what this item came after).
      const t = why.transitions[0];
      box.append(el("p", `comes next after ${itemLabel(t)} (your ${t.position === 1 ? "latest" : `#${t.position} latest`} item)`, "transition"));
    }
  } catch (e) {
    box.replaceChildren(el("p", e.message, "error"));
  }
}

async function click(user, it, rid) {
  const item = it.item;
  const token = document.getElementById("token").value;
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(url("interactions"), { method: "POST", headers,
    body: JSON.stringify({ user, item, recommendation_id: rid }) });
  const body = await r.json().catch(() => ({}));
  setText("write-result", r.ok ? `recorded ${user} → ${itemLabel(it)}` : `${r.status}: ${body.message || ""}`);
}

// What a person typed ("50, 51,") as the API's comma list ("50,51"): the API refuses empty
// entries (a dropped one could silently change the request), a form should just tidy them.
function idList(text) { return text.split(",").map(s => s.trim()).filter(Boolean).join(","); }

async function exploreUser(ev) {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const user = f.get("user").trim();
  const params = { n: f.get("n"), exclude_seen: f.get("exclude_seen") ? "true" : "false",
    items: idList(f.get("items")), exclude: idList(f.get("exclude")), fields: FIELDS };
  if (f.get("placement")) params.placement = f.get("placement");
  const meta = document.getElementById("user-meta");
  try {
    const recs = await getJSON(`users/${encodeURIComponent(user)}/recommendations`, params);
    meta.textContent = `model ${recs.model_version}; fallback ${recs.fallback ?? "none"}; `
      + `fresh events ${recs.fresh_events}; placement ${recs.placement ?? "none"}; `
      + `recommendation_id ${recs.recommendation_id ?? "–"}`;
    fill("user-recs", recs.items.map((it, k) => {
      const why = el("button", "because", "link");
      why.type = "button";
      why.addEventListener("click", () => because(user, it));
      const act = el("button", "click", "link");
      act.type = "button";
      act.addEventListener("click", () => click(user, it, recs.recommendation_id));
      const cell = document.createElement("span");
      cell.append(why, act);
      return row([k + 1, itemLabel(it), num(it.score, 4), it.mark ?? "", cell]);
    }));
    document.getElementById("because").replaceChildren();
    const known = recs.fallback ? null
      : await getJSON(`users/${encodeURIComponent(user)}/items`, { fields: FIELDS });
    const all = known ? [...known.fresh, ...known.items] : [];
    const shown = all.slice(0, KNOWN_SHOWN).map((it) => el("li", `${itemLabel(it)} (weight ${it.weight})`));
    if (all.length > KNOWN_SHOWN) shown.push(el("li", `… and ${all.length - KNOWN_SHOWN} more`, "muted"));
    document.getElementById("known-items").replaceChildren(
      ...(all.length ? shown : [el("li", "no known items (cold start)")]));
  } catch (e) {
    meta.textContent = e.message;
    fill("user-recs", []);
  }
}

async function exploreItem(ev) {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const list = document.getElementById("similar");
  try {
    const sim = await getJSON(`items/${encodeURIComponent(f.get("item").trim())}/similar`, { n: f.get("n"), fields: FIELDS });
    list.replaceChildren(...sim.items.map((it) => el("li", `${itemLabel(it)} — ${num(it.score, 4)}`)));
  } catch (e) {
    list.replaceChildren(el("li", e.message, "error"));
  }
}

document.getElementById("user-form").addEventListener("submit", exploreUser);
document.getElementById("item-form").addEventListener("submit", exploreItem);
refresh();
setInterval(refresh, REFRESH_MS);
