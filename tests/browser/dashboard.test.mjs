// The dashboard in a real browser: Debian's Chromium (/usr/bin/chromium,
// headless, --no-sandbox) driven by playwright-core, against a real `serin up`
// with its proxy and two real upstreams (crates/serin/tests/upstream.py).
//
// An engineer logs in, starts a canary, moves the slider and sees the proxy's
// split change, watches the charts fill from the live stream, and stops the
// canary with the emergency stop through its confirmation; a viewer sees the
// same console with every control disabled and the reason given. The session
// survives a reload. The console is laid out at 1280, 768 and 390 px wide for
// someone with a long email (no sideways scroll, a full-size emergency stop,
// every view reachable from the nav, charts with axes that a spike can't
// flatten, readable safety checks), and a failed login reads as a sentence.
// No page logs an error. Screenshots go to target/screenshots/; with
// SCREENSHOTS=1 the README's docs/img/dashboard.png (1280 px) and
// docs/img/dashboard-phone.png (390 px) are written too. The first load's size
// and time to interactive, and how long a percentage change takes to reach the
// open page, are printed (figures, not pass/fail: they are recorded in
// docs/benchmarks.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.SERIN_BIN || join(ROOT, 'target/debug/serin');
const ADMIN = 'srn_browser_tests_admin_key_0123456789';
const SHOTS = join(ROOT, 'target/screenshots');
const DOCS_SHOTS = process.env.SCREENSHOTS === '1' ? join(ROOT, 'docs/img') : null;
const LONG_EMAIL = 'maximilian.oberhauser-lindqvist@example-company.com';
const children = [];
let api, proxy, browser, stableUrl, canaryUrl, dir;

const freePort = () => new Promise((ok) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
});

function run(cmd, args, ready, env = {}) {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`${cmd} never printed ${ready}`)), 30000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(ready);
      if (m) { clearTimeout(timer); ok(m); }
    });
    child.on('exit', (code) => fail(new Error(`${cmd} exited with ${code}`)));
  });
}

