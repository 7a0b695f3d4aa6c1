// tonuslab live view and review page: canvas drawing of min/max columns sent by the server.
// Hand-written, no framework, no build step. The server (tonuslab/view/server.py) sends per
// pixel column the min, max and envelope of each EMG channel and the angle and velocity; this
// page only draws them. window.tonusView exposes counters for the tests and benchmarks.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const V = (window.tonusView = {
    frames: 0, polls: 0, sweeps: 0, ready: false, mode: "", windows: 0, lastWindowMs: 0,
  });
  const $ = (id) => document.getElementById(id);
  const CAP = 6000; // live ring: 60 s of 10 ms columns
  const LIVE_SPAN_S = 10;
  const LEFT = 128; // label margin (px)
  const COLORS = { emg: "#1f4e9a", env: "#e07b00", angle: "#2a7a2a", vel: "#8a2be2",
                   prompt: "#1f6fd0", marker: "#e07b00", stim: "#7a1fa0", gap: "rgba(200,20,30,0.18)",
                   onset: "#c0161c", ok: "#1d7a3a", warn: "#c0161c", grid: "#e4e4e4" };

  function url(path, params) {
    const q = new URLSearchParams(Object.assign({ token }, params || {}));
    return `${path}?${q}`;
  }
  async function getJSON(path, params) {
    const r = await fetch(url(path, params), { cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }
  const nz = (v) => (v === null || v === undefined ? NaN : v);
  const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : "-");
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function hms(s) {
    s = Math.max(0, Math.floor(s));
    const p = (n) => String(n).padStart(2, "0");
    return `${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}`;
  }

  // ------------------------------------------------------------------ column stores
  // A store holds columns of one stream: arrays[name][channel] indexed by column % cap.
  function makeStore(names, nch, cap, length) {
    const st = { cap, t0: 0, dt: 0.01, c0: 0, c1: 0, nch, a: {} };
    for (const n of names) {
      st.a[n] = [];
      for (let k = 0; k < nch; k++) st.a[n].push(new Float32Array(length).fill(NaN));
    }
    return st;
  }
  function storeLive(st, part, names, perChannel) {
    if (!part || !part.n) return;
    for (const n of names) {
      const src = part[n];
      for (let k = 0; k < st.nch; k++) {
        const row = perChannel ? src[k] : src;
        const dst = st.a[n][k];
        for (let i = 0; i < part.n; i++) dst[(part.col + i) % st.cap] = nz(row[i]);
      }
    }
    if (part.col > st.c1) { // skipped columns: NaN
      for (const n of names) for (let k = 0; k < st.nch; k++)
        for (let c = Math.max(st.c1, part.col - st.cap); c < part.col; c++) st.a[n][k][c % st.cap] = NaN;
    }
    st.c1 = Math.max(st.c1, part.col + part.n);
    st.c0 = Math.max(0, st.c1 - st.cap);
  }
  function storeWindow(part, names, perChannel) {
    const nch = perChannel ? part.min.length : 1;
    const st = makeStore(names, nch, Infinity, part.n);
    st.t0 = part.start_s; st.dt = part.dt_s; st.c0 = 0; st.c1 = part.n; st.sampled = part.sampled;
    for (const n of names) for (let k = 0; k < nch; k++) {
      const row = perChannel ? part[n][k] : part[n];
      const dst = st.a[n][k];
      for (let i = 0; i < part.n; i++) dst[i] = nz(row[i]);
    }
    return st;
  }

  // ------------------------------------------------------------------ state
  const S = {
    info: null, live: false, emg: null, angle: null, events: [], sweeps: [], nSweeps: 0,
    ev: 0, sw: 0, newest: 0, recvAt: 0, protocol: null, status: null, ended: false,
    view: { t0: 0, t1: 10 }, dirty: true, overview: null, scales: [], results: {},
    windowsMs: { m: [4, 20], h: [22, 50] }, recruitment: [], targetVel: NaN,
  };

  // ------------------------------------------------------------------ trace drawing
  const traces = $("traces");
  const tctx = traces.getContext("2d");
  function layout() {
    const nEmg = S.info ? S.info.emg_names.length : 1;
    const hasAngle = S.info && S.info.angle_rate_hz;
    const lanes = nEmg + (hasAngle ? 2 : 0);
    const laneH = Math.max(34, Math.min(110, Math.floor((window.innerHeight * 0.62) / lanes)));
    const w = Math.max(400, traces.clientWidth || 1000);
    const h = lanes * laneH + 18;
    const dpr = window.devicePixelRatio || 1;
    if (traces.width !== Math.round(w * dpr) || traces.height !== Math.round(h * dpr)) {
      traces.width = Math.round(w * dpr); traces.height = Math.round(h * dpr);
      traces.style.height = `${h}px`;
      tctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    return { w, h, laneH, nEmg, hasAngle, plotW: w - LEFT };
  }

  function colRange(st, t0, t1) {
    const a = Math.max(st.c0, Math.floor((t0 - st.t0) / st.dt));
    const b = Math.min(st.c1, Math.ceil((t1 - st.t0) / st.dt) + 1);
    return [a, b];
  }

  function strokeMinMax(ctx, st, k, t0, t1, x0, pw, yOf, loName, hiName) {
    const [a, b] = colRange(st, t0, t1);
    const lo = st.a[loName][k], hi = st.a[hiName][k];
    const sx = pw / (t1 - t0);
    ctx.beginPath();
    for (let c = a; c < b; c++) {
      const i = c % st.cap;
      const l = lo[i], h = hi[i];
      if (l !== l || h !== h) continue; // NaN: a gap, nothing drawn
      const x = x0 + (st.t0 + (c + 0.5) * st.dt - t0) * sx;
      const y1 = yOf(h), y2 = yOf(l);
      ctx.moveTo(x, y1); ctx.lineTo(x, Math.max(y2, y1 + 1));
    }
    ctx.stroke();
  }
  function strokeLine(ctx, st, name, k, t0, t1, x0, pw, yOf) {
    const [a, b] = colRange(st, t0, t1);
    const v = st.a[name][k];
    const sx = pw / (t1 - t0);
    ctx.beginPath();
    let pen = false;
    for (let c = a; c < b; c++) {
      const y = v[c % st.cap];
      if (y !== y) { pen = false; continue; }
      const x = x0 + (st.t0 + (c + 0.5) * st.dt - t0) * sx;
      if (pen) ctx.lineTo(x, yOf(y)); else ctx.moveTo(x, yOf(y));
      pen = true;
    }
    ctx.stroke();
  }
  function extent(st, names, k, t0, t1, absolute) {
    const [a, b] = colRange(st, t0, t1);
    let lo = Infinity, hi = -Infinity, last = NaN;
    for (const n of names) {
      const v = st.a[n][k];
      for (let c = a; c < b; c++) {
        const y = v[c % st.cap];
        if (y !== y) continue;
        if (y < lo) lo = y; if (y > hi) hi = y;
        if (n === names[names.length - 1]) last = y;
      }
    }
    if (absolute) return { m: Math.max(Math.abs(lo), Math.abs(hi)), last };
    return { lo, hi, last };
  }

  function drawTraces() {
    const L = layout();
    const ctx = tctx;
    const { t0, t1 } = S.view;
    ctx.clearRect(0, 0, L.w, L.h);
    ctx.font = "13px system-ui, sans-serif";
    const pw = L.plotW;
    // time grid
    const span = t1 - t0;
    const step = niceCeil(span / 10);
    ctx.strokeStyle = COLORS.grid; ctx.fillStyle = "#777"; ctx.lineWidth = 1;
    ctx.beginPath();
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const x = LEFT + ((t - t0) / span) * pw;
      ctx.moveTo(x, 0); ctx.lineTo(x, L.h - 16);
      ctx.fillText(step < 1 ? t.toFixed(2) : hms(t), x + 2, L.h - 4);
    }
    ctx.stroke();
    drawMarks(ctx, L, t0, t1);
    // EMG lanes
    for (let k = 0; k < L.nEmg; k++) {
      const top = k * L.laneH, mid = top + L.laneH / 2, half = L.laneH / 2 - 2;
      let scale = 1;
      if (S.emg) {
        const e = extent(S.emg, ["min", "max"], k, t0, t1, true);
        const target = niceCeil(e.m);
        const prev = S.scales[k] || target;
        scale = target > prev || target < prev / 4 ? target : prev; // hold the scale unless far off
        S.scales[k] = scale;
      }
      const yOf = (v) => mid - (v / scale) * half;
      ctx.fillStyle = "#111";
      ctx.fillText(S.info.emg_names[k] || `EMG${k + 1}`, 4, top + 15);
      ctx.fillStyle = "#666";
      ctx.fillText(`\u00b1${scale >= 1000 ? (scale / 1000) + " mV" : scale + " \u00b5V"}`, 4, top + 30);
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath(); ctx.moveTo(LEFT, top + L.laneH); ctx.lineTo(L.w, top + L.laneH); ctx.stroke();
      if (!S.emg) continue;
      ctx.strokeStyle = COLORS.emg; ctx.lineWidth = 1;
      strokeMinMax(ctx, S.emg, k, t0, t1, LEFT, pw, yOf, "min", "max");
      ctx.strokeStyle = COLORS.env; ctx.lineWidth = 2;
      strokeLine(ctx, S.emg, "env", k, t0, t1, LEFT, pw, (v) => mid - (v / scale) * half);
      ctx.lineWidth = 1;
    }
    if (L.hasAngle && S.angle) {
      const top = L.nEmg * L.laneH;
      const e = extent(S.angle, ["min", "max", "mean"], 0, t0, t1, false);
      let lo = Number.isFinite(e.lo) ? e.lo : 0, hi = Number.isFinite(e.hi) ? e.hi : 1;
      if (hi - lo < 10) { const c = (hi + lo) / 2; lo = c - 5; hi = c + 5; }
      const yA = (v) => top + 4 + ((hi - v) / (hi - lo)) * (L.laneH - 8);
      ctx.strokeStyle = COLORS.angle; ctx.lineWidth = 2;
      strokeLine(ctx, S.angle, "mean", 0, t0, t1, LEFT, pw, yA);
      ctx.fillStyle = COLORS.angle;
      ctx.fillText("angle (deg)", 4, top + 15);
      ctx.fillText(`${fmt(e.last, 1)}`, 4, top + 30);
      ctx.fillStyle = "#666";
      ctx.fillText(`${fmt(hi, 0)}`, LEFT - 34, top + 12);
      ctx.fillText(`${fmt(lo, 0)}`, LEFT - 34, top + L.laneH - 4);
      const vtop = top + L.laneH;
      const ev = extent(S.angle, ["vel"], 0, t0, t1, true);
      const vs = niceCeil(Math.max(ev.m || 0, Number.isFinite(S.targetVel) ? S.targetVel * 1.2 : 0, 20));
      const mid = vtop + L.laneH / 2, half = L.laneH / 2 - 3;
      const yV = (v) => mid - (v / vs) * half;
      ctx.strokeStyle = COLORS.grid; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(LEFT, mid); ctx.lineTo(L.w, mid); ctx.stroke();
      if (Number.isFinite(S.targetVel)) {
        ctx.strokeStyle = COLORS.prompt; ctx.setLineDash([6, 4]);
        ctx.beginPath(); ctx.moveTo(LEFT, yV(S.targetVel)); ctx.lineTo(L.w, yV(S.targetVel)); ctx.stroke();
        ctx.setLineDash([]);
      }
      ctx.strokeStyle = COLORS.vel; ctx.lineWidth = 1.5;
      strokeLine(ctx, S.angle, "vel", 0, t0, t1, LEFT, pw, yV);
      ctx.lineWidth = 1;
      ctx.fillStyle = COLORS.vel;
      ctx.fillText("velocity (deg/s)", 4, vtop + 15);
      ctx.fillText(`${fmt(ev.last, 0)}  \u00b1${vs}`, 4, vtop + 30);
    }
  }

  function drawMarks(ctx, L, t0, t1) {
    const pw = L.plotW, span = t1 - t0;
    const xOf = (t) => LEFT + ((t - t0) / span) * pw;
    const H = L.h - 16;
    for (const e of S.events) {
      if (e.time_s === null || e.time_s === undefined) continue;
      const end = e.time_s + (e.duration_s || 0);
      if (end < t0 || e.time_s > t1) continue;
      const x = xOf(e.time_s);
      if (e.kind === "gap") {
        ctx.fillStyle = COLORS.gap;
        ctx.fillRect(x, 0, Math.max(2, xOf(end) - x), H);
      } else if (e.kind === "stimulus") {
        ctx.strokeStyle = COLORS.stim; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke();
      } else if (e.kind === "prompt" || e.kind === "marker") {
        ctx.strokeStyle = e.kind === "prompt" ? COLORS.prompt : COLORS.marker;
        ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke();
        ctx.lineWidth = 1; ctx.fillStyle = ctx.strokeStyle;
        const text = e.kind === "prompt" ? `${e.label} ${e.params && e.params.velocity_deg_s ? e.params.velocity_deg_s + " deg/s" : ""}` : (e.label || "marker");
        ctx.fillText(text, x + 3, 12);
      } else if (e.kind === "note" && e.label === "stretch_result" && e.params && e.params.onset_time_s !== null && e.params.onset_time_s !== undefined) {
        const a = xOf(e.params.onset_time_s), b = xOf(nz(e.params.end_time_s));
        const bad = e.params.irregular || e.params.muscle_active || !e.params.detected;
        ctx.fillStyle = bad ? "rgba(192,22,28,0.08)" : "rgba(29,122,58,0.07)";
        if (Number.isFinite(b)) ctx.fillRect(a, 0, Math.max(1, b - a), H);
      }
    }
    const an = S.info && S.info.analysis;
    if (an && an.stretches) {
      for (const st of an.stretches) {
        if (st.onset_s === null || st.onset_s < t0 || st.onset_s > t1) continue;
        const x = xOf(st.onset_s);
        ctx.strokeStyle = COLORS.onset; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, H); ctx.stroke(); ctx.lineWidth = 1;
        ctx.fillStyle = COLORS.onset;
        ctx.fillText(`onset, DSRT ${fmt(st.dsrt_deg, 1)}\u00b0`, x + 3, H - 6);
      }
    }
  }

  // ------------------------------------------------------------------ H-reflex drawing
  function drawSweeps() {
    const cv = $("sweeps"), ctx = cv.getContext("2d");
    const W = cv.width, H = cv.height, pad = 34;
    ctx.clearRect(0, 0, W, H);
    ctx.font = "12px system-ui, sans-serif";
    const shown = S.sweeps.filter((s) => s.y && s.y.length).slice(-30);
    if (!shown.length) { ctx.fillStyle = "#888"; ctx.fillText("no pulse yet", 10, 20); return; }
    const tA = shown[0].t0_ms, tB = tA + shown[0].dt_ms * shown[0].y.length;
    let m = 0;
    for (const s of shown) for (let i = 0; i < s.y.length; i++) {
      const t = s.t0_ms + i * s.dt_ms;
      if (t > 3 && Number.isFinite(s.y[i])) m = Math.max(m, Math.abs(s.y[i]));
    }
    const scale = niceCeil(m);
    const xOf = (t) => pad + ((t - tA) / (tB - tA)) * (W - pad - 6);
    const yOf = (v) => H / 2 - (v / scale) * (H / 2 - 14);
    const win = S.windowsMs;
    for (const [name, color] of [["m", "rgba(31,78,154,0.12)"], ["h", "rgba(192,22,28,0.12)"]]) {
      if (!win[name]) continue;
      ctx.fillStyle = color;
      ctx.fillRect(xOf(win[name][0]), 0, xOf(win[name][1]) - xOf(win[name][0]), H - 14);
      ctx.fillStyle = "#333"; ctx.fillText(name.toUpperCase(), xOf(win[name][0]) + 3, 12);
    }
    ctx.strokeStyle = COLORS.stim; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(xOf(0), 0); ctx.lineTo(xOf(0), H - 14); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = COLORS.stim; ctx.fillText("artifact", xOf(0) + 2, H - 18);
    shown.forEach((s, j) => {
      const newest = j === shown.length - 1;
      ctx.strokeStyle = newest ? "#111" : `rgba(31,78,154,${0.15 + 0.5 * (j / shown.length)})`;
      ctx.lineWidth = newest ? 1.8 : 1;
      ctx.beginPath();
      let pen = false;
      s.y.forEach((v, i) => {
        if (!Number.isFinite(v)) { pen = false; return; }
        const x = xOf(s.t0_ms + i * s.dt_ms), y = Math.max(0, Math.min(H - 14, yOf(v)));
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
      });
      ctx.stroke();
    });
    ctx.lineWidth = 1; ctx.fillStyle = "#555";
    ctx.fillText(`\u00b1${scale} \u00b5V`, 2, 12);
    for (let t = Math.ceil(tA / 10) * 10; t <= tB; t += 10) ctx.fillText(`${t}`, xOf(t) - 6, H - 2);
  }

  function drawRecruitment() {
    const cv = $("recruit"), ctx = cv.getContext("2d");
    const W = cv.width, H = cv.height, pad = 44;
    ctx.clearRect(0, 0, W, H);
    ctx.font = "12px system-ui, sans-serif";
    const pts = S.recruitment.filter((p) => Number.isFinite(p.i));
    if (!pts.length) return;
    let iMin = Math.min(...pts.map((p) => p.i)), iMax = Math.max(...pts.map((p) => p.i));
    if (iMax - iMin < 1) { iMin -= 1; iMax += 1; }
    const vMax = niceCeil(Math.max(1, ...pts.map((p) => Math.max(nz(p.m) || 0, nz(p.h) || 0))));
    const xOf = (i) => pad + ((i - iMin) / (iMax - iMin)) * (W - pad - 10);
    const yOf = (v) => H - 20 - (v / vMax) * (H - 34);
    ctx.strokeStyle = "#999";
    ctx.beginPath(); ctx.moveTo(pad, 6); ctx.lineTo(pad, H - 20); ctx.lineTo(W - 6, H - 20); ctx.stroke();
    ctx.fillStyle = "#555";
    ctx.fillText(`${vMax}`, 2, 14); ctx.fillText("0", 30, H - 20);
    ctx.fillText(`${fmt(iMin, 1)} mA`, pad, H - 4); ctx.fillText(`${fmt(iMax, 1)} mA`, W - 60, H - 4);
    for (const [key, color, label] of [["m", "#1f4e9a", "M"], ["h", "#c0161c", "H"]]) {
      ctx.fillStyle = color;
      for (const p of pts) {
        const v = nz(p[key]);
        if (!Number.isFinite(v)) continue;
        ctx.beginPath(); ctx.arc(xOf(p.i), yOf(v), p.excluded ? 2 : 3.5, 0, 2 * Math.PI); ctx.fill();
      }
      ctx.fillText(label, key === "m" ? W - 40 : W - 22, 14);
    }
  }

  // ------------------------------------------------------------------ panels
  function setStatus(st) {
    if (!st) return;
    const bat = st.battery_pct === null || st.battery_pct === undefined ? "-" : `${st.battery_pct}%`;
    const disk = st.free_disk_mb === null ? "-" : st.free_disk_mb > 2048 ? `${(st.free_disk_mb / 1024).toFixed(1)} GB` : `${st.free_disk_mb.toFixed(0)} MB`;
    const link = st.link_up ? "link up" : '<span class="bad">LINK DOWN</span>';
    const lost = st.lost_packets ? `<span class="bad">lost ${st.lost_packets}</span>` : "lost 0";
    const gaps = st.gap_samples ? `<span class="bad">gaps ${st.gap_samples}</span>` : "gaps 0";
    $("status").innerHTML = `${link} &middot; EMG ${fmt(st.emg_rate_hz)} Hz &middot; angle ${fmt(st.angle_rate_hz)} Hz &middot; ${lost} &middot; ${gaps} &middot; battery ${bat} &middot; disk ${disk} &middot; elapsed ${hms(st.elapsed_s)}`;
  }

  function setProtocol(p) {
    if (!p) return;
    if (p.total) {
      $("prompt").hidden = false;
      $("stretchtable").hidden = false;
      const here = `stretch ${p.step}/${p.total} at ${p.velocity_deg_s} deg/s`;
      let stepText = here + (p.state === "moving" ? " \u2014 moving" : "");
      let nextText = p.next ? `next: ${p.next.phase} stretch at ${p.next.velocity_deg_s} deg/s` : "last stretch";
      if (p.state === "done") { stepText = `stretch protocol complete (${p.total} stretches)`; nextText = ""; }
      else if (p.rest_s !== undefined) { stepText = `rest ${Math.ceil(p.rest_s)} s \u2014 next: ${here}`; nextText = `(${p.phase})`; }
      $("step").textContent = stepText;
      $("next").textContent = nextText;
      S.targetVel = p.state === "done" ? NaN : p.velocity_deg_s;
    }
    if (p.n_pulses !== undefined) {
      $("hreflex").hidden = false;
      $("stopstim").hidden = !!p.stopped || S.ended;
      const band = p.gate_band_uv ? `${p.gate_band_uv[0]}\u2013${p.gate_band_uv[1]} \u00b5V` : "";
      const gateCls = p.gate === "in band" ? "" : "warn";
      const next = p.next_intensity_ma === undefined ? "none (plan complete)" :
        p.next_intensity_ma === null ? "test intensity (chosen after the ladder)" : `${p.next_intensity_ma} mA (${p.next_block})`;
      let last = "";
      if (p.last) last = `<div>last: ${p.last.intensity_ma} mA ${p.last.status}${p.last.message ? " \u2014 " + p.last.message : ""}</div>`;
      $("gate").innerHTML = `<div>pulse ${p.n_done}/${p.n_pulses}</div>` +
        `<div id="gatestate" class="${gateCls}">gate: ${p.gate}${band ? " (" + fmt(p.background_uv, 1) + " \u00b5V in " + band + ")" : ""}</div>` +
        `<div id="nextintensity">next: ${next}</div>${last}`;
    }
  }

  function addEvents(list) {
    for (const e of list) {
      S.events.push(e);
      if (e.kind === "status") continue;
      if (e.kind === "note" && e.label === "stretch_result") addStretchRow(e.params);
      if (e.kind === "note" && e.label !== "stretch_result" && e.label !== "hreflex_pulse") continue;
      // live: the protocol's own messages say the same as its prompt and note events, better
      if (S.live && (e.kind === "prompt" || e.kind === "note")) continue;
      if (e.kind === "stimulus" && !S.live) continue;
      logLine(e);
    }
  }
  function logLine(e) {
    const li = document.createElement("li");
    let text = `${fmt(e.time_s, 2)} s  ${e.kind}${e.label ? " " + e.label : ""}`;
    const p = e.params || {};
    if (e.kind === "prompt" && p.velocity_deg_s) text += ` ${p.velocity_deg_s} deg/s`;
    if (e.kind === "stimulus" && p.intensity_ma !== undefined) text += ` ${p.intensity_ma} mA`;
    if (e.kind === "gap") text += ` ${p.n_samples} ${p.stream} samples`;
    if (e.label === "hreflex_pulse") text = `${fmt(e.time_s, 2)} s  pulse ${p.number} ${p.block} ${p.intensity_ma} mA ${p.status}`;
    li.textContent = text;
    li.addEventListener("click", () => { if (!S.live) centreOn(e.time_s); });
    const log = $("log");
    log.insertBefore(li, log.firstChild);
    while (log.childNodes.length > 300) log.removeChild(log.lastChild);
  }
  function addStretchRow(r) {
    if (!r) return;
    const tb = $("stretches").tBodies[0];
    const tr = document.createElement("tr");
    const warn = [];
    if (!r.detected) warn.push("no stretch detected");
    if (r.irregular) warn.push(`irregular (CV ${fmt(r.velocity_cv, 2)})`);
    if (r.muscle_active) warn.push(`muscle already active (${fmt(r.pre_stretch_rms_uv)} \u00b5V)`);
    const cells = [r.index + 1, r.phase, r.target_velocity_deg_s, fmt(nz(r.mean_velocity_deg_s)),
                   fmt(nz(r.peak_velocity_deg_s)), warn.length ? "WARNING: " + warn.join("; ") : "ok"];
    for (const c of cells) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    tr.lastChild.className = warn.length ? "warn" : "";
    tb.appendChild(tr);
    const res = $("result");
    res.textContent = `stretch ${r.index + 1}: ${r.detected ? `achieved ${fmt(nz(r.mean_velocity_deg_s))} deg/s (peak ${fmt(nz(r.peak_velocity_deg_s))}) for target ${r.target_velocity_deg_s}` : "no stretch detected"}` + (warn.length ? `  WARNING: ${warn.join("; ")}` : "  ok");
    res.className = warn.length ? "warn" : "ok";
  }
  function addSweeps(list) {
    for (const s of list) {
      S.sweeps.push(s);
      if (S.sweeps.length > 200) S.sweeps.shift();
      S.recruitment.push({ i: nz(s.intensity_ma), m: nz(s.m_p2p_uv), h: nz(s.h_p2p_uv) });
    }
    if (list.length) {
      const n = $("nsweeps");
      n.textContent = String(S.nSweeps); n.dataset.count = String(S.nSweeps);
      V.sweeps = S.nSweeps;
      drawSweeps(); drawRecruitment();
    }
  }

  // ------------------------------------------------------------------ live mode
  async function poll() {
    if (S.ended) return;
    try {
      const d = await getJSON("/api/live", {
        emg: S.emg.c1, angle: S.angle ? S.angle.c1 : 0, ev: S.ev, sw: S.sw,
      });
      V.polls++;
      storeLive(S.emg, d.emg, ["min", "max", "env"], true);
      if (d.angle && S.angle) storeLive(S.angle, d.angle, ["min", "max", "mean", "vel"], false);
      S.ev += d.events.length; addEvents(d.events);
      S.nSweeps = d.n_sweeps; S.sw += d.sweeps.length; addSweeps(d.sweeps);
      S.status = d.status; setStatus(d.status); setProtocol(d.protocol);
      const newest = S.emg.c1 * S.emg.dt;
      if (newest !== S.newest) { S.newest = newest; S.recvAt = performance.now(); }
      V.ready = true;
      if (d.status.state !== "recording") endLive(d.status.state === "stopping" ? "recording stopping\u2026" : "recording ended");
      setTimeout(poll, 100);
    } catch (err) {
      endLive("recording ended (the recorder closed the view)");
    }
  }
  function endLive(text) {
    const b = $("banner");
    b.hidden = false; b.textContent = text;
    if (text.startsWith("recording ended")) {
      S.ended = true;
      for (const id of ["marker", "stop", "stopstim"]) $(id).disabled = true;
    }
  }

  function post(path) {
    return fetch(url(path), { method: "POST", cache: "no-store" }).then((r) => r.json()).catch(() => null);
  }
  let stopArmed = -Infinity;
  $("stop").addEventListener("click", () => {
    const b = $("stop");
    if (performance.now() - stopArmed < 4000) {
      b.textContent = "stopping\u2026"; b.disabled = true; post("/api/stop");
      return;
    }
    stopArmed = performance.now();
    b.textContent = "click again to stop"; b.classList.add("confirm");
    setTimeout(() => { if (!b.disabled) { b.textContent = "Stop recording"; b.classList.remove("confirm"); } }, 4000);
  });
  $("marker").addEventListener("click", () => post("/api/marker"));
  $("stopstim").addEventListener("click", () => post("/api/stop-stim"));

  // ------------------------------------------------------------------ review mode
  let pending = null, inflight = false;
  function requestWindow() {
    if (pending) clearTimeout(pending);
    pending = setTimeout(fetchWindow, 60);
  }
  async function fetchWindow() {
    if (inflight) { requestWindow(); return; }
    inflight = true;
    const { t0, t1 } = S.view;
    const cols = Math.max(100, Math.floor(layout().plotW));
    const t = performance.now();
    try {
      const d = await getJSON("/api/window", { t0: t0.toFixed(4), t1: t1.toFixed(4), cols });
      S.emg = storeWindow(d.emg, ["min", "max", "env"], true);
      if (d.angle) S.angle = storeWindow(d.angle, ["min", "max", "mean", "vel"], false);
      V.windows++; V.lastWindowMs = performance.now() - t;
      $("range").textContent = `${hms(t0)} \u2013 ${hms(t1)} (${(t1 - t0).toFixed(t1 - t0 < 10 ? 2 : 0)} s)` + (d.emg.sampled ? "  overview: one chunk per column, zoom in for every sample" : "");
      S.dirty = true; V.ready = true;
    } finally { inflight = false; }
  }
  function setView(t0, t1) {
    const dur = S.info.duration_s;
    let span = Math.min(Math.max(t1 - t0, 0.05), dur);
    t0 = Math.max(0, Math.min(t0, dur - span));
    S.view = { t0, t1: t0 + span };
    S.dirty = true;
    drawOverview();
    requestWindow();
  }
  function centreOn(t) {
    const span = S.view.t1 - S.view.t0;
    setView(t - span / 2, t + span / 2);
  }
  function zoom(f, at) {
    const { t0, t1 } = S.view;
    const c = at === undefined ? (t0 + t1) / 2 : at;
    setView(c - (c - t0) * f, c + (t1 - c) * f);
  }
  async function loadOverview() {
    const cv = $("overview");
    const cols = Math.max(100, Math.min(800, cv.clientWidth || 800));
    const d = await getJSON("/api/window", { t0: 0, t1: S.info.duration_s, cols });
    S.overview = storeWindow(d.emg, ["min", "max", "env"], true);
    drawOverview();
  }
  function drawOverview() {
    const cv = $("overview");
    const W = cv.clientWidth || 800, H = 60;
    if (cv.width !== W) cv.width = W;
    const ctx = cv.getContext("2d");
    ctx.clearRect(0, 0, W, H);
    const dur = S.info.duration_s;
    const xOf = (t) => (t / dur) * W;
    if (S.overview) {
      const e = extent(S.overview, ["env"], 0, 0, dur, true);
      const sc = e.m || 1;
      ctx.strokeStyle = COLORS.env;
      strokeLine(ctx, S.overview, "env", 0, 0, dur, 0, W, (v) => H - 4 - (v / sc) * (H - 8));
    }
    for (const e of S.events) {
      const color = { stimulus: COLORS.stim, prompt: COLORS.prompt, marker: COLORS.marker, gap: "#c0161c" }[e.kind];
      if (!color) continue;
      ctx.fillStyle = color; ctx.fillRect(xOf(e.time_s), 0, 1.5, e.kind === "stimulus" ? 10 : 18);
    }
    ctx.fillStyle = "rgba(31,111,208,0.18)"; ctx.strokeStyle = "#1f6fd0";
    const a = xOf(S.view.t0), b = Math.max(a + 2, xOf(S.view.t1));
    ctx.fillRect(a, 0, b - a, H); ctx.strokeRect(a, 0.5, b - a, H - 1);
  }
  function setupReviewControls() {
    $("nav").hidden = false;
    $("overview").addEventListener("click", (ev) => {
      const r = ev.target.getBoundingClientRect();
      centreOn(((ev.clientX - r.left) / r.width) * S.info.duration_s);
    });
    $("zoomin").addEventListener("click", () => zoom(0.5));
    $("zoomout").addEventListener("click", () => zoom(2));
    $("all").addEventListener("click", () => setView(0, S.info.duration_s));
    $("left").addEventListener("click", () => { const s = S.view.t1 - S.view.t0; setView(S.view.t0 - 0.8 * s, S.view.t1 - 0.8 * s); });
    $("right").addEventListener("click", () => { const s = S.view.t1 - S.view.t0; setView(S.view.t0 + 0.8 * s, S.view.t1 + 0.8 * s); });
    traces.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = traces.getBoundingClientRect();
      const frac = Math.max(0, (ev.clientX - r.left - LEFT) / (r.width - LEFT));
      zoom(ev.deltaY > 0 ? 1.25 : 0.8, S.view.t0 + frac * (S.view.t1 - S.view.t0));
    }, { passive: false });
    let drag = null;
    traces.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, t0: S.view.t0, t1: S.view.t1 }; });
    window.addEventListener("mouseup", () => { drag = null; });
    window.addEventListener("mousemove", (ev) => {
      if (!drag) return;
      const r = traces.getBoundingClientRect();
      const dt = ((ev.clientX - drag.x) / (r.width - LEFT)) * (drag.t1 - drag.t0);
      setView(drag.t0 - dt, drag.t1 - dt);
    });
    window.addEventListener("keydown", (ev) => {
      if (ev.key === "ArrowLeft") $("left").click();
      else if (ev.key === "ArrowRight") $("right").click();
      else if (ev.key === "+" || ev.key === "=") zoom(0.5);
      else if (ev.key === "-") zoom(2);
    });
  }
  async function loadReviewSweeps() {
    const an = S.info.analysis || {};
    if (an.m_window_ms) S.windowsMs.m = an.m_window_ms;
    if (an.h_window_ms) S.windowsMs.h = an.h_window_ms;
    const d = await getJSON("/api/sweeps");
    S.nSweeps = d.sweeps.length;
    $("hreflex").hidden = false;
    $("gate").innerHTML = `<div>${S.nSweeps} stimuli</div>` + (an.hmax_mmax ? `<div>Hmax/Mmax ${fmt(an.hmax_mmax, 2)}</div>` : "");
    const keepRecruit = an.stimuli && an.stimuli.length;
    if (keepRecruit) S.recruitment = an.stimuli.map((s) => ({ i: nz(s.intensity_ma), m: nz(s.m_p2p_uv), h: nz(s.h_p2p_uv), excluded: !s.included }));
    const sw = d.sweeps.map((s) => Object.assign(s, { y: s.y.map(nz) }));
    if (!keepRecruit) {
      for (const s of sw) {
        const p2p = (w) => {
          let lo = Infinity, hi = -Infinity;
          s.y.forEach((v, i) => { const t = s.t0_ms + i * s.dt_ms; if (t >= w[0] && t < w[1] && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
          return hi > lo ? hi - lo : NaN;
        };
        s.m_p2p_uv = p2p(S.windowsMs.m); s.h_p2p_uv = p2p(S.windowsMs.h);
      }
    }
    const saved = S.recruitment;
    S.recruitment = [];
    addSweeps(sw);
    if (keepRecruit) S.recruitment = saved;
    S.sweeps = sw.slice(-30);
    drawSweeps(); drawRecruitment();
  }

  function analysisTable(an) {
    const t = document.createElement("table");
    t.id = "analysis";
    t.innerHTML = "<caption>stored analysis (run " + an.run + ")</caption><thead><tr><th>#</th>" +
      "<th>start s</th><th>peak deg/s</th><th>onset s</th><th>DSRT deg</th><th>velocity at onset</th><th>in fit</th></tr></thead>";
    const tb = document.createElement("tbody");
    for (const st of an.stretches) {
      const tr = document.createElement("tr");
      for (const c of [st.index + 1, fmt(nz(st.start_s), 2), fmt(nz(st.peak_velocity_deg_s)), fmt(nz(st.onset_s), 2),
                       fmt(nz(st.dsrt_deg), 1), fmt(nz(st.onset_velocity_deg_s)), st.used_in_fit ? "yes" : "no"]) {
        const td = document.createElement("td"); td.textContent = c; tr.appendChild(td);
      }
      tr.addEventListener("click", () => centreOn(nz(st.start_s) + 2));
      tb.appendChild(tr);
    }
    t.appendChild(tb);
    const sec = $("stretchtable");
    sec.hidden = false;
    sec.appendChild(t);
  }

  // ------------------------------------------------------------------ frames
  function frame() {
    V.frames++;
    if (S.info) {
      if (S.live) {
        const lag = 0.15;
        const ahead = Math.min((performance.now() - S.recvAt) / 1000, lag);
        const right = Math.max(LIVE_SPAN_S, S.newest - lag + ahead);
        S.view = { t0: right - LIVE_SPAN_S, t1: right };
        drawTraces();
      } else if (S.dirty) {
        S.dirty = false;
        drawTraces();
      }
    }
    requestAnimationFrame(frame);
  }

  async function start() {
    const info = await getJSON("/api/info");
    S.info = info;
    V.mode = info.mode;
    document.title = `tonuslab ${info.mode}: ${info.file.split("/").pop()}`;
    $("file").textContent = info.file;
    const nEmg = info.emg_names.length;
    if (info.windows_ms) S.windowsMs = info.windows_ms;
    if (info.mode === "live") {
      S.live = true;
      $("mode").textContent = "tonuslab live";
      S.emg = makeStore(["min", "max", "env"], nEmg, CAP, CAP);
      S.emg.dt = info.emg_dt_s;
      if (info.angle_rate_hz) { S.angle = makeStore(["min", "max", "mean", "vel"], 1, CAP, CAP); S.angle.dt = info.angle_dt_s; }
      if (info.protocol === "hreflex") { $("hreflex").hidden = false; $("stopstim").hidden = false; drawSweeps(); }
      poll();
    } else {
      $("mode").textContent = "tonuslab review";
      for (const id of ["marker", "stop", "stopstim"]) $(id).hidden = true;
      const meta = info.metadata || {};
      $("status").textContent = [meta.subject_id, meta.muscle, meta.session_label, info.state,
        `${hms(info.duration_s)}`, `${nEmg} EMG ch at ${info.emg_rate_hz} Hz`,
        info.analysis ? `analysis run "${info.analysis.run}"` + (info.analysis.tsrt_deg !== null ? `, TSRT ${fmt(info.analysis.tsrt_deg, 1)} deg` : "") : "no stored analysis",
        info.gaps.length ? `${info.gaps.length} gaps` : "no gaps"].filter(Boolean).join(" \u00b7 ");
      addEvents(info.events.concat(info.gaps.map((g) => Object.assign({ kind: "gap", label: "", params: { stream: g.stream, n_samples: g.n_samples } }, g))));
      if (S.events.some((e) => e.label === "stretch_result")) $("stretchtable").hidden = false;
      if (info.analysis && info.analysis.stretches.length) analysisTable(info.analysis);
      setupReviewControls();
      const first = Math.min(info.duration_s, 60);
      setView(0, first);
      loadOverview();
      if (info.n_stimuli) loadReviewSweeps();
    }
    requestAnimationFrame(frame);
  }
  window.addEventListener("resize", () => { S.dirty = true; if (!S.live && S.info) requestWindow(); });
  start().catch((err) => {
    const b = $("banner"); b.hidden = false; b.textContent = `cannot load the session: ${err.message}`;
  });
})();
