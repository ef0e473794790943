"""The dashboard page: one HTML document; plotly.js is served by the app itself (no CDN)."""

from __future__ import annotations

from typing import Final

__all__ = ["DASHBOARD_HTML"]

DASHBOARD_HTML: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cartlift live</title>
<style>
:root { --fg: #1f2933; --muted: #616e7c; --line: #e4e7eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); }
header { padding: 16px 28px; border-bottom: 1px solid var(--line); display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
header h1 { margin: 0; font-size: 22px; }
.kpi { color: var(--muted); }
.kpi b { color: var(--fg); font-variant-numeric: tabular-nums; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; padding: 16px 28px 40px; }
section { border: 1px solid var(--line); border-radius: 8px; padding: 12px; min-height: 340px; }
section h2 { margin: 0 0 4px; font-size: 16px; }
.chart { height: 300px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; }
#login { padding: 40px 28px; }
#login input { font: inherit; padding: 6px 8px; width: 360px; }
#login button { font: inherit; padding: 6px 14px; }
.error { color: #b91c1c; }
.hidden { display: none; }
.warnings p { margin: 4px 0; padding: 6px 10px; background: #fff4e0; border-left: 4px solid #d98a00; }
</style>
<script src="static/plotly.min.js"></script>
</head>
<body>
<header>
  <h1>cartlift live</h1>
  <span class="kpi">events <b id="kpi-events">-</b></span>
  <span class="kpi">sessions <b id="kpi-sessions">-</b></span>
  <span class="kpi">live sessions <b id="kpi-live">-</b></span>
  <span class="kpi">updated <b id="kpi-updated">-</b></span>
  <span id="status" class="error"></span>
</header>
<form id="login" class="hidden">
  <p>This dashboard reads the service's API: paste an API key with the <code>admin</code> scope
  (<code>cartlift keys create --scope admin</code>). It stays in this browser tab only.</p>
  <input id="key" type="password" autocomplete="off" placeholder="cl_...">
  <button type="submit">Open</button>
</form>
<main id="board" class="hidden">
  <section id="warnings" class="warnings hidden"></section>
  <section><h2>Funnel (sessions reaching each step)</h2><div id="funnel" class="chart"></div></section>
  <section><h2>Abandonment</h2><div id="abandonment" class="chart"></div></section>
  <section><h2>Carts at risk now</h2><div id="risk" class="chart"></div></section>
  <section><h2>Decisions and outcomes</h2><div id="decisions" class="chart"></div></section>
  <section><h2>Experiments (mean of the metric per variant)</h2><div id="experiments" class="chart"></div></section>
  <section><h2>Models</h2><table id="models"><thead><tr><th>kind</th><th>name</th><th>version</th><th>trained</th><th>quality</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
"use strict";
const REFRESH_MS = 5000;
const layout = (extra) => Object.assign({margin: {l: 60, r: 20, t: 10, b: 60}, height: 300}, extra || {});
const config = {displayModeBar: false, responsive: true};
let timer = null;
window.cartliftRefreshes = 0;

function key() { return sessionStorage.getItem("cartlift-key"); }

function showLogin(message) {
  document.getElementById("login").classList.remove("hidden");
  document.getElementById("board").classList.add("hidden");
  document.getElementById("status").textContent = message || "";
}

function text(id, value) { document.getElementById(id).textContent = value; }

function draw(d) {
  text("kpi-events", d.events.toLocaleString("en"));
  text("kpi-sessions", d.sessions.toLocaleString("en"));
  text("kpi-live", d.live_sessions.toLocaleString("en"));
  text("kpi-updated", d.generated_at);
  Plotly.react("funnel", [{type: "bar", name: "sessions", x: d.funnel.map(s => s.step),
    y: d.funnel.map(s => s.sessions), text: d.funnel.map(s => s.sessions), textposition: "auto",
    marker: {color: "#2563eb"}}], layout(), config);
  const a = d.abandonment;
  Plotly.react("abandonment", [
    {type: "indicator", mode: "number", name: "rate", value: a.rate === null ? 0 : a.rate * 100,
     number: {suffix: " %", valueformat: ".1f"}, title: {text: "carts abandoned (" + a.abandoned + " of " + a.carts + ")"},
     domain: {x: [0, 0.5], y: [0, 1]}},
    {type: "indicator", mode: "number", name: "value", value: a.abandoned_value,
     number: {valueformat: ",.2f"}, title: {text: "value left in carts"}, domain: {x: [0.5, 1], y: [0, 1]}}
  ], layout({margin: {l: 10, r: 10, t: 30, b: 10}}), config);
  const risk = d.carts_at_risk.slice().reverse();
  Plotly.react("risk", [{type: "bar", orientation: "h", name: "P(abandon)",
    y: risk.map(r => r.session_id), x: risk.map(r => r.p_abandon === null ? 0 : r.p_abandon),
    customdata: risk.map(r => r.cart_value),
    hovertemplate: "%{y}: P(abandon) %{x:.2f}, cart %{customdata:.2f}<extra></extra>",
    marker: {color: "#dc2626"}}], layout({margin: {l: 120, r: 20, t: 10, b: 40}, xaxis: {range: [0, 1], title: {text: "P(abandon)"}}}), config);
  Plotly.react("decisions", [
    {type: "bar", name: "decisions", x: d.decisions.map(r => r.action), y: d.decisions.map(r => r.count)},
    {type: "bar", name: "converted", x: d.decisions.map(r => r.action), y: d.decisions.map(r => r.converted)}
  ], layout({barmode: "group"}), config);
  Plotly.react("experiments", d.experiments.map(e => ({type: "bar", name: e.experiment,
    x: e.variants.map(v => v.name), y: e.variants.map(v => v.mean)})), layout({barmode: "group"}), config);
  const warnings = document.getElementById("warnings");
  warnings.replaceChildren(...(d.warnings || []).map(w => {
    const p = document.createElement("p"); p.textContent = "Warning: " + w.message; return p;
  }));
  warnings.classList.toggle("hidden", !(d.warnings || []).length);
  const body = document.querySelector("#models tbody");
  body.innerHTML = "";
  for (const [kind, m] of Object.entries(d.models)) {
    const tr = document.createElement("tr");
    const quality = Object.entries(m.quality || {})
      .map(([k, v]) => k + " " + (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : v)).join(", ");
    for (const v of [kind, m.name, m.version, m.trained_at || "", quality]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  window.cartliftRefreshes += 1;
  window.cartliftData = d;
}

async function refresh() {
  try {
    const r = await fetch("v1/dashboard", {headers: {"Authorization": "Bearer " + key()}});
    if (r.status === 401 || r.status === 403) {
      sessionStorage.removeItem("cartlift-key");
      clearInterval(timer); timer = null;
      const body = await r.json();
      showLogin(body.error ? body.error.message : "The key was refused.");
      return;
    }
    if (!r.ok) { text("status", "the service answered " + r.status); return; }
    text("status", "");
    draw(await r.json());
  } catch (e) {
    text("status", "cannot reach the service: " + e);
  }
}

function start() {
  document.getElementById("login").classList.add("hidden");
  document.getElementById("board").classList.remove("hidden");
  refresh();
  if (timer === null) timer = setInterval(refresh, REFRESH_MS);
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("cartlift-key", document.getElementById("key").value.trim());
  start();
});
if (key()) start(); else showLogin("");
</script>
</body>
</html>
"""