async function call(method, path, body, token = ADMIN) {
  const r = await fetch(api + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Shares of answers from the proxy for `/`: {one: n, two: n}. */
async function split(n = 200) {
  const seen = {};
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => fetch(proxy + '/').then((r) => r.text())));
    for (const t of batch) seen[t.trim()] = (seen[t.trim()] || 0) + 1;
  }
  return seen;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'serin-browser-'));
  mkdirSync(SHOTS, { recursive: true });
  const upstream = join(ROOT, 'crates/serin/tests/upstream.py');
  stableUrl = `http://127.0.0.1:${(await run('python3', [upstream, 'one', '0', '2'], /listening on (\d+)/))[1]}`;
  canaryUrl = `http://127.0.0.1:${(await run('python3', [upstream, 'two', '0', '2'], /listening on (\d+)/))[1]}`;
  const [apiPort, proxyPort] = [await freePort(), await freePort()];
  await run(BIN, ['up', '--listen', `127.0.0.1:${apiPort}`, '--proxy-listen', `127.0.0.1:${proxyPort}`,
    '--database-url', `sqlite://${dir}/serin.db`], /serin: proxy listening on/,
  // The default rate limits stay on: the dashboard must live within a user's allowance.
  { SERIN_ADMIN_TOKEN: ADMIN, SERIN_LOG: 'warn' });
  api = `http://127.0.0.1:${apiPort}`;
  proxy = `http://127.0.0.1:${proxyPort}`;
  for (const [email, role] of [['eng@example.com', 'engineer'], ['viv@example.com', 'viewer'], [LONG_EMAIL, 'engineer']]) {
    const r = await call('POST', '/api/v1/users', { email, name: email.split('@')[0], role, password: 'correct horse' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  for (const c of children) c.kill();
  rmSync(dir, { recursive: true, force: true });
});

/** Retries `check` (a value, or null for "not yet") for up to 10 s. */
async function eventually(check, what) {
  const deadline = Date.now() + 10000;
  for (;;) {
    const got = await check();
    if (got) return got;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

/** A page that keeps what it logged as an error (console.error, uncaught exceptions) in `page.errors`. */
async function newPage(viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()} (${m.location().url})`); });
  page.on('pageerror', (e) => page.errors.push(`page error: ${e.message}`));
  return { context, page };
}

async function loggedIn(email, viewport) {
  const { context, page } = await newPage(viewport);
  page.calls = new Map();
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) {
      const key = `${r.method()} ${u.pathname.replace(/canary_[0-9a-f-]+/, '{id}')}`;
      page.calls.set(key, (page.calls.get(key) || 0) + 1);
    }
  });
  const t0 = Date.now();
  await page.goto(`${api}/admin/canary`);
  await page.locator('#email').waitFor({ state: 'visible' });
  const interactive = Date.now() - t0;
  const bytes = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return performance.getEntriesByType('resource').reduce((n, r) => n + r.transferSize, nav.transferSize);
  });
  await page.fill('#email', email);
  await page.fill('#password', 'correct horse');
  await page.click('#login-form button[type=submit]');
  await page.locator('#nav').waitFor({ state: 'visible' });
  return { context, page, interactive, bytes };
}

test('an engineer starts a canary, moves the split, watches it live and stops it; a viewer cannot act', async () => {
  const { page, interactive, bytes } = await loggedIn('eng@example.com', { width: 1280, height: 900 });
  console.log(`first load: ${bytes} bytes transferred, interactive (login form shown) after ${interactive} ms`);
  assert.match(await page.textContent('#who-name'), /eng@example.com \(engineer\)/);

  // Start a canary from the form (routing under "advanced").
  await page.click('#start-box summary');
  await page.fill('#f-queue', 'web');
  await page.fill('#f-stable', '1.0.0');
  await page.fill('#f-canary', '1.1.0');
  await page.fill('#f-percent', '10');
  await page.click('#start-form details summary');
  await page.fill('#f-stable-url', stableUrl);
  await page.fill('#f-canary-url', canaryUrl);
  await page.fill('#f-prefix', '/');
  await page.click('#start-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#current-status')?.textContent.includes('90% stable / 10% canary'));
  const list = await call('GET', '/api/v1/canary/deployments');
  const id = list.body.deployments[0].id;
  assert.equal(list.body.deployments[0].current_percent, 10);

  // The session survives a reload.
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#current-status')?.textContent.includes('10% canary'));

  // The slider moves the proxy's split.
  await page.locator('#split').fill('50');
  await page.waitForFunction(() => document.querySelector('#current-status')?.textContent.includes('50% canary'));
  assert.equal((await call('GET', `/api/v1/canary/deployments/${id}`)).body.current_percent, 50);
  // The proxy picks the new route up within moments; then about half goes to the canary.
  const seen = await eventually(async () => {
    const s = await split(400);
    return (s.two || 0) / 400 > 0.35 && (s.two || 0) / 400 < 0.65 ? s : null;
  }, 'the proxy to split about 50/50');
  console.log(`proxy answers after the slider moved to 50%: ${JSON.stringify(seen)}`);

  // The charts fill from the stream while traffic flows.
  const load = setInterval(() => { split(20).catch(() => {}); }, 250);
  try {
    await page.waitForFunction(() => /canary \d/.test(document.querySelector('#now-rps')?.textContent || ''), null, { timeout: 20000 });
    const points = await page.evaluate(() => window.serin.points.size);
    await page.waitForFunction((before) => window.serin.points.size > before && document.querySelector('#c-rps .line-canary')?.getAttribute('d').length > 0, points, { timeout: 10000 });
  } finally {
    clearInterval(load);
  }

  // A percentage change made elsewhere reaches the open page.
  const times = [];
  for (const p of [30, 40, 45]) {
    const t0 = Date.now();
    assert.equal((await call('PUT', `/api/v1/canary/deployments/${id}/percentage`, { percentage: p })).status, 200);
    await page.waitForFunction((want) => document.querySelector('#current-status')?.textContent.includes(`${want}% canary`), p, { polling: 'raf' });
    times.push(Date.now() - t0);
  }
  console.log(`percentage change -> open dashboard: ${times.join(', ')} ms (API call included)`);
  await page.screenshot({ path: join(SHOTS, 'dashboard-desktop.png'), fullPage: true });

  // A viewer sees it all and can change nothing, with the reason shown.
  const viewer = await loggedIn('viv@example.com', { width: 390, height: 844 });
  const v = viewer.page;
  await v.waitForFunction(() => document.querySelector('#current-status')?.textContent.includes('45% canary'));
  for (const sel of ['#estop', '[data-act=promote]', '[data-act=rollback]', '#split', '#start-form button[type=submit]']) {
    assert.equal(await v.isDisabled(sel), true, `${sel} is disabled for a viewer`);
  }
  assert.match(await v.textContent('#act-reason'), /Viewers can see everything and change nothing/);
  const box = await v.locator('#estop').boundingBox();
  assert.ok(box.height >= 44 && box.width >= 44, `the emergency stop is touch-sized: ${JSON.stringify(box)}`);
  await v.screenshot({ path: join(SHOTS, 'dashboard-phone-viewer.png'), fullPage: true });
  assert.deepEqual(v.errors, [], 'the viewer\'s page logged no error');
  await viewer.context.close();

  // The emergency stop, through its confirmation.
  await page.click('#estop');
  await page.locator('#confirm').waitFor({ state: 'visible' });
  assert.match(await page.textContent('#confirm-text'), /Every request goes back to 1.0.0/);
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelector('#current-status')?.textContent.startsWith('Rolled back'));
  const stopped = (await call('GET', `/api/v1/canary/deployments/${id}`)).body;
  assert.equal(stopped.status, 'failed');
  assert.match(stopped.status_reason, /emergency stop by eng@example.com/);
  await eventually(async () => ((await split(100)).two || 0) === 0 || null, 'everything on stable after the stop');
  assert.equal(await page.isDisabled('#estop'), true, 'still visible, disabled: nothing live to stop');
  assert.equal(await page.isVisible('#estop'), true);

  // A rollout's workflow: its steps with their state and time left, and the verdict.
  const planned = await call('POST', '/api/v1/canary/deployments', {
    queue_name: 'api', stable_version: '2.0.0', canary_version: '2.1.0',
    rollout: { steps: [{ set_weight: 20 }, { pause: { duration: '10m' } }, { set_weight: 100 }] },
  });
  assert.equal(planned.status, 201, JSON.stringify(planned.body));
  await page.goto(`${api}/#/console`);
  await page.selectOption('#deployment', planned.body.id);
  await page.waitForFunction(() => /running/.test(document.querySelector('#steps')?.textContent || '') && /s left/.test(document.querySelector('#steps').textContent));
  const steps = await page.locator('#steps li').allTextContents();
  assert.match(steps[0], /done.*set_weight|done.*20/i, steps.join(' | '));
  assert.match(steps[2], /pending/, steps.join(' | '));
  assert.equal(await page.isChecked('#auto'), true, 'auto-progression on while active');

  // Every control has a label; the tab order reaches the emergency stop and the slider.
  const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => !el.labels?.length && !el.getAttribute('aria-label')).map((el) => el.id || el.outerHTML));
  assert.deepEqual(unlabeled, []);
  const reached = new Set();
  for (let i = 0; i < 40; i += 1) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => document.activeElement?.id || document.activeElement?.dataset?.act || ''));
  }
  for (const id of ['estop', 'split', 'promote', 'rollback']) assert.ok(reached.has(id), `Tab reaches ${id}: ${[...reached]}`);

  // A tablet width still shows the console.
  await page.setViewportSize({ width: 768, height: 1024 });
  await page.screenshot({ path: join(SHOTS, 'dashboard-tablet.png'), fullPage: true });

  // The release manager's views render.
  for (const [hash, text] of [['#/deployments', 'Deployments'], ['#/audit', 'Audit log'], ['#/workers', 'Workers'], ['#/releases', 'Products and releases']]) {
    await page.goto(`${api}/${hash}`);
    await page.waitForFunction((t) => document.querySelector('#view h2')?.textContent === t, text, { timeout: 10000 })
      .catch(async (e) => assert.fail(`${hash} did not render (${await page.textContent('#toast')}): ${e.message}; API calls: ${JSON.stringify([...page.calls])}`));
  }
  await page.goto(`${api}/#/audit?actor=eng@example.com`);
  await page.waitForFunction(() => document.querySelectorAll('#view tbody tr').length > 0 && document.querySelector('#view tbody').textContent.includes('percentage_updated'));
  await page.click('#logout');
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.deepEqual(page.errors, [], 'the engineer\'s page logged no error');
});

