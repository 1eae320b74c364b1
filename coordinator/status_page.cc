// The status page: one self-contained HTML document (no external scripts, styles or fonts:
// labs may be offline) whose script reads the JSON API (web_api.h) every second and draws
// jobs with progress and ETA, the selected job's tasks and events, workers, and sweeps
// (jobs named SWEEP.VARIANT) with their quality-against-size plot.
#include "coordinator/web_api.h"

namespace sp {

const char kStatusPageHtml[] = R"PAGE(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shardpress</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:1em 2em;color:#1d1d1f}
h1{font-size:20px;display:inline;margin-right:1em} h2{font-size:16px;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;vertical-align:top}
th{font-weight:600;background:#f4f4f6} tr.job{cursor:pointer} tr.job:hover,tr.selected{background:#eef3ff}
.bar{position:relative;width:14em;height:1.2em;background:#e4e4e8;border-radius:3px;overflow:hidden}
.fill{position:absolute;left:0;top:0;bottom:0;background:#4a7bd8}
.bar span{position:relative;padding-left:.4em;font-size:12px}
.SUCCEEDED{color:#1a7f37} .FAILED,.TASK_FAILED,.error,.msg{color:#b00020} .RUNNING,.LEASED,.EVALUATING,.ASSEMBLING{color:#0550ae}
.dim{color:#777} #events{font:12px ui-monospace,monospace;max-height:22em;overflow:auto;padding-left:3.5em}
svg text{font:11px system-ui,sans-serif}
</style></head>
<body>
<header><h1>shardpress</h1><span id="updated" class="dim">loading</span> <span id="problem" class="msg"></span></header>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>job</th><th>name</th><th>state</th><th>progress</th><th>ETA</th><th>elapsed</th></tr></thead><tbody></tbody></table>
<section id="detail" hidden>
<h2 id="detail-title"></h2><p id="detail-error" class="error"></p><p id="detail-eval"></p>
<table id="tasks"><thead><tr><th>task</th><th>state</th><th>worker</th><th>attempt</th><th>time</th><th>error</th></tr></thead><tbody></tbody></table>
<h2>Events</h2><ol id="events"></ol>
</section>
<h2>Workers</h2>
<table id="workers"><thead><tr><th>worker</th><th>host</th><th>device</th><th>memory</th><th>liveness</th><th>leases</th></tr></thead><tbody></tbody></table>
<section id="sweeps-section" hidden><h2>Sweeps</h2><div id="sweeps"></div></section>
<script>
"use strict";
const $ = id => document.getElementById(id);
let selected = decodeURIComponent((location.hash.match(/job=([^&]*)/) || [])[1] || "");
let nowMs = Date.now();

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; ++i; }
  return (i ? n.toFixed(2) : n) + " " + u[i];
}
function duration(ms) {
  if (!(ms >= 0)) return "";
  if (ms < 10000) return (ms / 1000).toFixed(1) + " s";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
}
async function get(path) {
  const r = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  if (r.status === 401) throw new Error("not signed in: reload the page to sign in");
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}
function bar(done, total) {
  const p = total ? done / total : 0;
  return el("div", {class: "bar", "data-done": done, "data-total": total},
            el("div", {class: "fill", style: "width:" + (100 * p).toFixed(1) + "%"}), el("span", {}, done + "/" + total));
}
function eta(j) {
  if (j.state !== "RUNNING" || !j.tasks_done || !j.started_ms || j.tasks_done >= j.tasks_total) return "";
  const spent = j.now_ms - j.started_ms;
  return duration(spent * (j.tasks_total - j.tasks_done) / j.tasks_done);
}
function elapsed(j) {
  if (!j.started_ms) return "";
  return duration((j.finished_ms || j.now_ms) - j.started_ms);
}
function fill(tbody, rows) { tbody.replaceChildren(...rows); }

function renderJobs(jobs) {
  fill(document.querySelector("#jobs tbody"), jobs.map(j => {
    const name = j.spec.name || j.id;
    const tr = el("tr", {class: "job" + (name === selected || j.id === selected ? " selected" : ""), "data-job": name},
                  el("td", {}, j.id), el("td", {}, name), el("td", {class: j.state}, j.state),
                  el("td", {}, bar(j.tasks_done, j.tasks_total)), el("td", {}, eta(j)), el("td", {}, elapsed(j)));
    tr.onclick = () => { selected = name; location.hash = "job=" + encodeURIComponent(name); refresh(); };
    return tr;
  }));
}

async function renderDetail(ref) {
  const [j, ev] = await Promise.all([get("/api/jobs/" + encodeURIComponent(ref)),
                                     get("/api/jobs/" + encodeURIComponent(ref) + "/events")]);
  $("detail").hidden = false;
  $("detail-title").textContent = (j.spec.name || j.id) + " (" + j.id + "): " + j.state;
  $("detail-error").textContent = j.error || "";
  const e = j.evaluation || {};
  $("detail-eval").textContent = e.perplexity ? "perplexity " + e.perplexity.toFixed(4) + " (original " +
      e.original_perplexity.toFixed(4) + ")" + (e.done ? (e.passed ? ", gate passed" : ", gate FAILED") : "") : "";
  fill(document.querySelector("#tasks tbody"), (j.tasks || []).map(t => el("tr", {"data-task": t.id},
      el("td", {}, t.id), el("td", {class: t.state}, t.state), el("td", {}, t.worker_id), el("td", {}, t.attempt),
      el("td", {}, t.finished_ms && t.started_ms ? duration(t.finished_ms - t.started_ms)
                  : t.started_ms ? duration(j.now_ms - t.started_ms) + " so far" : ""),
      el("td", {class: t.state === "DONE" ? "dim" : "error"},
         t.last_error ? (t.state === "DONE" ? "earlier attempt: " : "") + t.last_error : ""))));
  const events = ev.events || [];
  $("events").replaceChildren(...events.slice(-200).map(x =>
      el("li", {}, new Date(x.time_ms).toLocaleTimeString() + "  " + x.message)));
}

function renderWorkers(workers) {
  fill(document.querySelector("#workers tbody"), workers.map(w => el("tr", {"data-worker": w.id},
      el("td", {}, w.id), el("td", {}, w.host), el("td", {}, w.device), el("td", {}, bytes(w.memory)),
      el("td", {class: w.alive ? "SUCCEEDED" : "FAILED"},
         (w.alive ? "alive" : "silent") + ", seen " + duration(Math.max(0, nowMs - w.last_seen_ms)) + " ago"),
      el("td", {}, (w.tasks || []).join(", ")))));
}

// Jobs named SWEEP.VARIANT (two or more, not evaluation jobs): a table and a plot.
function renderSweeps(jobs) {
  const groups = {};
  for (const j of jobs) {
    const name = j.spec.name || "";
    const dot = name.indexOf(".");
    if (dot <= 0 || j.evaluates) continue;
    (groups[name.slice(0, dot)] = groups[name.slice(0, dot)] || []).push(j);
  }
  const sweeps = Object.entries(groups).filter(([, v]) => v.length >= 2);
  $("sweeps-section").hidden = sweeps.length === 0;
  $("sweeps").replaceChildren(...sweeps.map(([name, vs]) => {
    const rows = vs.map(j => {
      const e = j.evaluation || {}, acc = (e.choice_score || {}).acc;
      return {label: j.spec.name.slice(name.length + 1), j, bytes: j.output_bytes,
              bpw: j.parameters ? 8 * j.output_bytes / j.parameters : 0, ppl: e.perplexity, orig: e.original_perplexity,
              acc: (e.choice_score || {}).items ? acc : undefined};
    });
    const done = rows.filter(r => r.bytes > 0 && r.ppl > 0);
    const front = new Set(done.filter(a => !done.some(b => b !== a && b.bytes <= a.bytes && b.ppl <= a.ppl &&
                                                       (b.bytes < a.bytes || b.ppl < a.ppl))));
    const table = el("table", {class: "sweep", "data-sweep": name},
        el("thead", {}, el("tr", {}, ...["variant", "state", "bytes", "bits/w", "perplexity", "delta", "accuracy", "Pareto"]
                                          .map(h => el("th", {}, h)))),
        el("tbody", {}, ...rows.map(r => el("tr", {"data-variant": r.label}, el("td", {}, r.label),
            el("td", {class: r.j.state}, r.j.state), el("td", {}, r.bytes ? bytes(r.bytes) : ""),
            el("td", {}, r.bpw ? r.bpw.toFixed(2) : ""), el("td", {}, r.ppl ? r.ppl.toFixed(4) : ""),
            el("td", {}, r.ppl && r.orig ? (r.ppl - r.orig >= 0 ? "+" : "") + (r.ppl - r.orig).toFixed(4) : ""),
            el("td", {}, r.acc !== undefined ? r.acc.toFixed(4) : ""), el("td", {}, front.has(r) ? "*" : "")))));
    return el("div", {}, el("h3", {}, name), table, plot(done, front));
  }));
}

function plot(rows, front) {
  const NS = "http://www.w3.org/2000/svg", W = 520, H = 300, L = 60, B = 40;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "sweep-plot");
  if (rows.length === 0) return svg;
  const xs = rows.map(r => r.bytes), ys = rows.map(r => r.ppl);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const X = v => L + (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) * (W - L - 110);  // room for labels
  const Y = v => H - B - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * (H - B - 20);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  add("line", {x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#999"});
  add("line", {x1: L, y1: 10, x2: L, y2: H - B, stroke: "#999"});
  add("text", {x: W / 2, y: H - 8, "text-anchor": "middle"}, "bytes on disk");
  add("text", {x: 12, y: H / 2, transform: "rotate(-90 12 " + H / 2 + ")", "text-anchor": "middle"}, "perplexity");
  add("text", {x: L, y: H - B + 14, "text-anchor": "middle"}, bytes(x0));
  add("text", {x: X(x1), y: H - B + 14, "text-anchor": "middle"}, bytes(x1));
  add("text", {x: L - 4, y: H - B, "text-anchor": "end"}, y0.toFixed(2));
  add("text", {x: L - 4, y: 20, "text-anchor": "end"}, y1.toFixed(2));
  const f = rows.filter(r => front.has(r)).sort((a, b) => a.bytes - b.bytes);
  if (f.length > 1) add("polyline", {points: f.map(r => X(r.bytes) + "," + Y(r.ppl)).join(" "), fill: "none", stroke: "#4a7bd8"});
  for (const r of rows) {
    add("circle", {cx: X(r.bytes), cy: Y(r.ppl), r: 4, fill: front.has(r) ? "#4a7bd8" : "#fff", stroke: "#4a7bd8"});
    add("text", {x: X(r.bytes) + 6, y: Y(r.ppl) - 4}, r.label);
  }
  return svg;
}

async function refresh() {
  try {
    const [jobs, workers] = await Promise.all([get("/api/jobs"), get("/api/workers")]);
    const list = jobs.jobs || [];
    if (list.length) nowMs = list[0].now_ms;
    if (!selected && list.length) {  // the first job still at work, else the latest (evaluation jobs last)
      const own = list.filter(j => !j.evaluates), pool = own.length ? own : list;
      const running = pool.filter(j => j.state === "RUNNING" || j.state === "EVALUATING" || j.state === "ASSEMBLING");
      selected = (running.length ? running[0] : pool[pool.length - 1]).spec.name;
    }
    renderJobs(list);
    renderWorkers(workers.workers || []);
    renderSweeps(list);
    if (selected) await renderDetail(selected);
    $("problem").textContent = "";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("problem").textContent = e.message;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
)PAGE";

}  // namespace sp
