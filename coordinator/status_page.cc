// The status page: one self-contained HTML document (no external scripts, styles or fonts:
// labs may be offline) whose script reads the JSON API (web_api.h) every second and draws
// jobs with progress and ETA, the selected job's tasks and events, workers, and sweeps
// (jobs named SWEEP.VARIANT) as `shardpress report` shows them, with its plot.
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

// Every sweep as `shardpress report` sees it: a table and the report's own plot.
function renderSweeps(sweeps) {
  $("sweeps-section").hidden = sweeps.length === 0;
  $("sweeps").replaceChildren(...sweeps.map(sw => {
    const table = el("table", {class: "sweep", "data-sweep": sw.name},
        el("thead", {}, el("tr", {}, ...["variant", "state", "bytes", "bits/w", "perplexity", "delta", "accuracy",
                                          "worker time", "Pareto"].map(h => el("th", {}, h)))),
        el("tbody", {}, ...sw.report.variants.map(v => el("tr", {"data-variant": v.variant}, el("td", {}, v.variant),
            el("td", {class: v.state}, v.state), el("td", {}, v.bytes ? bytes(v.bytes) : ""),
            el("td", {}, v.bits_per_weight ? v.bits_per_weight.toFixed(2) : ""),
            el("td", {}, v.perplexity ? v.perplexity.toFixed(4) : ""),
            el("td", {}, v.perplexity && v.original_perplexity ? (v.delta >= 0 ? "+" : "") + v.delta.toFixed(4) : ""),
            el("td", {}, v.items ? v.acc.toFixed(4) : ""), el("td", {}, duration(1000 * v.worker_s)),
            el("td", {}, v.pareto ? "*" : "")))));
    const plot = el("div", {class: "sweep-plot"});
    plot.innerHTML = sw.svg.replace(/^<\?xml[^>]*>\s*/, "");  // the report's SVG, made and escaped by the coordinator
    return el("div", {}, el("h3", {}, sw.name), table, plot);
  }));
}

async function refresh() {
  try {
    const [jobs, workers, sweeps] = await Promise.all([get("/api/jobs"), get("/api/workers"), get("/api/sweeps")]);
    const list = jobs.jobs || [];
    if (list.length) nowMs = list[0].now_ms;
    if (!selected && list.length) {  // the first job still at work, else the latest (evaluation jobs last)
      const own = list.filter(j => !j.evaluates), pool = own.length ? own : list;
      const running = pool.filter(j => j.state === "RUNNING" || j.state === "EVALUATING" || j.state === "ASSEMBLING");
      selected = (running.length ? running[0] : pool[pool.length - 1]).spec.name;
    }
    renderJobs(list);
    renderWorkers(workers.workers || []);
    renderSweeps(sweeps.sweeps || []);
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
