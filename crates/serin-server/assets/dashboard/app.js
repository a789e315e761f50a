// Serin's operator dashboard: plain JavaScript, no framework, no build step,
// nothing loaded from elsewhere. It talks to the same API as the CLI, with the
// session token of the person logged in, and follows the selected deployment
// over its WebSocket stream.
'use strict';

const state = {
  token: localStorage.getItem('serin.token'),
  me: null,
  deployments: [],
  selected: localStorage.getItem('serin.deployment'),
  detail: null,
  rollout: null,
  health: null,
  metrics: null,
  points: new Map(), // "second|lane" -> point
  ws: null,
  wsRetry: 0,
  lastPercentAt: 0,
  serverNow: 0, // the stream's latest timestamp, Unix seconds (charts use the server's clock)
  nav: 0, // bumped by every navigation; a view drawn for an older one is dropped
};
window.serin = state; // for people poking at it (and for the browser tests)

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const fmt = (v, digits = 1, unit = '') => (v === null || v === undefined || Number.isNaN(v)) ? '—' : `${Number(v).toFixed(digits)}${unit}`;
const canAct = () => state.me && state.me.role !== 'viewer';
const VIEWER_REASON = 'Viewers can see everything and change nothing.';

function toast(text) {
  const t = $('#toast');
  t.textContent = text;
  t.classList.add('on');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('on'), 3000);
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const json = (r.headers.get('content-type') || '').includes('application/json');
  const data = text && json ? JSON.parse(text) : null;
  if (r.status === 401 && path !== '/api/v1/auth/login') {
    logout(false);
    throw new Error('your session has ended; log in again');
  }
  if (!r.ok) throw new Error(data && data.error ? `${data.error} (${data.code})` : `HTTP ${r.status}`);
  return data;
}

// ---------------------------------------------------------------- session

async function start() {
  $('#logout').addEventListener('click', () => logout(true));
  $('#login-form').addEventListener('submit', login);
  $('#estop').addEventListener('click', emergencyStop);
  window.addEventListener('hashchange', route);
  // Logged out in another tab: follow.
  window.addEventListener('storage', (e) => {
    if (e.key === 'serin.token' && !e.newValue && state.token) logout(false);
  });
  if (!state.token) return showLogin();
  try {
    state.me = await api('GET', '/api/v1/users/me');
  } catch (e) {
    return showLogin();
  }
  showApp();
}

function showLogin() {
  $('#login').hidden = false;
  $('#nav').hidden = true;
  $('#who').hidden = true;
  $('#estop').hidden = true;
  $('#estop-why').textContent = '';
  $('#view').replaceChildren();
  $('#email').focus();
}

async function login(ev) {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    const s = await api('POST', '/api/v1/auth/login', { email: $('#email').value, password: $('#password').value });
    state.token = s.token;
    localStorage.setItem('serin.token', s.token);
    state.me = await api('GET', '/api/v1/users/me');
    $('#password').value = '';
    showApp();
  } catch (e) {
    $('#login-error').textContent = e.message;
  }
}

