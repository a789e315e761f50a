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

/** What a failed call tells a person: the server's sentence (never its code), or what happened. */
function humanError(e) {
  if (!e || e.status === undefined) return String(e?.message || e || 'Something went wrong.');
  if (e.status === 0) return "The server can't be reached.";
  if (e.status === 429) return `Too many requests for now; try again in ${waitText(e.retryAfter)}.`;
  const said = (e.said || e.message || '').trim();
  if (!said) return e.status >= 500 ? 'The server ran into a problem; try again in a moment.' : 'That did not work.';
  const sentence = said.charAt(0).toUpperCase() + said.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

function toast(text) {
  const t = $('#toast');
  t.textContent = text instanceof Error ? humanError(text) : text;
  if (text instanceof Error && text.code) t.dataset.code = text.code;
  else delete t.dataset.code;
  t.classList.add('on');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('on'), 3000);
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (_) {
    throw apiError("the server can't be reached", 0, 'UNREACHABLE');
  }
  const text = await r.text();
  const json = (r.headers.get('content-type') || '').includes('application/json');
  const data = text && json ? JSON.parse(text) : null;
  if (r.status === 401 && path !== '/api/v1/auth/login') {
    logout(false);
    throw apiError('your session has ended; log in again', 401, 'UNAUTHORIZED');
  }
  if (!r.ok) {
    const wait = Number(r.headers.get('retry-after')) || data?.details?.retry_after_seconds || null;
    const e = apiError(data && data.error ? `${data.error} (${data.code})` : `HTTP ${r.status}`, r.status, data?.code || null, wait);
    e.said = data?.error || '';
    throw e;
  }
  return data;
}

/** An Error that keeps what the server said: its HTTP status (0: no answer), code and Retry-After. */
const apiError = (message, status, code, retryAfter = null) => Object.assign(new Error(message), { status, code, retryAfter });

// ---------------------------------------------------------------- session

async function start() {
  $('#logout').addEventListener('click', () => logout(true));
  $('#login-form').addEventListener('submit', login);
  $('#estop').addEventListener('click', emergencyStop);
  $('#nav').addEventListener('scroll', navEdges, { passive: true });
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => {
    clearTimeout(start.resized);
    start.resized = setTimeout(() => { navEdges(); renderCharts(); }, 100);
  });
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
  showLoginError(null);
  const submit = $('#login-form button[type=submit]');
  submit.disabled = true;
  try {
    const s = await api('POST', '/api/v1/auth/login', { email: $('#email').value, password: $('#password').value });
    state.token = s.token;
    localStorage.setItem('serin.token', s.token);
    state.me = await api('GET', '/api/v1/users/me');
    $('#password').value = '';
    showApp();
  } catch (e) {
    showLoginError(e);
  } finally {
    submit.disabled = false;
  }
}

const waitText = (s) => (s ? (s < 120 ? `${Math.ceil(s)} s` : `${Math.ceil(s / 60)} min`) : 'a minute');

// What a failed login tells a person; the code stays in data-code (and is shown
// only under a sentence that had to be guessed from the status).
const LOGIN_SENTENCES = {
  INVALID_CREDENTIALS: () => 'Wrong email or password.',
  LOGIN_THROTTLED: (e) => `Too many attempts; try again in ${waitText(e.retryAfter)}.`,
  RATE_LIMITED: (e) => `Too many attempts; try again in ${waitText(e.retryAfter)}.`,
  USER_DISABLED: () => 'This account is disabled; ask an admin to enable it.',
  LOGIN_BUSY: () => 'Too many people are logging in at once; try again in a few seconds.',
  VALIDATION_FAILED: () => 'Enter an email address and a password.',
  UNREACHABLE: () => "The server can't be reached.",
};

function loginSentence(e) {
  const known = LOGIN_SENTENCES[e.code];
  if (known) return [known(e), ''];
  const guess = e.status >= 500 ? 'The server ran into a problem; try again in a moment.' : 'Logging in did not work; try again.';
  return [guess, e.code ? `Error code: ${e.code}` : e.message];
}

