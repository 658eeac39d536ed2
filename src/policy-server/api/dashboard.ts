// The dashboard: one self-contained page (no CDN, no build step) that polls /api/pipelines and
// /api/decisions and draws inline SVG charts per pipeline: replicas and GPU share per stage,
// P99 against the SLO, cost rate, the bottleneck and the decisions over time; and, when an LLM
// selects, whether it decides (its request shape) or why the bandit does, and what it costs.
export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SAIR policy</title>
<style>
  :root { --fg:#1d2330; --muted:#6b7385; --bg:#f6f7fb; --card:#fff; --line:#e3e6ee; --bad:#c62828; --ok:#2e7d32; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:16px; align-items:baseline; padding:14px 24px; background:#1d2330; color:#fff; flex-wrap:wrap; }
  header h1 { font-size:18px; margin:0; }
  header .meta { color:#c5cad6; font-size:13px; }
  .badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; background:#455; color:#fff; }
  .badge.leader { background:var(--ok); } .badge.standby { background:#8a6d00; } .badge.dry { background:#5c4bb5; }
  main { padding:16px 24px; }
  section.pipeline { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; margin-bottom:18px; }
  section.pipeline h2 { font-size:16px; margin:0 0 8px; }
  .stats { display:flex; gap:22px; flex-wrap:wrap; margin-bottom:10px; }
  .stat .k { color:var(--muted); font-size:12px; } .stat .v { font-size:18px; font-weight:600; }
  .stat .v.bad { color:var(--bad); } .stat .v.good { color:var(--ok); }
  .charts { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr)); gap:12px; }
  figure { margin:0; border:1px solid var(--line); border-radius:6px; padding:6px 8px; }
  figcaption { font-size:12px; color:var(--muted); margin-bottom:2px; }
  svg text { font-size:10px; fill:var(--muted); }
  .legend { font-size:11px; color:var(--muted); } .legend span { margin-right:10px; } .legend i { display:inline-block; width:10px; height:3px; margin-right:4px; vertical-align:middle; }
  table { width:100%; border-collapse:collapse; font-size:12px; } th, td { text-align:left; padding:4px 6px; border-bottom:1px solid var(--line); vertical-align:top; }
  .error { color:var(--bad); font-size:12px; } .empty { color:var(--muted); }
</style>
</head>
<body>
<header>
  <h1>SAIR policy</h1>
  <span class="meta" id="meta">connecting…</span>
</header>
<main>
  <div id="llm"></div>
  <div id="pipelines"><p class="empty">Waiting for the first tick…</p></div>
  <section class="pipeline">
    <h2>Recent decisions</h2>
    <table data-testid="decisions"><thead><tr><th>time</th><th>pipeline</th><th>selector</th><th>applied ([floor]: a safety floor's, else the selector's)</th><th>bottleneck</th><th>reason</th></tr></thead><tbody id="decisions"></tbody></table>
  </section>
</main>
<script>
"use strict";
var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
var W = 420, H = 150, L = 40, R = 8, T = 8, B = 20;

function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; }); }
function fmt(v, d) { if (v === null || v === undefined || !isFinite(v)) return "–"; var a = Math.abs(v); return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(d === undefined ? 1 : d) : v.toFixed(d === undefined ? 2 : d); }
function clock(t) { var d = new Date(t); return d.toISOString().slice(11, 19); }

