// Burrow dashboard: polls the admin JSON API (docs/admin.md) and draws it. No framework, no
// build step. Everything from the API goes into the page as text (textContent, setAttribute on
// data-* only), never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "burrow.admin.token";
  const POLL_MS = 1000;
  const HISTORY = 60; // samples per tunnel kept for the sparkline
  const RATE_WINDOW_S = 3; // workers report once a second: the shown rate is over 3 s
  const MAX_EVENTS = 50;
  const SPARK_W = 180;
  const SPARK_H = 28;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const WATCHED = [
    ["auth_failed", "auth failures"],
    ["entry_502", "entry 502"],
    ["entry_503", "entry 503"],
    ["entry_sniff_timeout", "sniff timeouts"],
    ["visitor_503", "visitor 503"],
  ];

  // tunnel_id -> [{t: seconds, total: bytes}], oldest first
  const history = new Map();
  let events = []; // newest last, at most MAX_EVENTS
  let lastSeq = 0;
  let timer = null;
  let round = 0; // a restart bumps it: an answer to an older round is dropped

  class AuthError extends Error {}

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      if (cell instanceof Node) {
        const td = document.createElement("td");
        td.appendChild(cell);
        tr.appendChild(td);
      } else {
        tr.appendChild(el("td", null, cell));
      }
    }
    return tr;
  }

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Number(n) || 0;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }

  function ago(unixSeconds, now) {
    if (unixSeconds === null || unixSeconds === undefined) return "never";
    const s = Math.max(0, now - Number(unixSeconds));
    if (s < 90) return s.toFixed(0) + " s ago";
    if (s < 5400) return (s / 60).toFixed(0) + " min ago";
    if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
    return (s / 86400).toFixed(1) + " d ago";
  }

  function iso(unixSeconds) {
    const d = new Date(Number(unixSeconds) * 1000);
    return isNaN(d.getTime()) ? "" : d.toISOString();
  }

  // -- fetching ------------------------------------------------------------------------------
  async function getJson(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const resp = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    if (resp.status === 401) throw new AuthError("token required");
    if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
    return resp.json();
  }

  async function poll() {
    timer = null;
    const mine = round;
    try {
      const [summary, tunnels, workers, recent] = await Promise.all([
        getJson("/api/summary"),
        getJson("/api/tunnels"),
        getJson("/api/workers"),
        getJson("/api/events?since=" + lastSeq),
      ]);
      if (mine !== round) return;
      showMain();
      record(tunnels.tunnels || [], performance.now() / 1000);
      addEvents(recent);
      drawOverview(summary);
      drawTunnels(tunnels.tunnels || [], summary.time);
      drawWorkers(workers.workers || [], summary.time);
      drawErrors(summary);
    } catch (err) {
      if (mine !== round) return;
      if (err instanceof AuthError) {
        showLogin(sessionStorage.getItem(TOKEN_KEY) ? "That token was refused." : "");
        sessionStorage.removeItem(TOKEN_KEY);
        return; // polling starts again when a token is entered
      }
      setStatus("error", "admin endpoint unreachable: " + err.message);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  // -- token ---------------------------------------------------------------------------------
  function showLogin(message) {
    $("main").hidden = true;
    $("login").hidden = false;
    $("forget").hidden = true;
    const error = $("login-error");
    error.textContent = message;
    error.hidden = !message;
    setStatus("locked", "token required");
    $("token").focus();
  }

  function showMain() {
    $("login").hidden = true;
    $("main").hidden = false;
    $("forget").hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  function restart() {
    if (timer !== null) clearTimeout(timer);
    round += 1;
    poll();
  }

  // -- drawing -------------------------------------------------------------------------------
  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function figure(label, value, key) {
    const box = el("div", "figure");
    box.dataset.key = key;
    box.appendChild(el("span", "label", label));
    box.appendChild(el("span", "value", value));
    return box;
  }

  function drawOverview(s) {
    if (s.ready) setStatus("ready", "ready");
    else setStatus("not-ready", "not ready: " + (s.not_ready || "?"));
    $("overview").replaceChildren(
      figure("workers ready", s.workers_ready + " / " + s.workers, "workers"),
      figure("tunnels up", s.tunnels_up, "tunnels_up"),
      figure("connectors", s.connectors, "connectors"),
      figure("streams open", s.streams_open, "streams_open"),
      figure("bytes in", bytes(s.bytes_in), "bytes_in"),
      figure("bytes out", bytes(s.bytes_out), "bytes_out"),
      figure("restarts", s.restarts, "restarts"),
      figure("uptime", ago(Number(s.time) - Number(s.uptime_seconds), s.time).replace(" ago", ""),
        "uptime"),
    );
  }

  function record(tunnels, now) {
    const seen = new Set();
    for (const t of tunnels) {
      seen.add(t.tunnel_id);
      const samples = history.get(t.tunnel_id) || [];
      samples.push({ t: now, total: Number(t.bytes_in) + Number(t.bytes_out) });
      if (samples.length > HISTORY + 1) samples.shift();
      history.set(t.tunnel_id, samples);
    }
    for (const id of history.keys()) if (!seen.has(id)) history.delete(id);
  }

  // Bytes per second over the last RATE_WINDOW_S seconds of samples.
  function rate(samples) {
    if (samples.length < 2) return 0;
    const last = samples[samples.length - 1];
    let first = samples[samples.length - 2];
    for (let i = samples.length - 2; i >= 0; i -= 1) {
      first = samples[i];
      if (last.t - samples[i].t >= RATE_WINDOW_S) break;
    }
    const dt = last.t - first.t;
    return dt > 0 ? Math.max(0, (last.total - first.total) / dt) : 0;
  }

  // One bar per poll interval: bytes per second between successive samples.
  function sparkline(samples) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", SPARK_W);
    svg.setAttribute("height", SPARK_H);
    svg.setAttribute("viewBox", "0 0 " + SPARK_W + " " + SPARK_H);
    svg.setAttribute("role", "img");
    const rates = [];
    for (let i = 1; i < samples.length; i += 1) {
      const dt = samples[i].t - samples[i - 1].t;
      rates.push(dt > 0 ? Math.max(0, (samples[i].total - samples[i - 1].total) / dt) : 0);
    }
    const peak = Math.max(1, ...rates);
    const w = SPARK_W / HISTORY;
    let drawn = 0;
    rates.forEach((r, i) => {
      const h = Math.round((r / peak) * (SPARK_H - 1));
      if (h <= 0) return;
      const bar = document.createElementNS(SVG_NS, "rect");
      bar.setAttribute("x", ((HISTORY - rates.length + i) * w).toFixed(1));
      bar.setAttribute("y", SPARK_H - h);
      bar.setAttribute("width", Math.max(1, w - 1).toFixed(1));
      bar.setAttribute("height", h);
      svg.appendChild(bar);
      drawn += 1;
    });
    svg.dataset.bars = drawn;
    svg.setAttribute("aria-label", "traffic, peak " + bytes(peak) + "/s");
    return svg;
  }

  function connectorTable(connectors, now) {
    const table = el("table", "connectors");
    const head = el("thead");
    head.appendChild(row(["connector", "worker", "role", "peer", "dialect", "network", "since",
      "streams open", "streams total", "bytes in", "bytes out"]));
    table.appendChild(head);
    const body = el("tbody");
    for (const c of connectors) {
      const since = el("span", null, ago(c.since, now));
      since.title = iso(c.since);
      const tr = row([c.connector_id, c.worker, c.role, c.peer, c.dialect, c.network, since,
        c.streams_open, c.streams_total, bytes(c.bytes_in), bytes(c.bytes_out)]);
      tr.className = "connector";
      tr.dataset.connectorId = String(c.connector_id);
      tr.firstChild.className = "id";
      body.appendChild(tr);
    }
    table.appendChild(body);
    return table;
  }

  function drawTunnels(tunnels, now) {
    const box = $("tunnels");
    if (tunnels.length === 0) {
      box.replaceChildren(el("p", "muted", "No tunnels yet."));
      return;
    }
    const cards = tunnels.map((t) => {
      const samples = history.get(t.tunnel_id) || [];
      const total = Number(t.bytes_in) + Number(t.bytes_out);
      const bps = rate(samples);
      const card = el("article", "tunnel");
      card.dataset.tunnelId = String(t.tunnel_id);
      const head = el("div", "tunnel-head");
      const name = el("span", "name mono", t.tunnel);
      name.title = String(t.tunnel_id);
      head.appendChild(name);
      head.appendChild(el("span", "badge " + (t.up ? "up" : "down"), t.up ? "up" : "down"));
      head.appendChild(el("span", "muted mono", t.tunnel_id));
      head.appendChild(el("span", null,
        "streams " + t.streams_open + " open / " + t.streams_total + " total"));
      const traffic = el("span", "traffic");
      const rateText = el("span", "rate", bytes(bps) + "/s");
      rateText.dataset.bps = bps.toFixed(0);
      traffic.appendChild(rateText);
      traffic.appendChild(sparkline(samples));
      const totalText = el("span", "total",
        "in " + bytes(t.bytes_in) + " · out " + bytes(t.bytes_out));
      totalText.dataset.bytes = String(total);
      traffic.appendChild(totalText);
      head.appendChild(traffic);
      card.appendChild(head);
      if ((t.connectors || []).length > 0) {
        card.appendChild(connectorTable(t.connectors, now));
      } else {
        card.appendChild(el("p", "muted", "no live connector"));
      }
      return card;
    });
    box.replaceChildren(...cards);
  }

  function health(w, now) {
    if (!w.ready) return "starting";
    if (w.reported !== null && w.reported !== undefined && now - Number(w.reported) > 5) {
      return "stale";
    }
    return "ok";
  }

  function drawWorkers(workers, now) {
    const body = $("workers").tBodies[0];
    body.replaceChildren(...workers.map((w) => {
      const state = health(w, now);
      const tr = row([w.index, w.pid, w.generation, state, ago(w.started, now),
        ago(w.reported, now), w.connectors, w.streams_open, bytes(w.bytes_in),
        bytes(w.bytes_out)]);
      tr.className = "worker";
      tr.dataset.index = String(w.index);
      tr.dataset.pid = String(w.pid);
      tr.children[3].className = "health-" + state;
      return tr;
    }));
  }

  function addEvents(recent) {
    const rows = recent.events || [];
    if (Number(recent.last) < lastSeq) events = []; // the supervisor restarted
    events = events.concat(rows).slice(-MAX_EVENTS);
    lastSeq = Number(recent.last) || 0;
  }

  function drawErrors(summary) {
    const counts = summary.events || {};
    const chips = WATCHED.map(([key, label]) => {
      const n = Number(counts[key] || 0);
      const chip = el("span", "chip" + (n > 0 ? " nonzero" : ""), label + " " + n);
      chip.dataset.key = key;
      return chip;
    });
    const failed = Number((summary.reloads || {}).failed || 0);
    const reloads = el("span", "chip" + (failed > 0 ? " nonzero" : ""), "reloads failed " + failed);
    reloads.dataset.key = "reloads_failed";
    chips.push(reloads);
    $("counters").replaceChildren(...chips);

    const list = $("events");
    if (events.length === 0) {
      list.replaceChildren(el("li", "muted", "No warnings or errors."));
      return;
    }
    list.replaceChildren(...events.slice().reverse().map((e) => {
      const li = el("li", "level-" + String(e.level));
      li.dataset.seq = String(e.seq);
      const when = el("span", "mono", iso(e.time).replace("T", " ").replace(/\.\d+Z$/, "Z"));
      li.appendChild(when);
      li.appendChild(document.createTextNode(" " + e.level + " " + e.source + " "));
      li.appendChild(el("strong", null, e.event));
      const fields = Object.entries(e.fields || {}).map(([k, v]) => k + "=" + v).join(" ");
      if (fields) li.appendChild(el("span", "fields", " " + fields));
      return li;
    }));
  }

  // -- start ---------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      $("token").value = "";
      setStatus("loading", "loading…");
      restart();
    });
    $("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      restart();
    });
    poll();
  });
})();