// ---------------------------------------------------------------- layout

const WIDTHS = [[1280, 900], [768, 1024], [390, 844]];

/** What the layout checks read from the page at its current size. */
function measure(page) {
  return page.evaluate(() => {
    const doc = document.documentElement;
    const box = (el) => { const r = el.getBoundingClientRect(); return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height }; };
    const estop = document.querySelector('#estop');
    const e = box(estop);
    const hit = document.elementFromPoint(e.left + e.width / 2, e.top + e.height / 2);
    const nav = document.querySelector('#nav');
    const n = box(nav);
    const before = nav.scrollLeft;
    // Each link, brought into sight the way a person would (scrolling the nav
    // sideways if it has to): inside the nav's box, inside the window, on top.
    const links = [...nav.querySelectorAll('a')].map((a) => {
      a.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      const r = box(a);
      const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      return { text: a.textContent, inNav: r.left >= n.left - 1 && r.right <= n.right + 1, inWindow: r.left >= -1 && r.right <= innerWidth + 1, onTop: a === top || a.contains(top) };
    });
    nav.scrollLeft = before;
    const email = document.querySelector('#who-name');
    return {
      scrollWidth: doc.scrollWidth,
      clientWidth: doc.clientWidth,
      innerWidth,
      estop: { ...e, scrollWidth: estop.scrollWidth, clientWidth: estop.clientWidth, text: estop.textContent, visible: !estop.hidden && getComputedStyle(estop).visibility === 'visible', onTop: hit === estop },
      nav: { scrollable: ['auto', 'scroll'].includes(getComputedStyle(nav).overflowX), overflows: nav.scrollWidth > nav.clientWidth + 1, faded: (getComputedStyle(nav).maskImage || getComputedStyle(nav).webkitMaskImage || 'none') !== 'none', ...n },
      links,
      email: { ...box(email), title: email.title },
      charts: [...document.querySelectorAll('.chart svg')].map((svg) => ({
        id: svg.id,
        label: svg.getAttribute('aria-label'),
        yticks: [...svg.querySelectorAll('text.ytick')].map((t) => t.textContent),
        xticks: [...svg.querySelectorAll('text.xtick')].map((t) => t.textContent),
        dashes: ['.line-stable', '.line-canary'].map((l) => { const el = svg.querySelector(l); return el && getComputedStyle(el).strokeDasharray; }),
      })),
      safety: [...document.querySelectorAll('#safety tr')].map((tr) => tr.cells[0].textContent),
      badges: [...document.querySelectorAll('#safety .badge')].map((b) => ({ text: b.textContent, lines: b.getClientRects().length, height: b.getBoundingClientRect().height })),
    };
  });
}