// series: [{name, color, points: [[t, v]...], dash, step, dots}], opts: {min, max, extra, log}.
// With log the y axis spans whole decades, each labelled, so one early spike (a cold start's
// P99 of seconds) leaves the later points of tens or hundreds of ms apart instead of flattened.
function chart(testid, title, series, opts) {
  opts = opts || {};
  var all = [];
  series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] !== null && isFinite(p[1])) all.push(p); }); });
  var t0 = Infinity, t1 = -Infinity, y0 = opts.min !== undefined ? opts.min : Infinity, y1 = opts.max !== undefined ? opts.max : -Infinity;
  all.forEach(function (p) { t0 = Math.min(t0, p[0]); t1 = Math.max(t1, p[0]); if (opts.min === undefined) y0 = Math.min(y0, p[1]); if (opts.max === undefined) y1 = Math.max(y1, p[1]); });
  (opts.extra || []).forEach(function (v) { y1 = Math.max(y1, v); y0 = Math.min(y0, v); });
  if (!isFinite(t0)) { t0 = 0; t1 = 1; }
  if (t1 === t0) t1 = t0 + 1;
  if (!isFinite(y0)) { y0 = 0; y1 = 1; }
  if (opts.min === undefined) y0 = Math.min(0, y0);
  if (y1 === y0) y1 = y0 + 1;
  y1 = y1 + (y1 - y0) * 0.08;
  var decades = [];
  if (opts.log) {
    var lo = Infinity, hi = -Infinity;
    all.map(function (p) { return p[1]; }).concat(opts.extra || []).forEach(function (v) { if (v > 0) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (!isFinite(lo)) { lo = 1; hi = 10; }
    var d0 = Math.floor(Math.log10(lo)), d1 = Math.max(d0 + 1, Math.ceil(Math.log10(hi))), every = Math.ceil((d1 - d0) / 5);
    y0 = Math.pow(10, d0); y1 = Math.pow(10, d1);
    for (var k = d0; k <= d1; k += every) decades.push(Math.pow(10, k));
  }
  function X(t) { return L + (t - t0) / (t1 - t0) * (W - L - R); }
  // Zero or less has no logarithm: such a point sits on the bottom line.
  function Y(v) { return T + (1 - (opts.log ? Math.log10(Math.max(v, y0) / y0) / Math.log10(y1 / y0) : (v - y0) / (y1 - y0))) * (H - T - B); }
  var out = '<svg data-testid="' + esc(testid) + '" viewBox="0 0 ' + W + ' ' + H + '" width="100%" role="img" aria-label="' + esc(title) + '">';
  out += '<line x1="' + L + '" y1="' + (H - B) + '" x2="' + (W - R) + '" y2="' + (H - B) + '" stroke="#ccd"/>';
  out += '<line x1="' + L + '" y1="' + T + '" x2="' + L + '" y2="' + (H - B) + '" stroke="#ccd"/>';
  if (opts.log) {
    decades.forEach(function (v) {
      out += '<line x1="' + L + '" y1="' + Y(v).toFixed(1) + '" x2="' + (W - R) + '" y2="' + Y(v).toFixed(1) + '" stroke="#eef"/>';
      out += '<text class="tick" x="' + (L - 4) + '" y="' + Math.max(T + 8, Y(v) + 3).toFixed(1) + '" text-anchor="end">' + esc(String(v)) + '</text>';
    });
  } else {
    out += '<text x="' + (L - 4) + '" y="' + (T + 8) + '" text-anchor="end">' + esc(fmt(y1 - (y1 - y0) * 0.08 / 1.08)) + '</text>';
    out += '<text x="' + (L - 4) + '" y="' + (H - B) + '" text-anchor="end">' + esc(fmt(y0)) + '</text>';
  }
  out += '<text x="' + L + '" y="' + (H - 4) + '">' + esc(all.length ? clock(t0) : "") + '</text>';
  out += '<text x="' + (W - R) + '" y="' + (H - 4) + '" text-anchor="end">' + esc(all.length ? clock(t1) : "") + '</text>';
  series.forEach(function (s, i) {
    var color = s.color || COLORS[i % COLORS.length];
    var pts = s.points.filter(function (p) { return p[1] !== null && isFinite(p[1]); });
    if (s.dots) {
      pts.forEach(function (p) { out += '<circle data-series="' + esc(s.name) + '" cx="' + X(p[0]).toFixed(1) + '" cy="' + Y(p[1]).toFixed(1) + '" r="' + (s.r || 2.5) + '" fill="' + color + '"><title>' + esc(s.name + " " + clock(p[0]) + (p[2] ? ": " + p[2] : "")) + '</title></circle>'; });
      return;
    }
    var d = "";
    pts.forEach(function (p, j) {
      var x = X(p[0]).toFixed(1), y = Y(p[1]).toFixed(1);
      if (j === 0) d += "M" + x + "," + y;
      else if (s.step) d += "H" + x + "V" + y;
      else d += "L" + x + "," + y;
    });
    out += '<path data-series="' + esc(s.name) + '" data-points="' + pts.length + '" d="' + d + '" fill="none" stroke="' + color + '" stroke-width="' + (s.width || 1.8) + '"' + (s.dash ? ' stroke-dasharray="5,4"' : '') + '/>';
  });
  out += '</svg>';
  var legend = '<div class="legend">' + series.map(function (s, i) { return '<span><i style="background:' + (s.color || COLORS[i % COLORS.length]) + '"></i>' + esc(s.name) + '</span>'; }).join("") + '</div>';
  return '<figure><figcaption>' + esc(title) + '</figcaption>' + out + legend + '</figure>';
}

function tokens(t) { return fmt(t.prompt, 0) + " prompt (" + fmt(t.cached, 0) + " cached) + " + fmt(t.completion, 0) + " completion"; }

// One row per LLM endpoint: who decides and why, the request shape, latency and what it cost.
function llmSection(list) {
  if (!list || !list.length) return "";
  var h = '<section class="pipeline" data-testid="llm"><h2>LLM</h2><table><thead><tr><th>endpoint</th><th>status</th><th>calls</th><th>latency p50 / p99</th><th>tokens</th><th>per call</th><th>cost</th><th>budget this hour</th></tr></thead><tbody>';
  list.forEach(function (l) {
    var b = l.budget, lim = b ? [b.limits.pipelineTokensPerHour ? b.limits.pipelineTokensPerHour + "/pipeline" : "", b.limits.totalTokensPerHour ? b.limits.totalTokensPerHour + " in all" : ""].filter(Boolean).join(", ") : "";
    h += '<tr data-llm="' + esc(l.baseUrl + " " + l.model) + '"><td>' + esc(l.model) + '<br><span class="legend">' + esc(l.baseUrl) + '</span></td>';
    h += '<td class="' + (l.summary.indexOf("fallback") === 0 ? "error" : "") + '" data-testid="llm-summary">' + esc(l.summary) + (l.learned.length ? '<br><span class="legend">learned: ' + esc(l.learned.join("; ")) + '</span>' : "") + '</td>';
    h += '<td>' + l.answered + " / " + l.calls + '</td>';
    h += '<td>' + (l.latencyMs ? fmt(l.latencyMs.p50, 0) + " / " + fmt(l.latencyMs.p99, 0) + " ms" : "–") + '</td>';
    h += '<td data-testid="llm-tokens">' + esc(tokens(l.tokens)) + '</td>';
    h += '<td>' + (l.tokensPerCall ? esc(tokens(l.tokensPerCall)) : "–") + '</td>';
    h += '<td data-testid="llm-cost">$' + l.dollars.toFixed(4) + '</td>';
    h += '<td>' + (b ? esc(fmt(b.total, 0) + " tokens" + (lim ? " of " + lim : "") + (b.refused ? "; " + b.refused + " decisions left to the bandit" : "")) : "–") + '</td></tr>';
  });
  return h + '</tbody></table></section>';
}

function pipelineLlm(llm, id) {
  var t = { prompt: 0, completion: 0, cached: 0 }, dollars = 0, seen = false;
  (llm || []).forEach(function (l) { var u = l.pipelines[id]; if (u) { seen = true; t.prompt += u.tokens.prompt; t.completion += u.tokens.completion; t.cached += u.tokens.cached; dollars += u.dollars; } });
  return seen ? { tokens: t, dollars: dollars } : null;
}

function pipelineSection(p, llm) {
  var pts = p.points, last = pts.length ? pts[pts.length - 1] : null;
  var stageName = function (i) { var s = p.stages[i]; return s ? "s" + i + " " + s.name : "s" + i; };
  var replicas = p.stages.map(function (s, i) { return { name: stageName(i), step: true, points: pts.map(function (x) { return [x.time, x.replicas[i]]; }) }; });
  var gpuStages = p.stages.filter(function (s) { return s.gpuCores; });
  var gpu = gpuStages.map(function (s) { return { name: stageName(s.index), color: COLORS[s.index % COLORS.length], step: true, points: pts.map(function (x) { return [x.time, x.gpuCores[s.index]]; }) }; });
  var p99 = [{ name: "P99", color: "#1f77b4", points: pts.map(function (x) { return [x.time, x.p99Ms]; }) },
             { name: "dropping (P99 unbounded)", dots: true, r: 3, color: "#c62828", points: pts.filter(function (x) { return x.p99Unbounded; }).map(function (x) { return [x.time, p.sloP99Ms * 2, "requests dropped"]; }) },
             { name: "SLO", color: "#c62828", dash: true, points: pts.length ? [[pts[0].time, p.sloP99Ms], [pts[pts.length - 1].time, p.sloP99Ms]] : [] }];
  var cost = [{ name: "$/hour", color: "#2ca02c", points: pts.map(function (x) { return [x.time, x.costRate]; }) },
              { name: "share-priced $/hour", color: "#8c564b", dash: true, points: pts.map(function (x) { return [x.time, x.shareCostRate]; }) }];
  var bott = [{ name: "bottleneck", dots: true, color: "#d62728", points: pts.filter(function (x) { return x.bottleneck !== null; }).map(function (x) { return [x.time, x.bottleneck, stageName(x.bottleneck)]; }) }];
  var acted = pts.filter(function (x) { return x.actions.length > 0; });
  var decisions = [
    { name: "scale", dots: true, r: 3.5, color: "#1f77b4", points: acted.filter(function (x) { return x.actions.some(function (a) { return a.indexOf("replicas") >= 0; }); }).map(function (x) { return [x.time, 1, x.actions.join(", ")]; }) },
    { name: "gpu share", dots: true, r: 3.5, color: "#9467bd", points: acted.filter(function (x) { return x.actions.some(function (a) { return a.indexOf("gpu") >= 0; }); }).map(function (x) { return [x.time, 2, x.actions.join(", ")]; }) },
    { name: "hold", dots: true, r: 1.5, color: "#aab", points: pts.filter(function (x) { return x.actions.length === 0; }).map(function (x) { return [x.time, 0, "hold"]; }) }
  ];
  var over = last && (last.p99Unbounded || (last.p99Ms !== null && last.p99Ms > p.sloP99Ms));
  var p99Text = last && last.p99Unbounded ? "∞ (drops)" : fmt(last ? last.p99Ms : null);
  var h = '<section class="pipeline" data-pipeline="' + esc(p.id) + '">';
  h += '<h2>' + esc(p.id) + ' <span class="badge' + (p.mode === "DryRun" ? " dry" : "") + '">' + esc(p.mode) + '</span></h2>';
  h += '<div class="stats">';
  h += '<div class="stat"><div class="k">P99 / SLO</div><div class="v ' + (last && (last.p99Ms !== null || last.p99Unbounded) ? (over ? "bad" : "good") : "") + '" data-testid="p99">' + p99Text + ' / ' + fmt(p.sloP99Ms, 0) + ' ms</div></div>';
  h += '<div class="stat"><div class="k">cost rate</div><div class="v" data-testid="cost">$' + fmt(last ? last.costRate : null) + '/h</div></div>';
  h += '<div class="stat"><div class="k">share-priced</div><div class="v" data-testid="share-cost">$' + fmt(last ? last.shareCostRate : null) + '/h</div></div>';
  h += '<div class="stat"><div class="k">bottleneck</div><div class="v" data-testid="bottleneck">' + esc(last && last.bottleneck !== null ? stageName(last.bottleneck) : "–") + '</div></div>';
  h += '<div class="stat"><div class="k">replicas</div><div class="v" data-testid="replicas">' + esc(last ? last.replicas.join(" / ") : "–") + '</div></div>';
  h += '<div class="stat"><div class="k">ticks</div><div class="v">' + p.ticks + '</div></div>';
  var used = pipelineLlm(llm, p.id);
  if (used) h += '<div class="stat"><div class="k">LLM tokens (cost)</div><div class="v" data-testid="pipeline-llm">' + fmt(used.tokens.prompt + used.tokens.completion, 0) + ' ($' + used.dollars.toFixed(4) + ')</div></div>';
  h += '</div>';
  if (p.lastError) h += '<p class="error">last tick failed: ' + esc(p.lastError.message) + '</p>';
  h += '<div class="charts">';
  h += chart("chart-replicas", "Replicas per stage", replicas, { min: 0 });
  h += gpu.length ? chart("chart-gpu", "GPU share per stage (% of one GPU)", gpu, { min: 0, max: 100 }) : "";
  h += chart("chart-p99", "End-to-end P99 vs SLO (ms, log scale)", p99, { log: true, extra: [p.sloP99Ms] });
  h += chart("chart-cost", "Cost rate ($/hour: packed onto whole GPUs where the cluster tells; dashed: share-priced)", cost, { min: 0 });
  h += chart("chart-bottleneck", "Bottleneck stage (index)", bott, { min: 0, max: Math.max(1, p.stages.length - 1) });
  h += chart("chart-decisions", "Decisions (0 hold, 1 replicas, 2 GPU share)", decisions, { min: 0, max: 2 });
  h += '</div>';
  if (last && last.reason) h += '<p class="legend">last reason: ' + esc(last.reason) + '</p>';
  return h + '</section>';
}

// A token from the URL's fragment (never sent to a server) is kept for this tab only.
var tokenInUrl = /(?:^#|&)token=([^&]+)/.exec(location.hash);
if (tokenInUrl) {
  sessionStorage.setItem("sair-token", decodeURIComponent(tokenInUrl[1]));
  history.replaceState(null, "", location.pathname + location.search);
}
var token = sessionStorage.getItem("sair-token");
var auth = token ? { authorization: "Bearer " + token } : {};

async function refresh() {
  try {
    var res = await Promise.all([fetch("api/pipelines", { cache: "no-store", headers: auth }), fetch("api/decisions?limit=20", { cache: "no-store", headers: auth })]);
    if (res[0].status === 401) {
      document.getElementById("meta").textContent = (await res[0].json()).error;
      return;
    }
    var data = await res[0].json(), dec = await res[1].json();
    document.getElementById("meta").innerHTML = esc(data.source) + " · " + esc(data.identity) + ' · selector ' + esc(data.selector) + ' · <span class="badge ' + (data.leader ? "leader" : "standby") + '">' + (data.leader ? "leader" : "standby") + '</span> · updated ' + esc(new Date().toISOString().slice(11, 19));
    document.getElementById("llm").innerHTML = llmSection(data.llm);
    var html = data.pipelines.map(function (p) { return pipelineSection(p, data.llm); }).join("");
    if (data.invalid && data.invalid.length) html += '<section class="pipeline"><h2>Refused pipelines</h2>' + data.invalid.map(function (i) { return '<p class="error">' + esc(i.id) + ": " + esc(i.error) + "</p>"; }).join("") + "</section>";
    document.getElementById("pipelines").innerHTML = html || '<p class="empty">No pipelines yet. Label a namespace sair.dev/enabled=true and create an InferencePipeline or an HPA.</p>';
    document.getElementById("decisions").innerHTML = dec.decisions.map(function (d) {
      var applied = d.applied.length ? d.applied.map(function (a, i) { return (a.kind === "replicas" ? "s" + a.stage + " replicas " + a.replicas : "s" + a.stage + " gpu " + a.gpuCores + "%") + (d.appliedBy && d.appliedBy[i] === "floor" ? " [floor]" : ""); }).join(", ") : "hold";
      return "<tr><td>" + esc(clock(d.time)) + "</td><td>" + esc(d.pipelineId) + "</td><td>" + esc(d.selector) + (d.fallbackReason ? " (" + esc(d.fallbackReason) + ")" : "") + "</td><td>" + esc((d.dryRun ? "dry-run: " : "") + applied) + "</td><td>" + esc(d.bottleneck === null ? "–" : "s" + d.bottleneck) + "</td><td>" + esc(d.reason) + "</td></tr>";
    }).join("");
    document.body.setAttribute("data-updated", String(Date.now()));
  } catch (e) {
    document.getElementById("meta").textContent = "cannot reach the policy server: " + e;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
