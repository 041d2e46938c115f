// Theta viewer: plain JavaScript, no build step, no external resource. Talks to the JSON API of
// the same origin with the session cookie; state-changing requests carry the CSRF header.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const S = {
    csrf: null, me: null, rec: null, id: null, start: 0, pageSec: 20, sens: 7, calib: 3.78,
    montage: "referential", hp: "1", lp: "70", notch: "", hidden: new Set(),
    cache: new Map(), annotations: [], overview: null, mark: null, editing: null,
    page: null, layout: null, pending: 0,
    // Session generation, bumped by logout: work started before it (a recording being opened,
    // a page in flight) must not show anything or set the address once the user has left.
    gen: 0,
  };
  // Exposed for the browser tests (what was drawn and how values map to pixels).
  window.theta = S;

  // ------------------------------------------------------------------------------------------
  // API

  function csrfFromCookie() {
    const m = document.cookie.match(/(?:^|;\s*)__Host-theta_csrf=([^;]+)/);
    return m ? m[1] : null;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const headers = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET") headers["x-csrf-token"] = S.csrf || csrfFromCookie() || "";
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, { message: "connection lost: the server cannot be reached" });
    }
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = { message: text }; }
    if (!resp.ok) throw new ApiError(resp.status, json);
    return json;
  }

  function showError(e) {
    const el = $("error");
    if (!e) { el.hidden = true; el.textContent = ""; return; }
    let msg = e.message || String(e);
    if (e.status === 401) msg = "Your session has ended. Please sign in again.";
    else if (e.status === 403) msg = "Access refused: " + (e.body && e.body.message || "forbidden");
    else if (e.status === 0) msg = "Connection lost: the server cannot be reached. Try again.";
    el.textContent = msg;
    el.hidden = false;
    if (e.status === 401) show("login");
  }

  function show(section) {
    for (const s of ["login", "list", "viewer"]) $(s).hidden = s !== section;
  }

  // ------------------------------------------------------------------------------------------
  // Login

  let mfaToken = null;
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/api/auth/login", { username: $("username").value, password: $("password").value });
      $("password").value = "";
      mfaToken = r.mfa_token;
      if (r.next && r.next[0] !== "totp") {
        showError(new Error("This account must first " + r.next.join(", then ").replace(/_/g, " ") + " (use the API or ask an administrator)."));
        return;
      }
      $("login-form").hidden = true;
      $("totp-form").hidden = false;
      $("totp").focus();
      showError(null);
    } catch (e) { showError(e); }
  });
  $("totp-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/api/auth/mfa/verify", { mfa_token: mfaToken, code: $("totp").value });
      S.csrf = r.csrf_token;
      $("totp").value = "";
      $("totp-form").hidden = true;
      $("login-form").hidden = false;
      showError(null);
      await start();
    } catch (e) { showError(e); }
  });

  async function logout() {
    S.gen++;
    try { await api("POST", "/api/auth/logout"); } catch (e) { /* already gone */ }
    S.csrf = null; S.me = null; S.rec = null; S.page = null; S.cache.clear();
    history.replaceState(null, "", "/");
    show("login");
  }
  $("logout").addEventListener("click", logout);
  $("logout2").addEventListener("click", logout);

  // ------------------------------------------------------------------------------------------
  // Recording list

  function fmtDuration(s) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.round(s % 60);
    return (h ? h + " h " : "") + (m ? m + " min " : "") + (h ? "" : sec + " s");
  }

  async function showList() {
    const list = await api("GET", "/api/recordings");
    const tbody = $("recordings").querySelector("tbody");
    tbody.textContent = "";
    for (const r of list) {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      for (const v of [r.patient || r.id, r.start, fmtDuration(r.duration), r.signals, r.tenant]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => openRecording(r.id, 0));
      tbody.appendChild(tr);
    }
    show("list");
  }
  $("back").addEventListener("click", () => { history.replaceState(null, "", "/"); showList().catch(showError); });

  async function start() {
    S.me = await api("GET", "/api/me");
    const name = `${S.me.first_name || ""} ${S.me.last_name || ""} (${S.me.username})`;
    $("who").textContent = name;
    $("who2").textContent = S.me.username;
    const m = location.hash.match(/^#rec=([0-9a-f]+)(?:&t=([0-9.]+))?/);
    if (!m) { await showList(); return; }
    try {
      await openRecording(m[1], parseFloat(m[2] || "0"));
    } catch (e) {
      if (e.status === 401) throw e;
      history.replaceState(null, "", "/");
      await showList();
      showError(e);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Viewer

  async function openRecording(id, t) {
    const gen = S.gen;
    S.id = id;
    const rec = await api("GET", `/api/recordings/${id}`);
    if (gen !== S.gen) return; // logged out meanwhile
    S.rec = rec;
    S.cache.clear();
    S.hidden.clear();
    $("title").textContent = `${S.rec.patient || id} — ${S.rec.start}`;
    show("viewer");
    S.start = clampStart(t);
    await Promise.all([loadAnnotations(), loadOverview()]);
    if (gen !== S.gen) return;
    await render();
  }

  function clampStart(t) {
    const max = Math.max(0, S.rec.duration - S.pageSec);
    return Math.min(Math.max(0, t), max);
  }

  function params(start) {
    const c = $("traces");
    const q = new URLSearchParams({
      start: start.toFixed(6), duration: String(S.pageSec), px: String(c.clientWidth),
      montage: S.montage, units: "physical",
    });
    if (S.hp) q.set("highpass", S.hp);
    if (S.lp) q.set("lowpass", S.lp);
    if (S.notch) q.set("notch", S.notch);
    return q.toString();
  }

  function fetchPage(start) {
    const key = params(start);
    if (!S.cache.has(key)) {
      const p = api("GET", `/api/recordings/${S.id}/window?${key}`).then((v) => ({
        start, duration: S.pageSec, unit: v.unit, montage: v.montage, warnings: v.warnings,
        labels: v.rows.map((r) => r.label), min: v.rows.map((r) => r.min), max: v.rows.map((r) => r.max),
      }));
      p.catch(() => S.cache.delete(key));
      S.cache.set(key, p);
      if (S.cache.size > 24) S.cache.delete(S.cache.keys().next().value);
    }
    return S.cache.get(key);
  }

  async function render() {
    const t0 = performance.now();
    const start = S.start;
    const gen = S.gen;
    if (!S.me) return;
    location.hash = `rec=${S.id}&t=${start.toFixed(3)}`;
    let page;
    try {
      page = await fetchPage(start);
    } catch (e) { if (gen === S.gen) showError(e); return; }
    if (gen !== S.gen) return; // logged out meanwhile
    if (start !== S.start) return; // a newer page was asked for meanwhile
    showError(null);
    S.page = page;
    draw();
    drawAxis();
    drawOverview();
    S.lastRenderMs = performance.now() - t0;
    $("status").textContent = `${(page.warnings || []).join("; ")}`;
    // Read ahead: the next and previous pages, so paging feels instant.
    for (const t of [start + S.pageSec, start - S.pageSec]) {
      if (t >= 0 && t < S.rec.duration) fetchPage(clampStart(t)).catch(() => {});
    }
    document.body.dataset.rendered = String((+document.body.dataset.rendered || 0) + 1);
  }

  // Rows laid out over the visible channels; value → pixel: baseline − v / sens × calib.
  function layout(canvas) {
    const rows = [];
    S.page.labels.forEach((l, i) => { if (!S.hidden.has(l)) rows.push(i); });
    const h = canvas.height / Math.max(1, rows.length);
    return { rows, rowHeight: h, baseline: (k) => (k + 0.5) * h, scale: S.calib / S.sens };
  }

  function draw() {
    const c = $("traces");
    c.width = c.clientWidth;
    c.height = c.clientHeight;
    const g = c.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, c.width, c.height);
    const p = S.page;
    const L = layout(c);
    S.layout = L;
    // One-second grid.
    g.fillStyle = "#e4e7ec";
    for (let s = Math.ceil(p.start); s < p.start + p.duration; s++) {
      g.fillRect(Math.round(((s - p.start) / p.duration) * c.width), 0, 1, c.height);
    }
    // Annotations on this page.
    for (const a of S.annotations) {
      const t = a.annotation.onset, d = a.annotation.duration || 0;
      if (t + d < p.start || t > p.start + p.duration) continue;
      const x0 = ((t - p.start) / p.duration) * c.width;
      const x1 = ((t + d - p.start) / p.duration) * c.width;
      g.fillStyle = "rgba(255,170,0,0.15)";
      g.fillRect(x0, 0, Math.max(2, x1 - x0), c.height);
    }
    // Traces: per pixel column a vertical bar from min to max, widened to meet the previous
    // column, so the trace is continuous and no extreme sample is lost.
    g.fillStyle = "#102a5c";
    L.rows.forEach((i, k) => {
      const b = L.baseline(k), mn = p.min[i], mx = p.max[i];
      for (let x = 0; x < mn.length; x++) {
        if (mn[x] === null || mx[x] === null) continue;
        let lo = mn[x], hi = mx[x];
        if (x > 0 && mn[x - 1] !== null) { lo = Math.min(lo, mx[x - 1]); hi = Math.max(hi, mn[x - 1]); }
        const yTop = Math.floor(b - hi * L.scale), yBot = Math.ceil(b - lo * L.scale);
        g.fillRect(x, yTop, 1, Math.max(1, yBot - yTop));
      }
    });
    // Labels, clickable to hide.
    const labels = $("labels");
    labels.textContent = "";
    p.labels.forEach((l, i) => {
      const div = document.createElement("div");
      div.textContent = l;
      const k = L.rows.indexOf(i);
      div.className = k < 0 ? "hidden" : "";
      div.style.top = (k < 0 ? c.height - 12 * (S.hidden.size - [...S.hidden].indexOf(l)) : L.baseline(k) - 7) + "px";
      div.title = k < 0 ? "Show this channel" : "Hide this channel";
      div.addEventListener("click", () => {
        if (S.hidden.has(l)) S.hidden.delete(l); else S.hidden.add(l);
        draw();
      });
      labels.appendChild(div);
    });
  }

  function clock(offset) {
    const base = Date.parse(S.rec.start);
    if (isNaN(base)) return offset.toFixed(0) + " s";
    const d = new Date(base + offset * 1000);
    return d.toISOString().substring(11, 19);
  }

  function drawAxis() {
    const c = $("time-axis");
    c.width = c.clientWidth;
    const g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    g.fillStyle = "#333";
    g.font = "11px system-ui";
    const p = S.page;
    const step = S.pageSec > 20 ? 5 : 2;
    for (let s = Math.ceil(p.start / step) * step; s < p.start + p.duration; s += step) {
      const x = ((s - p.start) / p.duration) * c.width;
      g.fillRect(Math.round(x), 0, 1, 5);
      g.fillText(clock(s), x + 2, 16);
    }
  }

  async function loadOverview() {
    const c = $("overview");
    const w = Math.max(100, Math.min(4000, c.clientWidth || 1000));
    S.overview = await api("GET", `/api/recordings/${S.id}/overview?width=${w}&units=physical`);
  }

  function drawOverview() {
    const c = $("overview");
    c.width = c.clientWidth;
    const g = c.getContext("2d");
    g.fillStyle = "#f7f8fa";
    g.fillRect(0, 0, c.width, c.height);
    const ov = S.overview;
    if (ov && ov.channels.length) {
      const w = ov.width;
      const amp = new Array(w).fill(0);
      for (const ch of ov.channels) {
        for (let x = 0; x < w; x++) {
          if (ch.min[x] !== null) amp[x] += ch.max[x] - ch.min[x];
        }
      }
      const sorted = amp.slice().sort((a, b) => a - b);
      const ref = sorted[Math.floor(sorted.length * 0.95)] || 1;
      g.fillStyle = "#8a9bb8";
      for (let x = 0; x < w; x++) {
        const h = Math.min(1, amp[x] / ref) * (c.height - 4);
        g.fillRect((x / w) * c.width, c.height - h, Math.max(1, c.width / w), h);
      }
    }
    g.fillStyle = "#e08a00";
    for (const a of S.annotations) g.fillRect((a.annotation.onset / S.rec.duration) * c.width, 0, 2, 6);
    g.strokeStyle = "#b3261e";
    g.lineWidth = 2;
    g.strokeRect((S.start / S.rec.duration) * c.width, 1, Math.max(3, (S.pageSec / S.rec.duration) * c.width), c.height - 2);
  }

  $("overview").addEventListener("click", (ev) => {
    const c = $("overview");
    const t = (ev.offsetX / c.clientWidth) * S.rec.duration - S.pageSec / 2;
    go(t);
  });

  function go(t) {
    S.start = clampStart(t);
    render();
  }

  document.addEventListener("keydown", (ev) => {
    if ($("viewer").hidden || ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    const step = ev.shiftKey ? 1 : S.pageSec;
    if (ev.key === "ArrowRight" || ev.key === "PageDown") { go(S.start + step); ev.preventDefault(); }
    if (ev.key === "ArrowLeft" || ev.key === "PageUp") { go(S.start - step); ev.preventDefault(); }
  });

  const controls = { "page-len": "pageSec", sens: "sens", montage: "montage", hp: "hp", lp: "lp", notch: "notch", calib: "calib" };
  for (const [id, key] of Object.entries(controls)) {
    $(id).addEventListener("change", () => {
      const v = $(id).value;
      S[key] = ["pageSec", "sens", "calib"].includes(key) ? parseFloat(v) : v;
      if (key === "sens" || key === "calib") { draw(); return; }
      S.cache.clear();
      if (key === "montage") S.hidden.clear();
      S.start = clampStart(S.start);
      render();
    });
  }
  window.addEventListener("resize", () => { if (S.page) { S.cache.clear(); render(); } });

  // ------------------------------------------------------------------------------------------
  // Annotations

  async function loadAnnotations() {
    S.annotations = await api("GET", `/api/recordings/${S.id}/annotations`);
    const ul = $("annotations");
    ul.textContent = "";
    for (const a of S.annotations) {
      const li = document.createElement("li");
      li.dataset.id = a.id;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = a.annotation.text;
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = `${clock(a.annotation.onset)}${a.annotation.duration ? " +" + a.annotation.duration.toFixed(1) + " s" : ""} · ${a.updated_by}`;
      const edit = document.createElement("button");
      edit.textContent = "edit";
      edit.className = "edit";
      edit.addEventListener("click", (ev) => {
        ev.stopPropagation();
        S.editing = a.id;
        S.mark = { onset: a.annotation.onset, duration: a.annotation.duration };
        $("ann-text").value = a.annotation.text;
        $("ann-add").textContent = "Save";
        showMark();
      });
      const del = document.createElement("button");
      del.textContent = "delete";
      del.className = "delete";
      del.addEventListener("click", async (ev) => {
        ev.stopPropagation();
        try {
          await api("DELETE", `/api/recordings/${S.id}/annotations/${a.id}`);
          await loadAnnotations();
          draw(); drawOverview();
        } catch (e) { showError(e); }
      });
      li.append(text, edit, del, meta);
      li.addEventListener("click", () => go(a.annotation.onset - S.pageSec / 4));
      ul.appendChild(li);
    }
  }

  function showMark() {
    const m = S.mark;
    $("ann-at").textContent = m ? `at ${clock(m.onset)}${m.duration ? " for " + m.duration.toFixed(2) + " s" : ""}` : "";
  }

  let dragFrom = null;
  const timeAt = (ev) => S.page.start + (ev.offsetX / $("traces").clientWidth) * S.page.duration;
  $("traces").addEventListener("mousedown", (ev) => { if (S.page) dragFrom = timeAt(ev); });
  $("traces").addEventListener("mouseup", (ev) => {
    if (dragFrom === null) return;
    const t = timeAt(ev);
    const a = Math.min(dragFrom, t), b = Math.max(dragFrom, t);
    S.mark = b - a > 0.05 ? { onset: a, duration: b - a } : { onset: a, duration: null };
    dragFrom = null;
    showMark();
    $("ann-text").focus();
  });

  $("ann-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const mark = S.mark || { onset: S.start, duration: null };
    const body = { onset: mark.onset, duration: mark.duration, text: $("ann-text").value };
    try {
      if (S.editing !== null) await api("PATCH", `/api/recordings/${S.id}/annotations/${S.editing}`, body);
      else await api("POST", `/api/recordings/${S.id}/annotations`, body);
      S.editing = null; S.mark = null;
      $("ann-text").value = "";
      $("ann-add").textContent = "Add";
      showMark();
      await loadAnnotations();
      draw(); drawOverview();
    } catch (e) { showError(e); }
  });

  // ------------------------------------------------------------------------------------------
  // Start: an existing session (cookie) goes straight in; otherwise the login form.

  async function listProviders() {
    try {
      const names = await api("GET", "/api/auth/oidc");
      const box = $("oidc");
      box.textContent = "";
      for (const n of names) {
        const a = document.createElement("a");
        a.href = `/api/auth/oidc/${encodeURIComponent(n)}/login`;
        a.textContent = `Sign in with ${n}`;
        a.className = "oidc";
        box.appendChild(a);
      }
    } catch (e) { /* no provider list: password login only */ }
  }

  window.addEventListener("DOMContentLoaded", async () => {
    listProviders();
    try {
      S.csrf = csrfFromCookie();
      await start();
    } catch (e) {
      show("login");
      if (e.status !== 401) showError(e);
    }
  });
})();
