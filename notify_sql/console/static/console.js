// notify-sql console: live figures (server-sent events, polling fallback) and small
// SVG charts. Everything from the server is written with textContent or as SVG
// attributes: never as HTML.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, String(attrs[key])); });
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) { return "-"; }
    if (seconds < 120) { return Math.round(seconds) + " s"; }
    if (seconds < 7200) { return Math.round(seconds / 60) + " min"; }
    return (seconds / 3600).toFixed(1) + " h";
  }

  function throughputChart(box, series) {
    var width = 560, height = 160, left = 34, bottom = 18;
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height });
    var max = 1;
    series.forEach(function (p) { max = Math.max(max, p.completed + p.failed); });
    var step = (width - left) / Math.max(series.length, 1);
    var scale = (height - bottom - 8) / max;
    svg.appendChild(el("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, "class": "axis" }));
    svg.appendChild(el("text", { x: 0, y: 12 }, max));
    svg.appendChild(el("text", { x: 0, y: height - bottom }, 0));
    svg.appendChild(el("text", { x: left, y: height - 4 }, "-60 min"));
    svg.appendChild(el("text", { x: width - 24, y: height - 4 }, "now"));
    series.forEach(function (p, i) {
      var x = left + i * step + 1, w = Math.max(step - 2, 1);
      var hc = p.completed * scale, hf = p.failed * scale;
      var base = height - bottom;
      if (hc > 0) { svg.appendChild(el("rect", { x: x, y: base - hc, width: w, height: hc, "class": "bar-completed" })); }
      if (hf > 0) { svg.appendChild(el("rect", { x: x, y: base - hc - hf, width: w, height: hf, "class": "bar-failed" })); }
    });
    box.replaceChildren(svg);
  }

  var STAGES = ["sent", "delivered", "opened", "clicked", "failed"];

  function funnelChart(box, rows) {
    var width = 560, rowHeight = 54, left = 60, top = 22;
    var height = top + rows.length * rowHeight + 6;
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height });
    var max = 1;
    rows.forEach(function (r) { STAGES.forEach(function (s) { max = Math.max(max, r[s]); }); });
    var bar = (rowHeight - 8) / STAGES.length;
    STAGES.forEach(function (s, i) {
      svg.appendChild(el("rect", { x: left + i * 90, y: 2, width: 10, height: 10, "class": "stage-" + s }));
      svg.appendChild(el("text", { x: left + i * 90 + 14, y: 11 }, s));
    });
    rows.forEach(function (r, i) {
      var y = top + i * rowHeight;
      svg.appendChild(el("text", { x: 0, y: y + rowHeight / 2 + 2 }, r.channel));
      STAGES.forEach(function (s, j) {
        var w = (width - left - 50) * r[s] / max;
        svg.appendChild(el("rect", { x: left, y: y + j * bar, width: Math.max(w, 0.5), height: bar - 1, "class": "stage-" + s }));
      });
      svg.appendChild(el("text", { x: left + (width - left - 50) * r.sent / max + 4, y: y + bar }, r.sent));
    });
    box.replaceChildren(svg);
  }

  function setMetric(name, value, raw) {
    document.querySelectorAll('[data-metric="' + name + '"]').forEach(function (node) {
      node.textContent = String(value);
      var card = node.closest(".card.warn");
      if (card) { card.classList.toggle("hot", Number(value) > 0); }
      if (raw !== undefined) { node.setAttribute("data-value", raw === null ? "" : String(raw)); }
    });
  }

  function queueTable(rows) {
    var body = document.querySelector("#queue-table tbody");
    if (!body) { return; }
    var fresh = document.createDocumentFragment();
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      var cells = [r.job_type, r.status, r.job_count, age(r.oldest_pending_age), age(r.oldest_heartbeat_age), r.stalled_jobs];
      cells.forEach(function (value, i) {
        var td = document.createElement("td");
        if (i === 1) {
          var badge = document.createElement("span");
          badge.className = "status s-" + String(value).replace(/[^a-z]/g, "");
          badge.textContent = String(value);
          td.appendChild(badge);
        } else {
          td.textContent = String(value);
        }
        if (i >= 2) { td.className = "num"; }
        if (i === 2) {
          td.setAttribute("data-metric", "queue-jobs");
          td.setAttribute("data-job-type", r.job_type);
          td.setAttribute("data-status", r.status);
        }
        tr.appendChild(td);
      });
      fresh.appendChild(tr);
    });
    if (!rows.length) {
      var empty = document.createElement("tr");
      empty.className = "empty";
      var td = document.createElement("td");
      td.colSpan = 6;
      td.textContent = "No jobs yet.";
      empty.appendChild(td);
      fresh.appendChild(empty);
    }
    body.replaceChildren(fresh);
  }

  var status = null;
  function apply(snapshot) {
    if (snapshot.error) {
      if (status) { status.textContent = snapshot.error; status.classList.add("stale"); }
      return;
    }
    var t = snapshot.totals;
    ["pending", "processing", "failed", "completed", "stalled"].forEach(function (k) { setMetric("queue-" + k, t[k]); });
    setMetric("queue-failed-last-hour", t.failed_last_hour);
    setMetric("queue-oldest-pending-age", age(snapshot.oldest_pending_age), snapshot.oldest_pending_age);
    queueTable(snapshot.queue);
    var chart = document.getElementById("throughput-chart");
    if (chart) { throughputChart(chart, snapshot.throughput); }
    if (status) {
      status.textContent = "live · updated " + new Date().toLocaleTimeString();
      status.classList.remove("stale");
    }
    document.body.setAttribute("data-updates", String(Number(document.body.getAttribute("data-updates") || 0) + 1));
  }

  function poll() {
    fetch("/api/overview", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(apply)
      .catch(function () { apply({ error: "console unreachable" }); })
      .finally(function () { setTimeout(poll, 2000); });
  }

  function live() {
    if (!window.EventSource) { poll(); return; }
    var source = new EventSource("/events");
    var failures = 0;
    source.onmessage = function (event) { failures = 0; apply(JSON.parse(event.data)); };
    source.onerror = function () {
      failures += 1;
      if (failures > 3) { source.close(); poll(); }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    status = document.getElementById("live-status");
    var data = document.getElementById("live-data");
    if (data) {
      var snapshot = JSON.parse(data.textContent);
      throughputChart(document.getElementById("throughput-chart"), snapshot.throughput);
      live();
    }
    var funnels = document.getElementById("funnel-data");
    if (funnels) {
      var windows = JSON.parse(funnels.textContent);
      document.querySelectorAll("[data-funnel]").forEach(function (box) {
        funnelChart(box, windows[Number(box.getAttribute("data-funnel"))]);
      });
    }
  });
})();
