// fencelock operator page: polls this node's /v1/ endpoints and renders
// them. No framework, no build step.
"use strict";

const REFRESH_MS = 2000;
let token = sessionStorage.getItem("fencelock-token") || "";
// Asked once per page load: a cancelled prompt is not shown again every 2 s.
let tokenAsked = false;

async function get(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) {
    const entered = tokenAsked ? null : window.prompt("This cluster needs a token (admin right on *):");
    tokenAsked = true;
    if (entered) {
      tokenAsked = false;
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

// Replaces a table's rows; every text goes in through textContent, so
// lock names, values and client names are never parsed as HTML.
function fill(tableId, rows, emptyText) {
  const body = document.querySelector("#" + tableId + " tbody");
  if (rows.length === 0) {
    const td = cell(emptyText, "empty");
    td.colSpan = document.querySelectorAll("#" + tableId + " thead th").length;
    const tr = document.createElement("tr");
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

// A cell of several parts, each a text node or a styled <span>.
function parts(items, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  for (const [text, partClass] of items) {
    if (partClass) {
      const span = document.createElement("span");
      span.className = partClass;
      span.textContent = text;
      td.append(span);
    } else {
      td.append(document.createTextNode(text));
    }
  }
  return td;
}

function count(value) {
  return value === undefined || value === null ? "–" : Number(value).toLocaleString("en-US");
}

// A time in seconds; "–" when nothing was observed (`observations` 0).
function seconds(value, observations) {
  if (value === undefined || value === null || observations === 0) return "–";
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
  const readiness = document.getElementById("readiness");
  readiness.textContent = status.ready ? "ready" : "not ready: " + status.unready_reason;
  readiness.className = "badge " + (status.ready ? "ready" : "unready");
  const summary = [
    ["node "], [String(status.node_id), "value"], [" · " + status.role + " · term "],
    [String(status.term), "value"], [" · leader "], [status.leader_id ? String(status.leader_id) : "none", "value"],
    [" · commit "], [String(status.commit_index), "value"], [" · applied "], [String(status.applied_index), "value"],
    [" · "], [count(status.sessions), "value"], [" sessions · "], [count(status.locks), "value"], [" locks"],
  ];
  const node = document.getElementById("node");
  node.replaceChildren(...parts(summary).childNodes);
  fill("members", status.members.map((m) => [
    cell(m.id === status.node_id ? m.id + " (this node)" : m.id, "num"),
    cell(m.role, "role-" + m.role),
    cell(m.address),
    cell(m.term ? m.term : "–", "num"),
    cell(m.lag === undefined ? "–" : count(m.lag), "num"),
    cell(m.reachable ? "yes" : "no", m.reachable ? "" : "unready"),
  ]), "no members");
  fill("leaders", status.recent_leaders.slice().reverse().map((c) => [
    cell(ago(c.seconds_ago)),
    cell(c.term, "num"),
    cell(c.leader_id || "none", "num"),
  ]), "no leader changes since this node started");
}

function holderParts(holders) {
  const items = [];
  for (const h of holders) {
    if (items.length) items.push([", "]);
    items.push(["token "], [String(h.token), "token"], [" · session " + h.session_id]);
    if (h.mode !== "exclusive") items.push([" · " + h.mode]);
    if (h.value) items.push([" · "], [h.value, "lock-value"]);
  }
  return items;
}

function renderLocks(locks, stats) {
  const waitOf = new Map();
  for (const entry of (stats && stats.top) || []) waitOf.set(entry.lock, entry);
  const prefixes = (stats && stats.prefixes) || [];
  const prefixOf = (name) => prefixes.find((p) => name.startsWith(p.prefix) || name === p.prefix);
  fill("locks", locks.locks.map((lock) => {
    const series = waitOf.get(lock.name) || prefixOf(lock.name);
    const holders = lock.holders.length ? holderParts(lock.holders)
                                        : [[lock.in_lock_delay ? "lock-delay" : "none", "muted"]];
    return [
      cell(lock.name, "lock-name"),
      parts(holders),
      cell(count(lock.queue_length), "num"),
      cell(series ? seconds(series.wait_p50_seconds, series.waits) : "–", "num"),
      cell(series ? seconds(series.wait_p99_seconds, series.waits) : "–", "num"),
    ];
  }), "no locks held or waited for");
  fill("top", ((stats && stats.top) || []).map((t) => [
    cell(t.lock, "lock-name"),
    cell(count(t.grants), "num"),
    cell(count(t.hand_offs), "num"),
    cell(count(t.queue_length), "num"),
    cell(seconds(t.wait_p50_seconds, t.waits), "num"),
    cell(seconds(t.wait_p99_seconds, t.waits), "num"),
    cell(seconds(t.hold_p50_seconds, t.holds), "num"),
  ]), "no grants yet");
}

function renderSessions(sessions) {
  fill("sessions", sessions.sessions.map((s) => [
    cell(s.session_id, "num"),
    cell(s.client_name),
    cell(s.principal || "–"),
    cell((s.ttl_ms / 1000).toFixed(1) + " s", "num"),
    cell(count(s.held_locks), "num"),
    cell(count(s.waiting_locks), "num"),
  ]), "no sessions");
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
    document.body.classList.remove("stale");
    document.getElementById("updated").textContent =
      "Updated " + new Date().toLocaleTimeString("en-GB") + ".";
    document.body.dataset.loaded = "true";
  } catch (e) {
    error.textContent = "cannot refresh: " + e.message + " (the figures below are from the last refresh)";
    error.hidden = false;
    document.body.classList.add("stale");
  }
}

let refreshSoon;
document.getElementById("prefix").addEventListener("input", () => {
  clearTimeout(refreshSoon);
  refreshSoon = setTimeout(refresh, 300);
});
refresh();
setInterval(refresh, REFRESH_MS);