async function logout(tell) {
  if (tell && state.token) {
    try { await fetch('/api/v1/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${state.token}` } }); } catch (_) { /* already gone */ }
  }
  state.token = null;
  state.me = null;
  localStorage.removeItem('serin.token');
  closeStream();
  showLogin();
}

function showApp() {
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#who').hidden = false;
  $('#who-name').textContent = `${state.me.name} (${state.me.role})`;
  $('#estop').hidden = false;
  $('#estop').disabled = true;
  route();
}

function route() {
  if (!state.me) return;
  const view = (location.hash.replace('#/', '') || 'console').split('?')[0];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#/${view}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const views = { console: consoleView, releases: releasesView, deployments: deploymentsView, audit: auditView, workers: workersView };
  closeStream();
  state.nav += 1;
  (views[view] || consoleView)(state.nav).catch((e) => toast(e.message));
}

// ---------------------------------------------------------------- console

/** Whether a view started for navigation `nav` may still draw. */
const current = (nav) => nav === state.nav && !!state.me;

async function consoleView(nav = state.nav) {
  const page = await api('GET', '/api/v1/canary/deployments?page_size=100');
  if (!current(nav)) return;
  state.deployments = page.deployments || page.items || [];
  state.deployments.sort((a, b) => (isLive(b) - isLive(a)) || (b.start_time > a.start_time ? 1 : -1));
  if (!state.deployments.some((d) => d.id === state.selected)) state.selected = state.deployments[0]?.id || null;
  $('#view').innerHTML = `
    <div class="grid">
      <section class="card" aria-labelledby="pick-title">
        <h2 id="pick-title">Deployment</h2>
        <label for="deployment" class="reason">Selected deployment</label>
        <select id="deployment">${state.deployments.map((d) => `<option value="${esc(d.id)}">${esc(d.queue_name)} · ${esc(d.stable_version)} → ${esc(d.canary_version)} · ${esc(d.status)}</option>`).join('') || '<option value="">none yet</option>'}</select>
        <p id="current-status" class="big" aria-live="polite"></p>
        <p id="status-reason" class="reason"></p>
      </section>
      <section class="card lane-stable" aria-labelledby="stable-title"><h2 id="stable-title">Production (stable)</h2><dl class="kv" id="card-stable"></dl></section>
      <section class="card lane-canary" aria-labelledby="canary-title"><h2 id="canary-title">Canary</h2><dl class="kv" id="card-canary"></dl></section>
    </div>
    <section class="card" aria-labelledby="actions-title" style="margin-bottom:12px">
      <h2 id="actions-title">Actions</h2>
      <p class="reason" id="act-reason">${canAct() ? '' : VIEWER_REASON}</p>
      <label for="split">Traffic split: <output id="split-out" for="split"></output></label>
      <input id="split" type="range" min="0" max="100" step="1" value="0" aria-describedby="act-reason">
      <div class="row" style="margin-top:8px">
        <button type="button" data-act="promote" aria-describedby="act-reason">Promote</button>
        <button type="button" data-act="rollback" class="danger" aria-describedby="act-reason">Roll back</button>
        <button type="button" data-act="pause" class="quiet" aria-describedby="act-reason">Pause</button>
        <button type="button" data-act="resume" class="quiet" aria-describedby="act-reason">Resume</button>
        <button type="button" data-act="continue" class="quiet" aria-describedby="act-reason">Continue</button>
      </div>
      <details id="start-box"><summary>Start a canary</summary>
        <form id="start-form">
          <div class="grid">
            <div><label for="f-queue">Target (service or queue)</label><input id="f-queue" required></div>
            <div><label for="f-stable">Stable version</label><input id="f-stable" required></div>
            <div><label for="f-canary">Canary version</label><input id="f-canary" required></div>
            <div><label for="f-percent">Initial %</label><input id="f-percent" type="number" min="0" max="100" value="5"></div>
            <div><label for="f-profile">Profile</label><select id="f-profile"><option>default</option><option>conservative</option><option>aggressive</option></select></div>
          </div>
          <details><summary>Routing (for the proxy)</summary>
            <div class="grid">
              <div><label for="f-stable-url">Stable endpoint</label><input id="f-stable-url" placeholder="http://10.0.0.1:8080"></div>
              <div><label for="f-canary-url">Canary endpoint</label><input id="f-canary-url" placeholder="http://10.0.0.2:8080"></div>
              <div><label for="f-host">Host</label><input id="f-host"></div>
              <div><label for="f-prefix">Path prefix</label><input id="f-prefix" placeholder="/"></div>
            </div>
          </details>
          <button type="submit" style="margin-top:8px" aria-describedby="act-reason">Start canary</button>
        </form>
      </details>
    </section>
    <section class="card" aria-labelledby="live-title" style="margin-bottom:12px">
      <h2 id="live-title">Live comparison</h2>
      <p class="legend"><span class="s">stable</span><span class="c">canary</span><span class="reason">up to the last 5 minutes, per second, from the proxy</span></p>
      <div class="charts">
        ${chartBox('rps', 'Request rate (req/s)')}
        ${chartBox('err', 'Error rate (%)')}
        ${chartBox('ok', 'Success rate (%)')}
        ${chartBox('p50', 'p50 latency (ms)')}
        ${chartBox('p95', 'p95 latency (ms)')}
      </div>
    </section>
    <div class="grid">
      <section class="card" aria-labelledby="steps-title">
        <h2 id="steps-title">Workflow</h2>
        <label class="row"><input type="checkbox" id="auto" aria-describedby="auto-note act-reason"> Auto-progression</label>
        <p class="reason" id="auto-note">On: the controller moves through the steps by itself. Off: paused.</p>
        <ol class="steps" id="steps"></ol>
        <p id="verdict"></p>
      </section>
      <section class="card" aria-labelledby="safety-title">
        <h2 id="safety-title">Safety</h2>
        <div class="scroll"><table><thead><tr><th>Check</th><th>Now / limit</th><th>State</th></tr></thead><tbody id="safety"></tbody></table></div>
        <p id="why" class="reason"></p>
      </section>
    </div>`;
  $('#deployment').value = state.selected || '';
  $('#deployment').addEventListener('change', (e) => select(e.target.value));
  const split = $('#split');
  split.addEventListener('input', () => { $('#split-out').textContent = splitText(Number(split.value)); });
  // One request after the keys or the pointer stop, not one per arrow press.
  split.addEventListener('change', () => {
    clearTimeout(setPercent.timer);
    setPercent.timer = setTimeout(() => setPercent(Number(split.value)), 400);
  });
  for (const b of document.querySelectorAll('[data-act]')) b.addEventListener('click', () => action(b.dataset.act));
  $('#auto').addEventListener('change', (e) => action(e.target.checked ? 'resume' : 'pause', true));
  $('#start-form').addEventListener('submit', startCanary);
  if (state.selected) await select(state.selected, nav);
  else render();
}

const isLive = (d) => !['completed', 'failed'].includes(d?.status);
const splitText = (p) => `${100 - p}% stable / ${p}% canary`;

function chartBox(id, title) {
  return `<figure class="chart" aria-labelledby="t-${id}"><figcaption id="t-${id}"><h3>${title}</h3><span class="now" id="now-${id}"></span></figcaption><svg id="c-${id}" viewBox="0 0 300 140" preserveAspectRatio="none" role="img" aria-label="${title}, stable and canary"></svg></figure>`;
}

async function select(id, nav = state.nav) {
  state.selected = id;
  localStorage.setItem('serin.deployment', id);
  state.points.clear();
  state.serverNow = 0;
  await refresh(true);
  if (current(nav) && $('#current-status')) openStream();
}

// What the page reads costs the user's rate limit, so it reads little: the
// deployment (and its rollout, when it has one) on each change; its health
// and metrics once, then from the stream (`health_status_changed`,
// `metrics_updated`).
async function refresh(full = false) {
  const id = state.selected;
  if (!id) return render();
  const get = (p) => api('GET', `/api/v1/canary/deployments/${encodeURIComponent(id)}${p}`).catch(() => null);
  const detail = await get('');
  const [rollout, health, metrics] = await Promise.all([
    detail?.rollout ? get('/rollout') : null,
    full ? get('/health') : state.health,
    full ? get('/metrics') : state.metrics,
  ]);
  if (id !== state.selected) return;
  Object.assign(state, { detail, rollout, health, metrics });
  render();
}

function render() {
  if (!state.me) return;
  const d = state.detail;
  const live = d && isLive(d);
  // Always there; usable when there is a live canary and the caller may act.
  const estop = $('#estop');
  estop.hidden = false;
  estop.disabled = !canAct() || !live;
  estop.title = !canAct() ? VIEWER_REASON : (live ? 'Roll back at once: all traffic to stable' : 'No live canary is selected');
  estop.setAttribute('aria-describedby', 'estop-why');
  $('#estop-why').textContent = estop.title;
  if (!$('#current-status')) return;
  if (!d) {
    $('#current-status').textContent = 'No deployment yet';
    return;
  }
  const p = d.current_percent;
  $('#current-status').textContent = live ? `${d.status === 'paused' ? 'Paused' : 'Canary live'}: ${splitText(p)}` : (d.status === 'completed' ? `Promoted: ${d.canary_version} is stable` : `Rolled back: ${d.stable_version} serves all traffic`);
  $('#status-reason').textContent = d.status_reason ? `Why: ${d.status_reason}` : '';
  const m = state.metrics || {};
  // Once ended, the canary's health is the verdict that ended it (the rollout's
  // health_status, read from the deciding window), never a later recomputation.
  const healthText = !live && state.rollout?.health_status ? state.rollout.health_status
    : (!live && d.status === 'failed' ? 'rolled_back' : (state.health ? state.health.overall_status : 'unknown'));
  const lane = (which, snap, share, version) => `
    <dt>Health</dt><dd><span class="badge ${esc(which === 'canary' ? healthText : 'healthy')}">${esc(which === 'canary' ? healthText : (live || d.status === 'failed' ? 'serving' : 'retired'))}</span></dd>
    <dt>Version</dt><dd>${esc(version)}</dd>
    <dt>Traffic</dt><dd>${share}%</dd>
    <dt>Average latency</dt><dd>${fmt(snap?.avg_latency, 1, ' ms')}</dd>
    <dt>p95 latency</dt><dd>${fmt(snap?.p95_latency, 1, ' ms')}</dd>
    <dt>Error rate</dt><dd>${fmt(snap?.error_rate, 2, '%')}</dd>
    <dt>Requests</dt><dd>${snap?.job_count ?? '—'}</dd>`;
  $('#card-stable').innerHTML = lane('stable', m.stable, 100 - p, d.stable_version);
  $('#card-canary').innerHTML = lane('canary', m.canary, p, d.canary_version);
  const split = $('#split');
  if (document.activeElement !== split) split.value = p;
  $('#split-out').textContent = splitText(Number(split.value));
  const acts = { promote: live, rollback: live, pause: d.status === 'active', resume: d.status === 'paused', continue: live && !!state.rollout && !!state.rollout.waiting_for };
  for (const b of document.querySelectorAll('[data-act]')) {
    b.disabled = !canAct() || !acts[b.dataset.act];
    b.title = !canAct() ? VIEWER_REASON : (acts[b.dataset.act] ? '' : 'Not possible in this state');
  }
  split.disabled = !canAct() || !live;
  for (const b of document.querySelectorAll('#start-form button, #start-form input, #start-form select')) b.disabled = !canAct();
  const auto = $('#auto');
  auto.checked = !!state.rollout && d.status !== 'paused';
  auto.disabled = !canAct() || !live || !state.rollout;
  $('#auto-note').textContent = state.rollout
    ? 'On: the controller moves through the steps by itself. Off: paused.'
    : 'This deployment is driven by hand: it has no steps to move through.';
  renderSteps();
  renderSafety();
  renderCharts();
}

function renderSteps() {
  const r = state.rollout;
  const list = $('#steps');
  if (!r) {
    list.innerHTML = '<li>Driven by hand (no rollout plan).</li>';
    $('#verdict').textContent = '';
    return;
  }
  const marks = { done: '✓ done', running: '▶ running', stopped: '✕ stopped', pending: '○ pending' };
  const cls = { done: 'pass', running: 'warn', stopped: 'stopped' };
  list.innerHTML = r.steps.map((s) => `<li><span class="mark ${cls[s.state] || 'unknown'}">${marks[s.state] || esc(s.state)}</span><span>${s.index + 1}. ${esc(s.description)}${s.seconds_left != null ? ` <span class="reason">(${s.seconds_left}s left)</span>` : ''}</span></li>`).join('');
  const j = r.judgement;
  $('#verdict').innerHTML = r.waiting_for ? `Waiting for ${esc(r.waiting_for)}.` : (j ? `Verdict: <span class="badge ${esc(j.outcome)}">${esc(j.outcome)}</span>` : '');
}

const LEVEL = { pass: 'SAFE', warn: 'WATCH', fail: 'RED', inconclusive: 'WAIT', unknown: 'WAIT' };

function renderSafety() {
  const rows = [];
  const h = state.health;
  if (h) {
    for (const key of ['error_rate_check', 'latency_check', 'throughput_check', 'sample_size_check', 'duration_check']) {
      const c = h[key];
      // Too few requests or too little time yet is a wait, not a red light.
      const early = (key === 'sample_size_check' || key === 'duration_check') && c?.status === 'fail';
      if (c) rows.push([c.name, c.message, early ? 'WAIT' : (LEVEL[c.status] || 'WAIT')]);
    }
  }
  const j = state.rollout?.judgement;
  for (const v of j?.verdicts || []) rows.push([v.judge, v.summary, LEVEL[v.outcome] || 'WAIT']);
  $('#safety').innerHTML = rows.map(([name, now, level]) => `<tr><td>${esc(name)}</td><td>${esc(now)}</td><td><span class="badge ${level}">${level === 'SAFE' ? '✓ ' : level === 'RED' ? '✕ ' : level === 'WATCH' ? '! ' : '… '}${level}</span></td></tr>`).join('') || '<tr><td colspan="3">No checks yet.</td></tr>';
  const d = state.detail;
  const failing = (j?.verdicts || []).find((v) => v.outcome === 'fail');
  $('#why').textContent = d?.status === 'failed' ? `Why it rolled back: ${d.status_reason || 'rolled back'}` : (failing ? `Why it would roll back: ${failing.summary}` : '');
}

// ---------------------------------------------------------------- charts

function series() {
  const now = state.serverNow || Math.floor(Date.now() / 1000);
  // The last 5 minutes, or since the first second there is (at least a minute).
  let first = now;
  for (const p of state.points.values()) first = Math.min(first, p.second);
  const from = Math.min(Math.max(now - 300, first - 1), now - 60);
  const by = { stable: [], canary: [] };
  for (const p of state.points.values()) if (p.second >= from) by[p.lane].push(p);
  for (const l of Object.keys(by)) by[l].sort((a, b) => a.second - b.second);
  return { from, to: now, by };
}

function renderCharts() {
  if (!$('#c-rps')) return;
  const { from, to, by } = series();
  const metric = {
    rps: (p) => p.requests,
    err: (p) => (p.requests ? (100 * p.errors) / p.requests : null),
    ok: (p) => (p.requests ? 100 - (100 * p.errors) / p.requests : null),
    p50: (p) => p.p50_ms,
    p95: (p) => p.p95_ms,
  };
  for (const [id, f] of Object.entries(metric)) {
    const lines = { stable: by.stable.map((p) => [p.second, f(p)]), canary: by.canary.map((p) => [p.second, f(p)]) };
    const vals = [...lines.stable, ...lines.canary].map((x) => x[1]).filter((v) => v != null);
    const max = Math.max(id === 'ok' || id === 'err' ? 1 : 0.001, ...vals) * 1.1;
    const min = id === 'ok' ? Math.min(...vals, 100) * 0.95 : 0;
    const x = (s) => ((s - from) / (to - from)) * 300;
    const y = (v) => 135 - ((v - min) / (max - min || 1)) * 130;
    const path = (pts) => pts.filter((p) => p[1] != null).map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    $(`#c-${id}`).innerHTML = `<line x1="0" y1="135" x2="300" y2="135" stroke="#c9d2dc"/><path d="${path(lines.stable)}" fill="none" stroke="var(--stable)" stroke-width="2" vector-effect="non-scaling-stroke"/><path d="${path(lines.canary)}" fill="none" stroke="var(--canary)" stroke-width="2" stroke-dasharray="5 3" vector-effect="non-scaling-stroke"/>`;
    const last = (l) => { const v = lines[l].filter((p) => p[1] != null).slice(-1)[0]; return v ? v[1] : null; };
    const digits = id === 'rps' ? 0 : 1;
    $(`#now-${id}`).textContent = `stable ${fmt(last('stable'), digits)} · canary ${fmt(last('canary'), digits)}`;
  }
}

// ---------------------------------------------------------------- live stream

function openStream() {
  closeStream();
  if (!state.selected || !state.token) return;
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/canary/deployments/${encodeURIComponent(state.selected)}/events`, ['serin', state.token]);
  state.ws = ws;
  ws.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (e.deployment_id !== state.selected) return;
    switch (e.type) {
      case 'lanes_history':
      case 'lanes_updated': {
        state.serverNow = Math.floor(new Date(e.timestamp).getTime() / 1000);
        for (const p of e.data.points) state.points.set(`${p.second}|${p.lane}`, p);
        for (const [k, p] of state.points) if (p.second < state.serverNow - 300) state.points.delete(k);
        renderCharts();
        break;
      }
      case 'metrics_updated':
        state.metrics = e.data;
        render();
        break;
      case 'health_status_changed':
        if (e.data.health) state.health = e.data.health;
        render();
        break;
      case 'percentage_updated':
        // Drawn at once from the message; the rest follows with the next change.
        if (state.detail) state.detail.current_percent = e.data.new_percentage;
        state.lastPercentAt = performance.now();
        render();
        break;
      default:
        refresh();
    }
  };
  ws.onopen = () => { state.wsRetry = 0; };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    // Back off (2 s doubling to a minute, with jitter), and first ask whether the
    // session still works: a 401 there logs out instead of retrying for ever.
    const wait = Math.min(60000, 2000 * 2 ** state.wsRetry) * (0.75 + Math.random() / 2);
    state.wsRetry += 1;
    setTimeout(async () => {
      if (state.ws !== ws) return;
      try { await api('GET', '/api/v1/users/me'); } catch (_) { return; }
      if (state.ws === ws) openStream();
    }, wait);
  };
}

function closeStream() {
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close();
}

// ---------------------------------------------------------------- actions

function confirmAction(title, text, okLabel) {
  const dlg = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true }));
}

async function setPercent(p) {
  const d = state.detail;
  try {
    await api('PUT', `/api/v1/canary/deployments/${encodeURIComponent(d.id)}/percentage`, { percentage: p });
    toast(`Traffic split set: ${splitText(p)}`);
  } catch (e) {
    toast(e.message);
    render();
  }
}

async function action(what, fromSwitch) {
  const d = state.detail;
  if (!d) return;
  const base = `/api/v1/canary/deployments/${encodeURIComponent(d.id)}`;
  const plans = {
    promote: ['Promote the canary?', `All traffic goes to ${d.canary_version}; ${d.stable_version} stops receiving requests and the deployment ends as completed.`, 'Promote', 'POST', `${base}/promote`],
    rollback: ['Roll back the canary?', `All traffic returns to ${d.stable_version}; ${d.canary_version} stops receiving requests and the deployment ends as failed.`, 'Roll back', 'POST', `${base}/rollback`],
    pause: ['Pause automation?', 'The controller stops moving through the steps; traffic stays where it is until you resume.', 'Pause', 'POST', `${base}/pause`],
    resume: [null, null, null, 'POST', `${base}/resume`],
    continue: [null, null, null, 'POST', `${base}/continue`],
  };
  const [title, text, ok, method, path] = plans[what];
  if (title && !(await confirmAction(title, text, ok))) {
    if (fromSwitch) render();
    return;
  }
  try {
    await api(method, path, what === 'rollback' ? { reason: `rolled back from the dashboard by ${state.me.name}` } : (what === 'pause' ? { reason: `paused from the dashboard by ${state.me.name}` } : undefined));
    toast(`${what}: done`);
  } catch (e) {
    toast(e.message);
  }
  await refresh();
}

async function emergencyStop() {
  const d = state.detail;
  if (!d || !canAct()) return;
  const ok = await confirmAction('Emergency stop', `Every request goes back to ${d.stable_version} at once and ${d.queue_name}'s deployment of ${d.canary_version} ends as failed. This can't be undone; a new canary would have to start again.`, 'Stop and roll back');
  if (!ok) return;
  try {
    await api('POST', `/api/v1/canary/deployments/${encodeURIComponent(d.id)}/rollback`, { reason: `emergency stop by ${state.me.name}` });
    toast('Emergency stop: rolled back');
  } catch (e) {
    toast(e.message);
  }
  await refresh();
}

async function startCanary(ev) {
  ev.preventDefault();
  const v = (id) => $(id).value.trim();
  const body = { queue_name: v('#f-queue'), stable_version: v('#f-stable'), canary_version: v('#f-canary'), percentage: Number(v('#f-percent') || 0), profile: v('#f-profile') };
  if (v('#f-stable-url') || v('#f-canary-url')) {
    body.upstreams = { stable: v('#f-stable-url') ? [v('#f-stable-url')] : [], canary: v('#f-canary-url') ? [v('#f-canary-url')] : [] };
    body.route = {};
    if (v('#f-host')) body.route.host = v('#f-host');
    if (v('#f-prefix')) body.route.path_prefix = v('#f-prefix');
  }
  try {
    const d = await api('POST', '/api/v1/canary/deployments', body);
    toast(`Canary ${d.canary_version} started at ${d.current_percent}%`);
    state.selected = d.id;
    localStorage.setItem('serin.deployment', d.id);
    await consoleView();
  } catch (e) {
    toast(e.message);
  }
}

// ---------------------------------------------------------------- release manager views

function table(headers, rows) {
  return `<div class="scroll"><table><thead><tr>${headers.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('') || `<tr><td colspan="${headers.length}">Nothing yet.</td></tr>`}</tbody></table></div>`;
}

async function releasesView(nav = state.nav) {
  const products = (await api('GET', '/api/v1/products?page_size=100')).items || [];
  // One product at a time: the requests come out of the user's rate limit.
  const sections = [];
  for (const p of products) {
    const releases = (await api('GET', `/api/v1/products/${encodeURIComponent(p.name)}/releases?page_size=20`)).items || [];
    const latest = await api('GET', `/api/v1/products/${encodeURIComponent(p.name)}/releases/latest`).catch(() => null);
    sections.push(`<section class="card" style="margin-bottom:12px"><h2>${esc(p.name)}</h2><p>Latest stable: <strong>${latest ? esc(latest.version) : 'none yet'}</strong></p>${table(['Version', 'Status', 'Created', 'By', 'Notes'], releases.map((r) => `<tr><td>${esc(r.version)}</td><td><span class="badge ${esc(r.status)}">${esc(r.status)}</span></td><td>${esc(r.created_at.slice(0, 19).replace('T', ' '))}</td><td>${esc(r.created_by || '—')}</td><td>${esc(r.description || '')}</td></tr>`))}</section>`);
  }
  if (!current(nav)) return;
  $('#view').innerHTML = `<h2>Products and releases</h2>${sections.join('') || '<p>No products yet.</p>'}`;
}

function duration(a, b) {
  if (!b) return 'running';
  const s = Math.round((new Date(b) - new Date(a)) / 1000);
  return s < 120 ? `${s}s` : `${Math.round(s / 60)}m`;
}

async function deploymentsView(nav = state.nav) {
  const page = await api('GET', '/api/v1/deployments?page_size=100');
  if (!current(nav)) return;
  $('#view').innerHTML = `<h2>Deployments</h2><section class="card">${table(['Product', 'Environment', 'Version', 'From', 'Strategy', 'Status', 'Started', 'Duration', 'By'], page.items.map((d) => `<tr><td>${esc(d.product || '—')}</td><td>${esc(d.environment || '—')}</td><td>${esc(d.version)}</td><td>${esc(d.previous_version)}</td><td>${esc(d.strategy)}</td><td><span class="badge ${esc(d.status)}">${esc(d.status.replace('_', ' '))}</span></td><td>${esc(d.started_at.slice(0, 19).replace('T', ' '))}</td><td>${duration(d.started_at, d.completed_at)}</td><td>${esc(d.deployed_by)}</td></tr>`))}</section>`;
}

async function auditView(nav = state.nav) {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const params = new URLSearchParams({ page_size: '100' });
  for (const k of ['resource_id', 'actor', 'action']) if (q.get(k)) params.set(k, q.get(k));
  const page = await api('GET', `/api/v1/audit-logs?${params}`);
  if (!current(nav)) return;
  $('#view').innerHTML = `<h2>Audit log</h2>
    <form id="audit-form" class="card row" style="margin-bottom:12px">
      <div><label for="a-dep">Deployment or resource</label><input id="a-dep" value="${esc(q.get('resource_id') || '')}"></div>
      <div><label for="a-actor">Actor</label><input id="a-actor" value="${esc(q.get('actor') || '')}"></div>
      <div><label for="a-action">Type</label><input id="a-action" value="${esc(q.get('action') || '')}" placeholder="e.g. percentage_updated"></div>
      <button type="submit">Filter</button>
    </form>
    <section class="card">${table(['When', 'Actor', 'Type', 'Resource', 'What'], page.audit_logs.map((e) => `<tr><td>${esc(e.created_at.slice(0, 19).replace('T', ' '))}</td><td>${esc(e.actor)}</td><td>${esc(e.action)}</td><td>${esc(e.resource_type)} ${esc(e.resource_id)}</td><td>${esc(e.message)}</td></tr>`))}</section>`;
  $('#audit-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if ($('#a-dep').value) p.set('resource_id', $('#a-dep').value);
    if ($('#a-actor').value) p.set('actor', $('#a-actor').value);
    if ($('#a-action').value) p.set('action', $('#a-action').value);
    location.hash = `#/audit?${p}`;
  });
}

async function workersView(nav = state.nav) {
  const page = await api('GET', '/api/v1/canary/workers?page_size=100');
  if (!current(nav)) return;
  const workers = page.workers || page.items || [];
  $('#view').innerHTML = `<h2>Workers</h2><section class="card">${table(['Worker', 'Version', 'Lane', 'Queues', 'Status', 'Last seen'], workers.map((w) => `<tr><td>${esc(w.id)}</td><td>${esc(w.version)}</td><td>${esc(w.lane)}</td><td>${esc((w.queues || []).join(', '))}</td><td><span class="badge ${esc(w.status)}">${esc(w.status)}</span></td><td>${esc((w.last_seen || '').slice(0, 19).replace('T', ' '))}</td></tr>`))}</section>`;
}

start();
