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
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sub { color: var(--muted); font-size: 13px; margin: 0 0 8px; }
.empty { color: var(--muted); font-style: italic; padding: 24px 0; }
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
  <div id="warnings" class="warnings hidden"></div>
  <section><h2>The store</h2><p class="sub">carts, money and recovery, defined as in <code>cartlift summary</code></p>
    <table id="store"><tbody></tbody></table><p id="store-empty" class="empty hidden"></p></section>
  <section><h2>Funnel</h2><p class="sub">sessions reaching each step, counted as <code>cartlift funnel</code></p>
    <div id="funnel" class="chart"></div><p id="funnel-empty" class="empty hidden"></p></section>
  <section><h2>Carts at risk now</h2><p class="sub">open carts (the session is still going: they may still convert), riskiest first</p>
    <table id="risk"><thead><tr><th>cart (session)</th><th>customer</th><th class="num">value</th><th class="num">P(abandon)</th><th>chosen action</th></tr></thead><tbody></tbody></table>
    <p id="risk-empty" class="empty hidden"></p></section>
  <section><h2>Incremental profit against the holdout</h2><p class="sub">treated carts vs carts never messaged, 95 % interval</p>
    <div id="impact" class="chart"></div><p id="impact-empty" class="empty hidden"></p><p id="impact-note" class="sub"></p></section>
  <section><h2>Decisions and outcomes</h2><p class="sub">logged decisions per action and how many carts their customers bought within the recovery window</p>
    <div id="decisions" class="chart"></div><p id="decisions-empty" class="empty hidden"></p></section>
  <section><h2>Messages</h2><p class="sub">the outbox: due, sent, failed and deferred</p>
    <table id="messages"><tbody></tbody></table><p id="messages-empty" class="empty hidden"></p></section>
  <section><h2>Orders after a message</h2><p class="sub" id="attribution-sub">orders credited to the last click, else the last message sent (<code>cartlift attribution</code>)</p>
    <table id="attribution"><thead><tr><th>action</th><th>channel</th><th class="num">sent</th><th class="num">clicked</th><th class="num">orders</th><th class="num">revenue</th><th class="num">profit</th></tr></thead><tbody></tbody></table>
    <p id="attribution-empty" class="empty hidden"></p></section>
  <section><h2>Sales after a recommendation</h2><p class="sub" id="recs-sub">products bought after a list showed them, credited to the last list (<code>cartlift attribution</code>)</p>
    <table id="recs"><thead><tr><th>where shown</th><th class="num">lists</th><th class="num">items shown</th><th class="num">products bought</th><th class="num">orders</th><th class="num">revenue</th></tr></thead><tbody></tbody></table>
    <p id="recs-empty" class="empty hidden"></p></section>
  <section><h2>Experiments</h2><p class="sub">lift against the control with its 95 % interval, and the verdict</p>
    <table id="experiments"><thead><tr><th>experiment</th><th>variant</th><th class="num">units</th><th class="num">mean</th><th class="num">lift (95 % CI)</th><th>verdict</th></tr></thead><tbody></tbody></table>
    <p id="experiments-empty" class="empty hidden"></p></section>
  <section><h2>Models</h2><table id="models"><thead><tr><th>kind</th><th>name</th><th>version</th><th>trained</th><th>quality</th></tr></thead><tbody></tbody></table>
    <p id="models-empty" class="empty hidden"></p></section>
</main>
<script>
"use strict";
const REFRESH_MS = 5000;
const layout = (extra) => Object.assign({margin: {l: 60, r: 20, t: 10, b: 60}, height: 280}, extra || {});
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
const fmt = (x, d) => x === null || x === undefined ? "—" : Number(x).toLocaleString("en", {minimumFractionDigits: d, maximumFractionDigits: d});
const pct = (x, d) => x === null || x === undefined ? "—" : (100 * x).toFixed(d === undefined ? 1 : d) + " %";

// a panel with no data says so in one line instead of drawing empty axes
function panel(id, hasData, note) {
  const body = document.getElementById(id), empty = document.getElementById(id + "-empty");
  body.classList.toggle("hidden", !hasData);
  empty.classList.toggle("hidden", hasData);
  empty.textContent = hasData ? "" : note;
  return hasData;
}