/** The layout promises at one width. */
function checkLayout(m, width) {
  const at = `at ${width} px`;
  assert.ok(m.scrollWidth <= m.clientWidth, `no sideways scroll ${at}: the page is ${m.scrollWidth} px wide in ${m.clientWidth}`);
  const e = m.estop;
  assert.ok(e.visible && e.onTop, `the emergency stop is shown and nothing covers it ${at}`);
  assert.equal(e.text.trim(), 'Emergency stop');
  assert.ok(e.scrollWidth <= e.clientWidth, `the emergency stop's label fits ${at}: ${e.scrollWidth} > ${e.clientWidth}`);
  assert.ok(e.width >= 100, `the emergency stop is full-size ${at}: ${e.width} px wide`);
  assert.ok(e.height <= 60, `the emergency stop's label is on one line ${at}: ${e.height} px high`);
  assert.ok(e.left >= 0 && e.right <= m.innerWidth, `the emergency stop is inside the window ${at}: ${JSON.stringify(e)}`);
  assert.ok(m.email.right <= m.innerWidth + 1, `the email ends inside the window ${at}: ${JSON.stringify(m.email)}`);
  assert.match(m.email.title, new RegExp(LONG_EMAIL.replace(/[.]/g, '\\.')), 'the whole email is in the tooltip');
  assert.equal(m.links.length, 5);
  for (const l of m.links) assert.ok(l.inNav && l.inWindow && l.onTop, `nav link "${l.text}" can be brought into sight ${at}: ${JSON.stringify(l)}`);
  if (m.nav.overflows) assert.ok(m.nav.scrollable && m.nav.faded, `a nav wider than its box scrolls inside itself, with a faded edge saying so ${at}: ${JSON.stringify(m.nav)}`);
  assert.ok(m.nav.left >= 0 && m.nav.right <= m.innerWidth + 1, `the nav is inside the window ${at}`);
  assert.equal(m.charts.length, 5);
  for (const c of m.charts) {
    assert.match(c.label, /, stable and canary$/, `${c.id} keeps its accessible name`);
    assert.ok(c.yticks.length >= 3, `${c.id} has a y axis with ticks ${at}: ${c.yticks}`);
    assert.ok(c.yticks.every((t) => /^\d/.test(t) && /(ms|%|\/s)$/.test(t)), `${c.id}'s y ticks carry the unit: ${c.yticks}`);
    assert.ok(c.xticks.includes('now') && c.xticks.length >= 2 && c.xticks.every((t) => /^(now|−\d+[sm])$/.test(t)), `${c.id} has a time axis ${at}: ${c.xticks}`);
    assert.ok(c.dashes[0] && c.dashes[1] && c.dashes[0] !== c.dashes[1], `${c.id}: stable and canary differ in more than colour: ${c.dashes}`);
  }
  assert.ok(m.safety.some((t) => t.startsWith('Total Latency')), `the operator's check name is shown: ${m.safety}`);
  assert.ok(m.safety.every((t) => !/^(safety|health|policy):/.test(t)), `no raw check names: ${m.safety}`);
  for (const b of m.badges) assert.ok(b.lines === 1 && b.height < 26, `the badge "${b.text}" is on one line ${at}: ${JSON.stringify(b)}`);
}