function showLoginError(e) {
  const [sentence, detail] = e ? loginSentence(e) : ['', ''];
  $('#login-error').textContent = sentence;
  $('#login-error').dataset.code = e?.code || '';
  $('#login-error-detail').textContent = detail;
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

// On a phone the nav scrolls sideways inside itself: its faded edges say there
// is more that way, and the current view's link is scrolled into sight.
function navEdges() {
  const nav = $('#nav');
  const rest = nav.scrollWidth - nav.clientWidth - nav.scrollLeft;
  nav.classList.toggle('more-left', nav.scrollLeft > 1);
  nav.classList.toggle('more-right', rest > 1);
}

function showCurrentLink() {
  const nav = $('#nav');
  const a = $('#nav a[aria-current="page"]');
  if (a && nav.scrollWidth > nav.clientWidth) {
    const r = a.getBoundingClientRect();
    const n = nav.getBoundingClientRect();
    if (r.left < n.left) nav.scrollLeft += r.left - n.left - 32;
    else if (r.right > n.right) nav.scrollLeft += r.right - n.right + 32;
  }
  navEdges();
}

function showApp() {
  $('#login').hidden = true;
  $('#nav').hidden = false;
  $('#who').hidden = false;
  $('#who-name .who-email').textContent = state.me.name;
  $('#who-name .who-role').textContent = `(${state.me.role})`;
  $('#who-name').title = `Logged in as ${state.me.name} (${state.me.role})`;
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
  showCurrentLink();
  const views = { console: consoleView, releases: releasesView, deployments: deploymentsView, audit: auditView, workers: workersView };
  closeStream();
  state.nav += 1;
  (views[view] || consoleView)(state.nav).catch((e) => toast(e));
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
      ${legend()}
      <div class="charts">${Object.keys(CHARTS).map(chartBox).join('')}</div>
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

function chartBox(id) {
  const { title } = CHARTS[id];
  return `<figure class="chart" aria-labelledby="t-${id}"><figcaption id="t-${id}"><h3>${title}</h3><span class="now" id="now-${id}"></span></figcaption><svg id="c-${id}" viewBox="0 0 300 ${CHART_H}" role="img" aria-label="${title}, stable and canary" aria-describedby="d-${id}"></svg><span class="visually-hidden" id="d-${id}"></span></figure>`;
}

const key = (inner) => `<svg class="key" viewBox="0 0 26 12" aria-hidden="true">${inner}</svg>`;

function legend() {
  return `<p class="legend">
    <span>${key('<line class="line-stable" x1="1" y1="6" x2="25" y2="6"/>')}stable</span>
    <span>${key('<line class="line-canary" x1="1" y1="6" x2="25" y2="6"/>')}canary</span>
    <span>${key('<line class="line-mirror" x1="1" y1="6" x2="25" y2="6"/>')}canary on mirrored copies of stable's requests</span>
    <span>${key(`<path class="clip-stable" d="${triangle(7, 2, 1)}"/><path class="clip-canary" d="${triangle(19, 2, 1)}"/>`)}off the scale (point at it for the value)</span>
    <span class="reason">up to the last 5 minutes, per second, from the proxy; each chart is scaled to 1.25 × its lanes' 95th percentile</span>
  </p>`;
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
const LEVEL_MARK = { SAFE: '✓', RED: '✕', WATCH: '!', WAIT: '…' };

// Judges' names as the API gives them (`safety:Total Latency`, `health:api`,
// `threshold`) and as people read them.
const JUDGE_NAMES = { threshold: 'Rollback thresholds', sequential: 'Compared with stable' };
const JUDGE_KINDS = { safety: '', health: 'health check', policy: 'policy' };

/** The operator's own name as written; a bare `p95-latency` becomes "P95 latency". */
function readable(name) {
  const s = String(name ?? '').trim();
  if (/[A-Z\s]/.test(s)) return s;
  const spaced = s.replace(/[_-]+/g, ' ');
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

/** [name, kind] for a check's raw name. */
function checkName(raw) {
  const text = String(raw ?? '');
  const i = text.indexOf(':');
  const kind = i > 0 ? text.slice(0, i) : '';
  if (Object.hasOwn(JUDGE_KINDS, kind)) return [readable(text.slice(i + 1)), JUDGE_KINDS[kind]];
  return [Object.hasOwn(JUDGE_NAMES, text) ? JUDGE_NAMES[text] : readable(text), ''];
}

function safetyRow([raw, now, level]) {
  const [name, kind] = checkName(raw);
  return `<tr><td title="${esc(raw)}">${esc(name)}${kind ? ` <span class="reason">(${esc(kind)})</span>` : ''}</td><td>${esc(now)}</td><td class="state"><span class="badge ${level}">${LEVEL_MARK[level]} ${level}</span></td></tr>`;
}

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
  $('#safety').innerHTML = rows.map(safetyRow).join('') || '<tr><td colspan="3">No checks yet.</td></tr>';
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
  const by = { stable: [], canary: [], mirror: [] };
  for (const p of state.points.values()) if (p.second >= from && by[p.lane]) by[p.lane].push(p);
  for (const l of Object.keys(by)) by[l].sort((a, b) => a.second - b.second);
  return { from, to: now, by };
}

// Each chart's figure from a lane's point, its unit, and the scale it may not
// be squeezed below (`least`). The success rate hangs from 100 %: its dips are the news.
const CHARTS = {
  rps: { title: 'Request rate (req/s)', unit: '/s', digits: 0, least: 1, value: (p) => p.requests },
  err: { title: 'Error rate (%)', unit: '%', digits: 1, least: 1, most: 100, value: (p) => (p.requests ? (100 * p.errors) / p.requests : null) },
  ok: { title: 'Success rate (%)', unit: '%', digits: 1, least: 1, down: true, value: (p) => (p.requests ? 100 - (100 * p.errors) / p.requests : null) },
  p50: { title: 'p50 latency (ms)', unit: ' ms', digits: 1, least: 1, value: (p) => p.p50_ms },
  p95: { title: 'p95 latency (ms)', unit: ' ms', digits: 1, least: 1, value: (p) => p.p95_ms },
};
const CHART_H = 160;
const PAD = { top: 12, right: 10, bottom: 24 };
const HEADROOM = 1.25;

/** The q-quantile (0–1) of sorted numbers. */
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];

/** Round ticks covering lo..hi, about `count` steps of 1, 2, 2.5 or 5 × 10^n. */
function niceTicks(lo, hi, count = 4) {
  const raw = (hi - lo) / count || 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((x) => x >= raw - 1e-12);
  const from = Math.floor(lo / step + 1e-9) * step;
  const to = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let v = from; v <= to + step / 2; v += step) ticks.push(Number(v.toFixed(9)));
  let digits = 0;
  while (digits < 4 && Math.abs(step * 10 ** digits - Math.round(step * 10 ** digits)) > 1e-6) digits += 1;
  return { lo: from, hi: to, ticks, digits };
}

/**
 * The y scale of a chart: up to 1.25 × the higher of the lanes' 95th
 * percentiles, so that one spike can't flatten the rest (points above are
 * clipped and marked), but never past the highest point when all fit.
 */
function yScale(c, lanes) {
  const sorted = lanes.map((l) => l.filter((v) => v != null).sort((a, b) => a - b)).filter((l) => l.length);
  if (c.down) {
    const low = sorted.length ? Math.max(Math.min(...sorted.map((l) => l[0])), 100 - (100 - Math.min(...sorted.map((l) => quantile(l, 0.05)))) * HEADROOM) : 100;
    return niceTicks(Math.max(0, Math.min(low, 100 - c.least)), 100);
  }
  const high = sorted.length ? Math.min(Math.max(...sorted.map((l) => l[l.length - 1])), Math.max(...sorted.map((l) => quantile(l, 0.95))) * HEADROOM) : 0;
  return niceTicks(0, Math.min(c.most ?? Infinity, Math.max(high, c.least)));
}

/** A tick's text with the chart's unit; 12000 ms as "12k ms". */
function tickText(v, digits, unit) {
  if (Math.abs(v) >= 10000) return `${Number((v / 1000).toFixed(1))}k${unit}`;
  return `${v.toFixed(digits)}${unit}`;
}

/** Time ticks back from `to` ("now"), as many as fit in `width` px. */
function timeTicks(from, to, width) {
  const span = to - from;
  const most = Math.max(2, Math.floor(width / 56));
  const step = [10, 15, 30, 60, 120, 300].find((x) => span / x <= most) || 300;
  const ticks = [];
  for (let ago = 0; to - ago >= from; ago += step) ticks.push([to - ago, ago === 0 ? 'now' : (ago % 60 ? `−${ago}s` : `−${ago / 60}m`)]);
  return ticks;
}

/** A small triangle with its tip at (x, y), pointing up (dir 1) or down (dir −1). */
const triangle = (x, y, dir) => `M${x.toFixed(1)},${y}l-4.5,${8 * dir}h9z`;

/** An SVG path through [second, value] points, lifting the pen where there is no value. */
function linePath(pts, x, y) {
  const runs = [[]];
  for (const [s, v] of pts) {
    if (v == null) runs.push([]);
    else runs[runs.length - 1].push(`${x(s).toFixed(1)},${y(v).toFixed(1)}`);
  }
  return runs.filter((r) => r.length).map((r) => `M${r.join('L')}${r.length === 1 ? 'h0' : ''}`).join('');
}

const clock = (s) => new Date(s * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

// The lanes a chart draws: the mirror is the canary's answers to copies of
// stable's requests (a rollout's mirror step), drawn only when there are any.
const LANES = ['stable', 'canary', 'mirror'];

function drawChart(id, c, lines, from, to) {
  const svg = $(`#c-${id}`);
  const w = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 300);
  const h = CHART_H;
  const scale = yScale(c, LANES.map((l) => lines[l].map((p) => p[1])));
  const labels = scale.ticks.map((v) => tickText(v, scale.digits, c.unit));
  const left = 10 + 6.4 * Math.max(...labels.map((l) => l.length));
  const [top, right, bottom] = [PAD.top, w - PAD.right, h - PAD.bottom];
  const x = (s) => left + ((s - from) / (to - from || 1)) * (right - left);
  const clamp = (v) => Math.min(scale.hi, Math.max(scale.lo, v));
  const y = (v) => bottom - ((clamp(v) - scale.lo) / (scale.hi - scale.lo || 1)) * (bottom - top);
  const parts = [];
  scale.ticks.forEach((v, i) => {
    parts.push(`<line class="gridline" x1="${left}" x2="${right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text class="ytick" x="${left - 5}" y="${y(v).toFixed(1)}" dy="0.32em" text-anchor="end">${labels[i]}</text>`);
  });
  for (const [s, label] of timeTicks(from, to, right - left)) {
    const at = x(s);
    const anchor = label === 'now' ? 'end' : (at - left < 16 ? 'start' : 'middle');
    parts.push(`<line class="axis" x1="${at.toFixed(1)}" x2="${at.toFixed(1)}" y1="${bottom}" y2="${bottom + 4}"/><text class="xtick" x="${at.toFixed(1)}" y="${h - 5}" text-anchor="${anchor}">${label}</text>`);
  }
  parts.push(`<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${bottom}"/><line class="axis" x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}"/>`);
  const off = [];
  for (const lane of LANES) {
    parts.push(`<path class="line line-${lane}" d="${linePath(lines[lane], x, y)}"/>`);
    for (const [s, v] of lines[lane]) {
      if (v == null || (v <= scale.hi && v >= scale.lo)) continue;
      const up = v > scale.hi;
      off.push([lane, v]);
      const tip = up ? top - 10 : bottom + 8;
      const said = `${lane}: ${fmt(v, c.digits)}${c.unit} at ${clock(s)}, ${up ? 'above' : 'below'} the scale`;
      parts.push(`<g class="clip"><title>${esc(said)}</title><rect x="${(x(s) - 6).toFixed(1)}" y="${up ? tip - 2 : bottom}" width="12" height="12" fill="transparent"/><path class="clip-${lane}" d="${triangle(x(s), tip, up ? 1 : -1)}"/></g>`);
    }
  }
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.innerHTML = parts.join('');
  const worst = off.sort((a, b) => (c.down ? a[1] - b[1] : b[1] - a[1]))[0];
  const minutes = Math.max(1, Math.round((to - from) / 60));
  $(`#d-${id}`).textContent = `Scale ${labels[0]} to ${labels[labels.length - 1]}, the last ${minutes} minute${minutes > 1 ? 's' : ''} up to now.`
    + (worst ? ` ${off.length} point${off.length > 1 ? 's' : ''} off the scale, the furthest ${fmt(worst[1], c.digits)}${c.unit} (${worst[0]}).` : '');
}

function renderCharts() {
  if (!$('#c-rps')) return;
  const { from, to, by } = series();
  for (const [id, c] of Object.entries(CHARTS)) {
    const lines = Object.fromEntries(LANES.map((l) => [l, by[l].map((p) => [p.second, c.value(p)])]));
    drawChart(id, c, lines, from, to);
    const last = (l) => { const v = lines[l].filter((p) => p[1] != null).slice(-1)[0]; return v ? v[1] : null; };
    $(`#now-${id}`).textContent = `stable ${fmt(last('stable'), c.digits, c.unit)} · canary ${fmt(last('canary'), c.digits, c.unit)}`
      + (by.mirror.length ? ` · mirror ${fmt(last('mirror'), c.digits, c.unit)}` : '');
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
    toast(e);
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
    toast(e);
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
    toast(e);
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
    toast(e);
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
