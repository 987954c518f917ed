// fencelock operator page: polls this node's /v1/ endpoints and renders
// them. No framework, no build step.
"use strict";

const REFRESH_MS = 2000;
let token = sessionStorage.getItem("fencelock-token") || "";

async function get(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) {
    const entered = window.prompt("This cluster needs a token (admin right on *):");
    if (entered) {
      token = entered.trim();
      sessionStorage.setItem("fencelock-token", token);
    }
    throw new Error("authentication required");
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status + " " + (await response.text()));
  return response.json();
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

function seconds(value) {
  if (value === undefined || value === null) return "";
  if (value < 0.001) return (value * 1e6).toFixed(0) + " µs";
  if (value < 1) return (value * 1000).toFixed(1) + " ms";
  return value.toFixed(2) + " s";
}

function ago(secondsAgo) {
  if (secondsAgo < 60) return secondsAgo.toFixed(0) + " s ago";
  if (secondsAgo < 3600) return (secondsAgo / 60).toFixed(0) + " min ago";
  return (secondsAgo / 3600).toFixed(1) + " h ago";
}

function renderStatus(status) {
  const node = document.getElementById("node");
  const readiness = status.ready
    ? '<span class="ready">ready</span>'
    : '<span class="unready">not ready: ' + escapeHtml(status.unready_reason) + "</span>";
  node.innerHTML =
    "node <b>" + status.node_id + "</b> · " + escapeHtml(status.role) + " · term <b>" + status.term +
    "</b> · leader <b>" + (status.leader_id || "none") + "</b> · applied <b>" + status.applied_index +
    "</b> · " + status.sessions + " sessions · " + status.locks + " locks · " + readiness;
  fill("members", status.members.map((m) => [
    cell(m.id, "num"),
    cell(m.role, "role-" + m.role),
    cell(m.address),
    cell(m.term, "num"),
    cell(m.lag, "num"),
    cell(m.reachable ? "yes" : "no"),
  ]));
  fill("leaders", status.recent_leaders.slice().reverse().map((c) => [
    cell(ago(c.seconds_ago)),
    cell(c.term, "num"),
    cell(c.leader_id || "none"),
  ]));
}

function renderLocks(locks, stats) {
  const waitOf = new Map();
  for (const entry of (stats && stats.top) || []) waitOf.set(entry.lock, entry);
  const prefixes = (stats && stats.prefixes) || [];
  const prefixOf = (name) => prefixes.find((p) => name.startsWith(p.prefix) || name === p.prefix);
  fill("locks", locks.locks.map((lock) => {
    const series = waitOf.get(lock.name) || prefixOf(lock.name);
    return [
      cell(lock.name),
      cell(lock.holders.map((h) => "session " + h.session_id + " (" + h.token + ")").join(", ") ||
           (lock.in_lock_delay ? "lock-delay" : "")),
      cell(lock.queue_length, "num"),
      cell(series ? seconds(series.wait_p50_seconds) : "", "num"),
      cell(series ? seconds(series.wait_p99_seconds) : "", "num"),
    ];
  }));
  fill("top", ((stats && stats.top) || []).map((t) => [
    cell(t.lock),
    cell(t.grants, "num"),
    cell(t.hand_offs, "num"),
    cell(t.queue_length, "num"),
    cell(seconds(t.wait_p50_seconds), "num"),
    cell(seconds(t.wait_p99_seconds), "num"),
    cell(seconds(t.hold_p50_seconds), "num"),
  ]));
}

function renderSessions(sessions) {
  fill("sessions", sessions.sessions.map((s) => [
    cell(s.session_id, "num"),
    cell(s.client_name),
    cell(s.principal),
    cell((s.ttl_ms / 1000).toFixed(1) + " s", "num"),
    cell(s.held_locks, "num"),
    cell(s.waiting_locks, "num"),
  ]));
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const prefix = encodeURIComponent(document.getElementById("prefix").value);
    const [status, locks, sessions, stats] = await Promise.all([
      get("/v1/status"),
      get("/v1/locks?limit=200&prefix=" + prefix),
      get("/v1/sessions?limit=200"),
      get("/v1/stats"),
    ]);
    renderStatus(status);
    renderLocks(locks, stats);
    renderSessions(sessions);
    error.hidden = true;
    document.body.dataset.loaded = "true";
  } catch (e) {
    error.textContent = "cannot refresh: " + e.message;
    error.hidden = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