test('the console at 1280, 768 and 390 px for someone with a long email', async () => {
  const created = await call('POST', '/api/v1/canary/deployments', {
    queue_name: 'checkout', stable_version: '3.0.0', canary_version: '3.1.0',
    upstreams: { stable: [stableUrl], canary: [canaryUrl] }, route: { path_prefix: '/checkout' },
    rollout: {
      steps: [{ set_weight: 20 }, { analysis: { window: '5m' } }],
      judges: { promote_early: false },
      safety_checks: [
        { name: 'Total Latency', metric: 'p95_latency_ms', threshold: 800, alert_level: 'critical' },
        { name: 'error-budget', metric: 'error_rate', threshold: 5, alert_level: 'warning' },
      ],
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const load = setInterval(() => {
    Promise.all(Array.from({ length: 10 }, () => fetch(`${proxy}/checkout`).then((r) => r.text()))).catch(() => {});
  }, 250);
  const { context, page } = await loggedIn(LONG_EMAIL, { width: WIDTHS[0][0], height: WIDTHS[0][1] });
  try {
    await page.selectOption('#deployment', id);
    await page.waitForFunction(() => /20% canary/.test(document.querySelector('#current-status')?.textContent || ''));
    // The judgement names the safety checks; both lanes draw for a while.
    await page.waitForFunction(() => /Total Latency/.test(document.querySelector('#safety')?.textContent || ''), null, { timeout: 20000 })
      .catch(async () => {
        await page.reload();
        await page.waitForFunction(() => /Total Latency/.test(document.querySelector('#safety')?.textContent || ''), null, { timeout: 20000 });
      });
    await page.waitForFunction(() => [...window.serin.points.values()].filter((p) => p.lane === 'canary').length >= 12, null, { timeout: 30000 });
    // The README's pictures get a full minute of both lanes.
    if (DOCS_SHOTS) await page.waitForFunction(() => [...window.serin.points.values()].filter((p) => p.lane === 'canary').length >= 62, null, { timeout: 120000 });

    for (const [width, height] of WIDTHS) {
      await page.setViewportSize({ width, height });
      // The charts are drawn again for the new width.
      await page.waitForFunction((w) => {
        const svg = document.querySelector('#c-rps');
        return svg && Math.abs(svg.viewBox.baseVal.width - Math.max(200, Math.round(svg.getBoundingClientRect().width))) < 2 && innerWidth === w;
      }, width);
      await page.evaluate(() => window.scrollTo(0, 0));
      checkLayout(await measure(page), width);
      await page.screenshot({ path: join(SHOTS, `layout-${width}.png`), fullPage: true });
      if (DOCS_SHOTS && width === 1280) await page.screenshot({ path: join(DOCS_SHOTS, 'dashboard.png'), fullPage: true });
      if (DOCS_SHOTS && width === 390) await page.screenshot({ path: join(DOCS_SHOTS, 'dashboard-phone.png') });
    }

    // In between and below, down to 320 px: no sideways scroll, and the
    // emergency stop keeps its size and its whole label.
    for (let width = 320; width <= 1400; width += 40) {
      await page.setViewportSize({ width, height: 900 });
      const m = await page.evaluate(() => {
        const e = document.querySelector('#estop');
        return { page: [document.documentElement.scrollWidth, document.documentElement.clientWidth], estop: [e.scrollWidth, e.clientWidth, e.getBoundingClientRect().right, innerWidth] };
      });
      assert.ok(m.page[0] <= m.page[1], `no sideways scroll at ${width} px: ${m.page}`);
      assert.ok(m.estop[0] <= m.estop[1] && m.estop[1] >= 100 && m.estop[2] <= m.estop[3], `the emergency stop fits at ${width} px: ${m.estop}`);
    }
    await page.setViewportSize({ width: 390, height: 844 });

    // At 390 px every view is reached from the nav, and none scrolls sideways.
    for (const [hash, heading] of [['#/releases', 'Products and releases'], ['#/deployments', 'Deployments'], ['#/audit', 'Audit log'], ['#/workers', 'Workers'], ['#/console', 'Live comparison']]) {
      await page.click(`#nav a[href="${hash}"]`);
      await page.waitForFunction((h) => [...document.querySelectorAll('#view h2')].some((e) => e.textContent === h), heading, { timeout: 10000 });
      assert.equal(await page.getAttribute(`#nav a[href="${hash}"]`, 'aria-current'), 'page');
      const wide = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      assert.ok(wide[0] <= wide[1], `${hash} at 390 px: no sideways scroll (${wide})`);
    }

    // One spike doesn't flatten a chart: it is clipped, marked, and its value
    // is in the marker's tooltip. (Drawn from points put in by hand, the stream closed.)
    await page.waitForFunction(() => document.querySelector('#c-p95 .line-stable'));
    const spike = await page.evaluate(() => {
      closeStream();
      const s = window.serin;
      const now = s.serverNow || Math.floor(Date.now() / 1000);
      s.points.clear();
      for (let i = 0; i < 120; i += 1) {
        s.points.set(`${now - i}|stable`, { second: now - i, lane: 'stable', requests: 50, errors: 0, p50_ms: 8 + (i % 3), p95_ms: 10 + 3 * (i % 7) });
        s.points.set(`${now - i}|canary`, { second: now - i, lane: 'canary', requests: 12, errors: 0, p50_ms: 9 + (i % 4), p95_ms: 22 + (i % 5) });
      }
      s.points.get(`${now - 30}|canary`).p95_ms = 5000;
      renderCharts();
      const svg = document.querySelector('#c-p95');
      const ticks = [...svg.querySelectorAll('text.ytick')].map((t) => parseFloat(t.textContent));
      const gridYs = [...svg.querySelectorAll('line.gridline')].map((l) => Number(l.getAttribute('y1')));
      return {
        top: Math.max(...ticks),
        marks: [...svg.querySelectorAll('.clip title')].map((t) => t.textContent),
        stableHeight: svg.querySelector('.line-stable').getBBox().height,
        plotHeight: Math.max(...gridYs) - Math.min(...gridYs),
        described: document.querySelector('#d-p95').textContent,
      };
    });
    assert.ok(spike.top < 100, `the p95 chart is scaled to its ordinary points, not the 5000 ms spike: top tick ${spike.top}`);
    assert.equal(spike.marks.length, 1, `one point off the scale is marked: ${spike.marks}`);
    assert.match(spike.marks[0], /^canary: 5000\.0 ms at .*above the scale$/);
    assert.ok(spike.stableHeight > 0.2 * spike.plotHeight, `the ordinary points keep their shape: ${spike.stableHeight} of ${spike.plotHeight} px`);
    assert.match(spike.described, /1 point off the scale, the furthest 5000\.0 ms \(canary\)/);
    assert.deepEqual(page.errors, [], 'the page logged no error');
  } finally {
    clearInterval(load);
    await context.close();
  }
});

test('a failed login says what happened in a sentence', async () => {
  const { context, page } = await newPage({ width: 390, height: 844 });
  try {
    await page.goto(`${api}/admin/canary`);
    await page.locator('#email').waitFor({ state: 'visible' });
    const wide = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(wide[0] <= wide[1], `the login form at 390 px: no sideways scroll (${wide})`);
    const attempt = async (email, password) => {
      await page.fill('#email', email);
      await page.fill('#password', password);
      await page.evaluate(() => { document.querySelector('#login-error').textContent = ''; });
      await page.click('#login-form button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#login-error').textContent !== '');
      return { text: await page.textContent('#login-error'), code: await page.getAttribute('#login-error', 'data-code') };
    };
    const sentence = (t) => /^[A-Z][^_]*\.$/.test(t) && !/[A-Z]{2,}_[A-Z]/.test(t);

    // A wrong password (an email no one has: its throttle is its own).
    const wrong = await attempt('nobody@example.com', 'not the password');
    assert.equal(wrong.text, 'Wrong email or password.');
    assert.equal(wrong.code, 'INVALID_CREDENTIALS', 'the code stays in data-code');

    // Five wrong in a row make the next ones wait: said with the wait.
    let throttled = null;
    for (let i = 0; i < 12 && !throttled; i += 1) {
      const got = await attempt('nobody@example.com', `guess ${i}`);
      if (/^Too many attempts/.test(got.text)) throttled = got;
      else assert.equal(got.text, 'Wrong email or password.');
    }
    assert.ok(throttled, 'the throttle answered');
    assert.match(throttled.text, /^Too many attempts; try again in \d+ (s|min)\.$/);
    assert.ok(sentence(throttled.text));

    // No server.
    await page.route('**/api/v1/auth/login', (r) => r.abort('connectionrefused'));
    const away = await attempt(LONG_EMAIL, 'correct horse');
    assert.equal(away.text, "The server can't be reached.");
    await page.unroute('**/api/v1/auth/login');
    assert.equal(await page.isEnabled('#login-form button[type=submit]'), true, 'the form can be sent again');

    // An action the server refuses is told by its sentence, not its code
    // (kept in data-code); a rate limit by the wait.
    const told = await page.evaluate(() => {
      const refused = apiError('deployment canary_x is not active (DEPLOYMENT_NOT_ACTIVE)', 400, 'DEPLOYMENT_NOT_ACTIVE');
      refused.said = 'deployment canary_x is not active';
      toast(refused);
      const first = [document.querySelector('#toast').textContent, document.querySelector('#toast').dataset.code];
      toast(apiError('slow down (RATE_LIMITED)', 429, 'RATE_LIMITED', 7));
      return [first, document.querySelector('#toast').textContent];
    });
    assert.deepEqual(told, [['Deployment canary_x is not active.', 'DEPLOYMENT_NOT_ACTIVE'], 'Too many requests for now; try again in 7 s.']);

    // The refused requests are the only errors the page logged.
    assert.deepEqual(page.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await context.close();
  }
});