function rows(id, list) {
  const body = document.querySelector("#" + id + " tbody");
  body.innerHTML = "";
  for (const cells of list) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      const [value, cls, keyName] = Array.isArray(c) ? c : [c, "", ""];
      td.textContent = value;
      if (cls) td.className = cls;
      if (keyName) tr.dataset.key = keyName;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function draw(d) {
  const cur = d.currency;
  const money = (x) => x === null || x === undefined ? "—" : fmt(x, 2) + " " + cur;
  text("kpi-events", d.events.toLocaleString("en"));
  text("kpi-sessions", d.sessions.toLocaleString("en"));
  text("kpi-live", d.live_sessions.toLocaleString("en"));
  text("kpi-updated", d.generated_at);
  const warnings = document.getElementById("warnings");
  warnings.replaceChildren(...(d.warnings || []).map(w => {
    const p = document.createElement("p"); p.textContent = "Warning: " + w.message; return p;
  }));
  warnings.classList.toggle("hidden", !(d.warnings || []).length);
  const s = d.store;
  if (panel("store", s.carts > 0, "No data yet: no cart has been added in this store.")) {
    rows("store", [
      [["carts", "", "carts"], [fmt(s.carts, 0), "num"]],
      [["cart abandonment", "", "abandonment_rate"], [pct(s.abandonment_rate) + " (" + fmt(s.abandoned_carts, 0) + " carts)", "num"]],
      [["value left in abandoned carts", "", "abandoned_value"], [money(s.abandoned_value), "num"]],
      [["open carts (may still convert)", "", "open_carts"], [fmt(s.open_carts, 0), "num"]],
      [["recovered carts", "", "recovered_carts"], [fmt(s.recovered_carts, 0) + " (" + money(s.recovered_value) + ")", "num"]],
      [["orders", "", "orders"], [fmt(s.orders, 0), "num"]],
      [["revenue", "", "revenue"], [money(s.revenue), "num"]],
      [["average order value", "", "average_order_value"], [money(s.average_order_value), "num"]],
    ]);
  }
  if (panel("funnel", d.funnel.length > 0, "No data yet: no events in the store.")) {
    Plotly.react("funnel", [{type: "bar", name: "sessions", x: d.funnel.map(s => s.step),
      y: d.funnel.map(s => s.sessions), text: d.funnel.map(s => s.sessions.toLocaleString("en")), textposition: "auto",
      marker: {color: "#2563eb"}}], layout({yaxis: {title: {text: "sessions"}}}), config);
  }
  if (panel("risk", d.carts_at_risk.length > 0, "No open carts right now: carts appear here as their events are posted.")) {
    rows("risk", d.carts_at_risk.map(r => [r.session_id, r.user_id || "—", [money(r.cart_value), "num"],
      [r.p_abandon === null ? "no model" : r.p_abandon.toFixed(2), "num"], r.action || "not decided yet"]));
  }
  const imp = d.impact || {};
  const p = imp.incremental_profit;
  const decided = (imp.by_action || []).some(a => a.action !== "(not decided)");
  const hasImpact = decided && !!(p && p.estimate !== null && p.estimate !== undefined);
  const why = imp.note || (imp.carts && !decided
    ? "Not measured yet: the program has not decided for any cart (" + imp.carts.treated.toLocaleString("en") + " treated and "
      + imp.carts.holdout.toLocaleString("en") + " held-out carts are waiting)."
    : "No data yet: treated and held-out carts need outcomes (their window must close).");
  if (panel("impact", hasImpact, why)) {
    Plotly.react("impact", [{type: "bar", x: ["incremental profit"], y: [p.estimate],
      error_y: {type: "data", symmetric: false, array: [p.ci_high - p.estimate], arrayminus: [p.estimate - p.ci_low]},
      text: [money(p.estimate)], textposition: "outside", marker: {color: "#16a34a"}}],
      layout({yaxis: {title: {text: cur}}, margin: {l: 70, r: 20, t: 30, b: 40}}), config);
  }
  text("impact-note", hasImpact ? (imp.carts.treated.toLocaleString("en") + " treated carts vs " + imp.carts.holdout.toLocaleString("en")
    + " held out (" + pct(imp.holdout_share, 0) + "); interval " + money(p ? p.ci_low : null) + " to " + money(p ? p.ci_high : null)) : "");
  if (panel("decisions", d.decisions.length > 0, "No decisions logged yet: POST /v1/carts/{id}/decide or `cartlift act decide`.")) {
    Plotly.react("decisions", [
      {type: "bar", name: "decisions", x: d.decisions.map(r => r.action), y: d.decisions.map(r => r.count)},
      {type: "bar", name: "carts bought", x: d.decisions.map(r => r.action), y: d.decisions.map(r => r.converted)}
    ], layout({barmode: "group", yaxis: {title: {text: "carts"}}}), config);
  }
  const m = d.messages;
  // the outbox exists as soon as a delivery worker ran; with nothing in it, say so rather than show zeros
  const anyMessage = !!m && (m.due + m.sent + m.failed + m.deferred) > 0;
  if (panel("messages", anyMessage, "No messages yet: they appear here once the delivery step schedules them.")) {
    rows("messages", [["due", [fmt(m.due, 0), "num"]], ["sent", [fmt(m.sent, 0), "num"]],
      ["failed", [fmt(m.failed, 0), "num"]], ["deferred", [fmt(m.deferred, 0), "num"]]]);
  }
  const at = d.attribution;
  const hours = (h) => h >= 24 && h % 24 === 0 ? (h / 24) + (h === 24 ? " day" : " days") : h + " hours";
  if (panel("attribution", !!at && at.messages.sent > 0, "No messages sent yet: orders are credited to messages once some go out.")) {
    text("attribution-sub", fmt(at.attributed.orders, 0) + " of " + fmt(at.orders, 0) + " orders (" + money(at.attributed.revenue)
      + ") came after a message: " + fmt(at.attributed.click.orders, 0) + " after a click within " + hours(at.click_window_hours)
      + ", " + fmt(at.attributed.view.orders, 0) + " after an unclicked message within " + hours(at.view_window_hours)
      + ". Credit, not cause: the holdout measures that.");
    rows("attribution", at.by_action.map(r => [r.action, r.channel, [fmt(r.sent, 0), "num"], [fmt(r.clicked, 0), "num"],
      [fmt(r.orders, 0), "num"], [money(r.revenue), "num"], [money(r.profit), "num"]]));
  }
  const rc = at ? at.recommendations : null;
  if (panel("recs", !!rc && rc.lists_shown > 0, "No recommendations shown yet: they are logged once the service or a message shows a list.")) {
    const rb = at.attributed.recommendation;
    text("recs-sub", fmt(rb.items, 0) + " products in " + fmt(rb.orders, 0) + " orders (" + money(rb.revenue)
      + ") were bought within " + hours(at.rec_window_hours) + " after a list showed them to the customer; each is credited to the last list.");
    rows("recs", rc.by_context.map(r => [r.context, [fmt(r.lists, 0), "num"], [fmt(r.items_shown, 0), "num"],
      [fmt(r.items_bought, 0), "num"], [fmt(r.orders, 0), "num"], [money(r.revenue), "num"]]));
  }
  const ex = [];
  for (const e of d.experiments) {
    if (!e.variants.length) ex.push([e.experiment, "—", "", "", "", e.note || "not analysable yet"]);
    for (const v of e.variants) {
      ex.push([e.experiment, v.name, [fmt(v.n, 0), "num"], [fmt(v.mean, 4), "num"],
        [v.is_control ? "control" : pct(v.lift) + " (" + pct(v.ci_low) + " to " + pct(v.ci_high) + ")", "num"],
        v.is_control ? "" : v.verdict]);
    }
  }
  if (panel("experiments", ex.length > 0, "No experiments yet: `cartlift experiment create NAME` starts one.")) rows("experiments", ex);
  const models = Object.entries(d.models);
  if (panel("models", models.length > 0, "No models loaded yet: `cartlift train --all` trains them.")) {
    rows("models", models.map(([kind, m]) => [kind, m.name, m.version, m.trained_at || "",
      Object.entries(m.quality || {}).map(([k, v]) => k + " " + (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : v)).join(", ")]));
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
