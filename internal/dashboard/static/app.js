// sestream dashboard: plain JavaScript and canvas, fed by Server-Sent Events from /events.
'use strict';
(function () {
  const MAX_EVENTS = 50;
  const CELL_W = 4; // CSS pixels per heatmap column
  const state = { history: 120, source: '', streams: new Map(), process: null, mode: 'gate', range: 'window', lost: 0 };

  // ---- colour -------------------------------------------------------------------------------------------
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const VIRIDIS = [
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061], [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659], [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105], [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832]];
  function viridis(t) { // t in [0,1] -> [r,g,b] 0..255
    t = clamp(t, 0, 1);
    const out = [0, 0, 0];
    for (let i = 0; i < 3; i++) {
      let v = 0;
      for (let k = VIRIDIS.length - 1; k >= 0; k--) v = v * t + VIRIDIS[k][i];
      out[i] = 255 * clamp(v, 0, 1);
    }
    return out;
  }
  function diverging(t) { // t in [-1,1] -> blue, white, red
    t = clamp(t, -1, 1);
    return t < 0 ? [255 * (1 + t), 255 * (1 + t), 255] : [255, 255 * (1 - t), 255 * (1 - t)];
  }

  // ---- what a cell shows: the colour-mode hook ---------------------------------------------------------
  // Each mode reads one number per (block, channel) of a column and maps it to a colour. "gate" is the gate
  // value s in (0,1). "z" is the channel's z-score against the stream's baseline: the attention message is
  // to carry, per block, a drift_score and the channels that moved most with their z; zOf reads them (a full
  // per-channel vector `z`, or a list of [channel, z] / {channel, z} pairs), and the option is enabled as soon
  // as a message carries one. A new field needs only a change in zOf and hasZ.
  function gateOf(blk, ch) {
    if (blk.vector) return blk.vector[ch];
    if (blk.top) for (const e of blk.top) if (e[0] === ch) return e[1];
    return undefined;
  }
  function movedList(blk) { return blk.top_moved || blk.moved || blk.top_z || null; }
  function hasZ(blk) { return Array.isArray(blk.z) || Array.isArray(movedList(blk)); }
  function zOf(blk, ch) {
    if (Array.isArray(blk.z)) return blk.z[ch];
    const moved = movedList(blk);
    if (Array.isArray(moved)) {
      for (const e of moved) {
        const c = Array.isArray(e) ? e[0] : e.channel;
        if (c === ch) return Array.isArray(e) ? e[1] : e.z;
      }
      return 0; // not among the channels that moved most
    }
    return undefined;
  }
  const MODES = {
    gate: { name: 'gate', value: gateOf, color: (v, lo, hi) => viridis(hi > lo ? (v - lo) / (hi - lo) : 0.5), fixed: [0, 1] },
    z: { name: 'z', value: zOf, color: (v) => diverging(v / 4), fixed: [-4, 4] },
  };

  // ---- DOM helpers --------------------------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  }
  const fmt = (v, d) => (typeof v === 'number' && isFinite(v)) ? v.toFixed(d) : '–';
  const tip = document.getElementById('tip');

  // ---- stream state -------------------------------------------------------------------------------------
  function streamOf(name) {
    let s = state.streams.get(name);
    if (s) return s;
    const root = el('section', { class: 'stream', 'data-stream': name });
    // no alt text: before the first thumbnail (or with http.dashboard_frames: off) the box stays plain black
    const img = el('img', { class: 'frame', alt: '', title: 'latest frame of ' + name, 'data-stream': name, 'data-seq': '0' });
    const top = el('table', { class: 'top' });
    const metrics = el('div', { class: 'metrics' });
    const badge = el('span', { class: 'badge state', 'data-state': 'starting', text: 'starting' });
    const events = el('ol', { class: 'events', reversed: '' });
    const top1 = el('div', { class: 'top1', 'data-stream': name, 'data-seq': '0' });
    const info = el('div', { class: 'info' }, el('h2', {}, name + ' ', badge), top1, top, metrics, el('h3', { text: 'events' }), events);
    const note = el('div', { class: 'note' });
    const blocks = el('div', { class: 'blocks' });
    root.append(el('div', { class: 'stream-head' }, img, info), note, blocks);
    document.getElementById('empty')?.remove();
    document.getElementById('streams').append(root);
    s = { name, root, img, top, top1, metrics, badge, events, note, blocksEl: blocks, blocks: new Map(),
      columns: [], eventList: [], result: null, status: null, frame: 0, dirty: true };
    state.streams.set(name, s);
    return s;
  }

  function reset() {
    for (const s of state.streams.values()) s.root.remove();
    state.streams.clear();
  }

  function apply(u) {
    if (u.snapshot) {
      reset();
      state.history = u.history || state.history;
      state.source = u.source || '';
      document.getElementById('source').textContent = state.source ? 'from ' + state.source : '';
    }
    state.lost = u.lost || 0;
    if (u.process) state.process = u.process;
    for (const su of u.streams || []) {
      const s = streamOf(su.name);
      if (su.result) s.result = su.result;
      if (su.status) s.status = su.status;
      if (su.columns) {
        for (const c of su.columns) s.columns.push(c);
        if (s.columns.length > state.history) s.columns.splice(0, s.columns.length - state.history);
      }
      if (su.events) {
        for (const e of su.events) s.eventList.push(e);
        if (s.eventList.length > MAX_EVENTS) s.eventList.splice(0, s.eventList.length - MAX_EVENTS);
      }
      if (su.frame && su.frame !== s.frame) {
        s.frame = su.frame;
        s.img.src = 'frame/' + encodeURIComponent(s.name) + '?seq=' + su.frame;
        s.img.dataset.seq = String(su.frame);
      }
      s.dirty = true;
    }
    schedule();
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  }

  function render() {
    let anyZ = false;
    for (const s of state.streams.values()) {
      if (s.dirty) { renderInfo(s); renderBlocks(s); s.dirty = false; }
      const last = s.columns[s.columns.length - 1];
      if (last && last.blocks.some(hasZ)) anyZ = true;
    }
    const zOpt = document.querySelector('#color-mode option[value="z"]');
    zOpt.disabled = !anyZ;
  }

  function renderInfo(s) {
    const r = s.result, st = s.status;
    if (r) {
      s.top.replaceChildren();
      const top = r.top || [];
      for (const c of top) {
        const bar = el('div'); bar.style.width = (100 * c.score).toFixed(1) + '%';
        s.top.append(el('tr', {}, el('td', { text: c.label || ('class ' + c.index) }), el('td', { class: 'bar' }, bar), el('td', { text: fmt(c.score, 3) })));
      }
      if (top.length) { s.top1.textContent = top[0].label || ('class ' + top[0].index); s.top1.dataset.seq = String(r.seq); }
    }
    const t = (r && r.timings_ms) || {};
    const parts = [
      'frame ' + (r ? r.seq : '–'),
      'latency ' + fmt(t.total, 1) + ' ms (inference ' + fmt(t.inference, 1) + ' ms)',
      'fps in ' + fmt(st && st.fps_in, 1) + ' / out ' + fmt(st && st.fps_out, 1),
      'dropped ' + (st ? st.dropped : '–'), 'queue ' + (st ? st.queue_depth : '–'),
    ];
    const last = s.columns.length ? s.columns[s.columns.length - 1] : null, d = last && last.drift;
    if (d) { // the stream's attention drift state (message.Drift)
      parts.push('attention drift ' + (d.phase === 'detecting' ? fmt(d.score, 2) + ' (hits ' + d.hits + '/' + d.rise_count + (d.evidence_rise ? ', evidence ' + d.evidence + '/' + d.evidence_rise : '') + ')' : d.phase) + (d.on ? ' ON' : ''));
    }
    s.metrics.textContent = parts.join(' · ');
    if (st && st.state) { s.badge.textContent = st.state; s.badge.dataset.state = st.state; }
    s.events.replaceChildren();
    for (let i = s.eventList.length - 1; i >= 0 && s.events.childElementCount < 20; i--) {
      const e = s.eventList[i], d = e.details || {};
      const blocks = (d.blocks || []).map((b) => b.name + ' ' + fmt(b.score, 2) + '/' + fmt(b.threshold, 2)).join(', ');
      const extra = [d.state, d.block, d.frame && ('frame ' + d.frame), typeof d.score === 'number' ? 'score ' + fmt(d.score, 2) : undefined,
        blocks, d.error].filter((x) => x !== undefined && x !== null && x !== '').join(' ');
      s.events.append(el('li', { class: /drift/.test(e.kind) ? 'drift' : '', text: (e.time || '').slice(11, 23) + ' ' + e.kind + ' ' + extra }));
      if (/^(connected|reconnected)$/.test(e.kind) && !st) { s.badge.textContent = 'running'; s.badge.dataset.state = 'running'; }
    }
  }

  function blockOf(s, b) {
    let v = s.blocks.get(b.order);
    if (v && v.channels === b.channels) return v;
    if (v) v.root.remove();
    const rows = b.channels;
    const rowH = rows <= 16 ? 6 : rows <= 32 ? 4 : rows <= 64 ? 3 : 2;
    const heat = el('canvas', { class: 'heatmap', 'data-stream': s.name, 'data-block': b.name, 'data-order': String(b.order),
      'data-channels': String(b.channels), 'data-rows': '0', 'data-columns': '0', 'data-last-seq': '0' });
    heat.width = state.history; heat.height = rows;
    heat.style.width = (state.history * CELL_W) + 'px'; heat.style.height = (rows * rowH) + 'px';
    const chart = el('canvas', { class: 'chart', 'data-block': b.name });
    chart.width = state.history * CELL_W; chart.height = 56;
    const legendBar = el('canvas'); legendBar.width = 120; legendBar.height = 1;
    const legendLo = el('span'), legendHi = el('span');
    const title = el('h3', { text: b.name + ' · ' + b.channels + ' channels' });
    const statsLine = el('div', { class: 'legend' });
    const axisLo = el('span'), axisHi = el('span');
    const root = el('div', { class: 'block', 'data-block': b.name }, title, heat, chart, el('div', { class: 'axis' }, axisLo, axisHi),
      el('div', { class: 'legend' }, legendLo, legendBar, legendHi, statsLine));
    v = { root, heat, chart, axisLo, axisHi, legendBar, legendLo, legendHi, statsLine, name: b.name, order: b.order, channels: b.channels };
    heat.addEventListener('mousemove', (ev) => hover(s, v, ev));
    heat.addEventListener('mouseleave', () => { tip.hidden = true; });
    // keep blocks in network order
    const after = [...s.blocks.values()].filter((x) => x.order > b.order).sort((x, y) => x.order - y.order)[0];
    s.blocksEl.insertBefore(root, after ? after.root : null);
    s.blocks.set(b.order, v);
    return v;
  }

  // columnBlock returns the block of order `order` in column c (blocks are in network order).
  function columnBlock(c, order) {
    const b = c.blocks[order];
    if (b && b.order === order) return b;
    return c.blocks.find((x) => x.order === order);
  }

  function renderBlocks(s) {
    const last = s.columns[s.columns.length - 1];
    if (!last) return;
    const mode = MODES[state.mode] || MODES.gate;
    s.note.textContent = last.blocks.some((b) => b.vector) ? '' :
      'Gate vectors are not published (attention.include_vectors is off): only each block\'s top channels are drawn.';
    for (const b of last.blocks) {
      const v = blockOf(s, b);
      drawHeat(s, v, mode);
      drawChart(s, v);
    }
  }

  function drawHeat(s, v, mode) {
    const H = state.history, C = v.channels, cols = s.columns;
    const x0 = H - cols.length;
    let lo = Infinity, hi = -Infinity;
    const vals = new Float32Array(H * C).fill(NaN);
    let rows = 0;
    cols.forEach((c, i) => {
      const b = columnBlock(c, v.order);
      if (!b) return;
      if (b.vector) rows = b.vector.length;
      for (let ch = 0; ch < C; ch++) {
        const x = mode.value(b, ch);
        if (typeof x !== 'number') continue;
        vals[ch * H + x0 + i] = x;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
    });
    if (state.range === 'fixed' || !(hi > lo) || mode.name === 'z') [lo, hi] = mode.fixed;
    const ctx = v.heat.getContext('2d');
    const img = ctx.createImageData(H, C);
    for (let ch = 0; ch < C; ch++) {
      for (let x = 0; x < H; x++) {
        const val = vals[ch * H + x], p = 4 * (ch * H + x);
        const rgb = Number.isNaN(val) ? [28, 31, 36] : mode.color(val, lo, hi);
        img.data[p] = rgb[0]; img.data[p + 1] = rgb[1]; img.data[p + 2] = rgb[2]; img.data[p + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    v.heat.dataset.rows = String(rows);
    v.heat.dataset.columns = String(cols.filter((c) => columnBlock(c, v.order)).length);
    v.heat.dataset.lastSeq = String(cols[cols.length - 1].seq);
    v.lo = lo; v.hi = hi;
    // legend
    const lctx = v.legendBar.getContext('2d'), limg = lctx.createImageData(120, 1);
    for (let i = 0; i < 120; i++) {
      const rgb = mode.color(lo + (hi - lo) * i / 119, lo, hi);
      limg.data.set([rgb[0], rgb[1], rgb[2], 255], 4 * i);
    }
    lctx.putImageData(limg, 0, 0);
    v.legendLo.textContent = fmt(lo, mode.name === 'z' ? 0 : 2);
    v.legendHi.textContent = fmt(hi, mode.name === 'z' ? 0 : 2);
  }

  function driftMarks(s, v) { // column indices (into s.columns) of drift events of this block
    const marks = [];
    for (const e of s.eventList) {
      if (!/drift/.test(e.kind)) continue;
      const d = e.details || {};
      if (d.block && d.block !== v.name) continue;
      const rise = d.state ? d.state === 'rise' : !/off/.test(e.kind);
      if (rise && d.blocks && !d.blocks.some((b) => b.name === v.name)) continue; // a rise marks the blocks over threshold
      const i = s.columns.findIndex((c) => c.seq >= (d.frame || 0));
      if (i >= 0 && (d.frame || 0) >= s.columns[0].seq) marks.push({ i, on: rise });
    }
    return marks;
  }

  function drawChart(s, v) {
    const ctx = v.chart.getContext('2d'), W = v.chart.width, Hh = v.chart.height, H = state.history;
    const cols = s.columns, x0 = H - cols.length;
    ctx.clearRect(0, 0, W, Hh);
    const X = (i) => (x0 + i + 0.5) * CELL_W;
    const pts = cols.map((c) => columnBlock(c, v.order));
    // y axis: the window's range of mean ± std, padded
    let ylo = Infinity, yhi = -Infinity;
    for (const b of pts) if (b) { ylo = Math.min(ylo, b.mean - b.std); yhi = Math.max(yhi, b.mean + b.std); }
    if (!(yhi > ylo)) { ylo = 0; yhi = 1; }
    const pad = (yhi - ylo) * 0.1; ylo -= pad; yhi += pad;
    const Y = (val) => Hh - 4 - clamp((val - ylo) / (yhi - ylo), 0, 1) * (Hh - 8);
    v.axisLo.textContent = fmt(ylo, 3); v.axisHi.textContent = 'mean ± std · ' + fmt(yhi, 3);
    // mean ± std band, mean line
    ctx.fillStyle = 'rgba(95,179,255,0.25)';
    ctx.beginPath();
    let first = true;
    pts.forEach((b, i) => { if (b) { const y = Y(b.mean + b.std); if (first) { ctx.moveTo(X(i), y); first = false; } else ctx.lineTo(X(i), y); } });
    for (let i = pts.length - 1; i >= 0; i--) if (pts[i]) ctx.lineTo(X(i), Y(pts[i].mean - pts[i].std));
    ctx.closePath(); ctx.fill();
    ctx.strokeStyle = '#5fb3ff'; ctx.lineWidth = 1.5; ctx.beginPath(); first = true;
    pts.forEach((b, i) => { if (b) { if (first) { ctx.moveTo(X(i), Y(b.mean)); first = false; } else ctx.lineTo(X(i), Y(b.mean)); } });
    ctx.stroke();
    // baseline-relative drift score, when the messages carry one (own scale: 0 .. max seen)
    const ds = pts.map((b) => b && typeof b.drift_score === 'number' ? b.drift_score : null);
    const dmax = Math.max(1e-9, ...ds.filter((x) => x !== null));
    if (ds.some((x) => x !== null)) {
      ctx.strokeStyle = '#ffb347'; ctx.setLineDash([3, 2]); ctx.beginPath(); first = true;
      ds.forEach((d, i) => { if (d !== null) { const y = Hh - 4 - (d / dmax) * (Hh - 8); if (first) { ctx.moveTo(X(i), y); first = false; } else ctx.lineTo(X(i), y); } });
      ctx.stroke(); ctx.setLineDash([]);
    }
    // drift events
    for (const m of driftMarks(s, v)) {
      ctx.strokeStyle = m.on ? '#ff5f5f' : '#ff5f5f88'; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.moveTo(X(m.i), 0); ctx.lineTo(X(m.i), Hh); ctx.stroke();
    }
    const b = pts[pts.length - 1];
    v.statsLine.textContent = b ? ('mean ' + fmt(b.mean, 3) + ' · std ' + fmt(b.std, 3) +
      (typeof b.drift_score === 'number' ? ' · drift score ' + fmt(b.drift_score, 2) : '')) : '';
  }

  function hover(s, v, ev) {
    const H = state.history, rect = v.heat.getBoundingClientRect();
    const x = Math.floor((ev.clientX - rect.left) / rect.width * H);
    const ch = Math.floor((ev.clientY - rect.top) / rect.height * v.channels);
    const i = x - (H - s.columns.length);
    const c = s.columns[i];
    const b = c && columnBlock(c, v.order);
    if (!b || ch < 0 || ch >= v.channels) { tip.hidden = true; return; }
    const g = gateOf(b, ch), z = zOf(b, ch);
    tip.textContent = v.name + ' · channel ' + ch + ' · frame ' + c.seq + ' · gate ' + (typeof g === 'number' ? g.toFixed(3) : 'not published') +
      (typeof z === 'number' && hasZ(b) ? ' · z ' + z.toFixed(2) : '');
    tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px'; tip.hidden = false;
  }

  // ---- controls and connection --------------------------------------------------------------------------
  document.getElementById('color-mode').addEventListener('change', (e) => {
    state.mode = e.target.value;
    for (const s of state.streams.values()) s.dirty = true;
    schedule();
  });
  const conn = document.getElementById('conn');
  const es = new EventSource('events');
  es.addEventListener('update', (e) => apply(JSON.parse(e.data)));
  es.onopen = () => { conn.textContent = 'live'; conn.dataset.state = 'live'; };
  es.onerror = () => { conn.textContent = 'reconnecting'; conn.dataset.state = 'reconnecting'; };
  window.sestreamDashboard = state; // for tests and the console
})();
