// End-to-end test of the web console in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core). Starts `nearby serve` itself on free ports with known places and
// friends, and tiles pointing at a closed local port (the offline base layer must show).
//
//   NEARBY_BIN=target/release/nearby node e2e.mjs
//
// Environment: NEARBY_BIN (required), CHROMIUM (default /usr/bin/chromium), ARTIFACTS
// (screenshots; default target/e2e-artifacts under the repository root).

import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const bin = process.env.NEARBY_BIN;
if (!bin) {
  console.error('set NEARBY_BIN to the nearby binary');
  process.exit(2);
}
const artifacts = resolve(process.env.ARTIFACTS ?? join(root, 'target/e2e-artifacts'));
mkdirSync(artifacts, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'nearby-e2e-'));
const SECRET = 'e2e-secret-0123456789abcdef';
const TIMEOUT_MS = 15000;

// Places north of a centre, 0.001° of latitude (about 111 m) apart; Foxtrot is 22 km away.
const CENTRE = { lat: 48.8566, lng: 2.3522 };
const PLACES = [
  ['a', 'Alpha', 1, 'city'],
  ['b', 'Bravo', 2, 'town'],
  ['c', 'Charlie', 3, 'city'],
  ['d', 'Delta', 4, 'town'],
  ['e', 'Echo', 5, 'village'],
  ['g', 'Golf', 6, 'city'],
  ['h', 'Hotel', 7, 'town'],
  ['f', 'Foxtrot', 200, 'city'],
];

function freePort() {
  return new Promise((ok, fail) => {
    const server = net.createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

const servers = [];

/** Starts `nearby serve` and resolves with its base URL once it is ready. */
async function startServer(name, args, env = {}) {
  const environment = { ...process.env, RUST_LOG: 'warn', ...env };
  delete environment.NEARBY_SECRET; // given with --secret when wanted
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', ...args], {
    env: environment,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const base = await new Promise((ok, fail) => {
    let stdout = '';
    const timer = setTimeout(() => fail(new Error(`${name}: no listening line; stderr: ${stderr}`)), TIMEOUT_MS);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /nearby listening on (http:\/\/\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        ok(match[1]);
      }
    });
    child.once('exit', (code) => fail(new Error(`${name} exited with ${code}: ${stderr}`)));
  });
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ready = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
    if (ready) return base;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`${name} at ${base} never became ready`);
}

function token(user) {
  return execFileSync(bin, ['token', '--user', String(user), '--secret', SECRET], {
    env: { ...process.env, RUST_LOG: 'warn' },
  })
    .toString()
    .trim();
}

let browser;
const pages = [];

async function openPage(base, label) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on('pageerror', (err) => console.error(`[${label}] page error: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) {
      console.error(`[${label}] console: ${message.text()}`);
    }
  });
  pages.push({ page, label });
  await page.goto(base);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

async function shot(page, name) {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({ path });
  console.log(`  screenshot ${path}`);
}

async function signIn(page, user) {
  await page.fill('#token', token(user));
  await page.click('#signin-button');
  await page.waitForSelector('#session:not([hidden])');
  assert.equal(await page.textContent('#me-id'), String(user));
  await page.waitForSelector('#ws-status.connected');
}

async function moveTo(page, lat, lng) {
  await page.fill('#me-lat', String(lat));
  await page.fill('#me-lng', String(lng));
  await page.click('#me-set');
}

const friendItem = (id) => `#nearby-friends li.friend[data-user-id="${id}"]`;

async function waitForText(page, selector, pattern) {
  await page.waitForFunction(
    ([selector, source]) => new RegExp(source).test(document.querySelector(selector)?.textContent ?? ''),
    [selector, pattern.source],
  );
}

/** A JSON API call as `user`, straight to the server (to check what the page did). */
async function api(method, path, user) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token(user)}` },
  });
  assert.equal(response.status, 200, `${method} ${path}: ${response.status}`);
  return response.json();
}

async function expectDistance(page, id, text) {
  await page.waitForFunction(
    ([selector, expected]) => document.querySelector(selector)?.textContent.includes(expected),
    [`${friendItem(id)} .distance`, text],
  );
}

const steps = [];
const step = (name, run) => steps.push({ name, run });

let base;
let devBase;

step('the page, its assets and the offline base layer', async () => {
  const page = await openPage(base, 'search');
  const index = await fetch(`${base}/`);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  const missing = await fetch(`${base}/web/missing.js`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, 'not_found');
  // Tiles point at a closed port: they fail, and the country outlines are drawn instead.
  await page.waitForSelector('body[data-basemap="offline"]');
  await page.waitForSelector('#basemap-note:not([hidden])');
  const countries = await page.locator('path.country').count();
  assert.ok(countries > 100, `expected the country outlines, got ${countries} paths`);
  // Not on the development secret: no mint button, and the endpoint is not there.
  assert.equal(await page.isHidden('#dev-signin'), true);
  const dev = await fetch(`${base}/v1/dev/token?user=1`, { method: 'POST' });
  assert.equal(dev.status, 404);
  await page.close();
});

step('a search shows the expected markers, list and pages', async () => {
  const page = await openPage(base, 'search');
  await page.fill('#search-lat', String(CENTRE.lat));
  await page.fill('#search-lng', String(CENTRE.lng));
  await page.fill('#search-radius', '5000');
  await page.selectOption('#search-limit', '5');
  await page.click('#search-button');
  await page.waitForSelector('#results li.result');
  const names = () => page.locator('#results li.result .name').allTextContents();
  const markers = () =>
    page.locator('.leaflet-marker-icon.place-marker').evaluateAll((icons) => icons.map((i) => i.title));
  assert.deepEqual(await names(), ['Alpha', 'Bravo', 'Charlie', 'Delta', 'Echo']);
  assert.deepEqual((await markers()).sort(), ['Alpha', 'Bravo', 'Charlie', 'Delta', 'Echo']);
  assert.deepEqual(await page.locator('#results .distance').allTextContents(), [
    '111 m',
    '222 m',
    '334 m',
    '445 m',
    '556 m',
  ]);
  assert.equal(await page.locator('path.search-circle').count(), 1);
  await shot(page, 'search-page-1');

  await page.click('#next-page');
  await page.waitForFunction(() => document.querySelector('#results .name')?.textContent === 'Golf');
  assert.deepEqual(await names(), ['Golf', 'Hotel']);
  assert.deepEqual((await markers()).sort(), ['Golf', 'Hotel']);
  assert.equal(await page.isDisabled('#next-page'), true);
  await shot(page, 'search-page-2');

  await page.click('#prev-page');
  await page.waitForFunction(() => document.querySelector('#results .name')?.textContent === 'Alpha');

  await page.selectOption('#search-category', 'city');
  await page.click('#search-button');
  await page.waitForFunction(() => document.querySelectorAll('#results li.result').length === 3);
  assert.deepEqual(await names(), ['Alpha', 'Charlie', 'Golf']);
  assert.deepEqual((await markers()).sort(), ['Alpha', 'Charlie', 'Golf']);

  // Clicking the map searches around the clicked point.
  await page.selectOption('#search-category', '');
  const before = await page.inputValue('#search-lat');
  await page.locator('#map').click({ position: { x: 100, y: 100 } });
  await page.waitForFunction((old) => document.querySelector('#search-lat').value !== old, before);
  await page.waitForSelector('#search-status:not(.error)');
  await shot(page, 'search-map-click');
  await page.close();
});

step('two friends see each other move, then leave', async () => {
  const one = await openPage(base, 'user 1');
  const two = await openPage(base, 'user 2');
  await signIn(one, 1);
  await signIn(two, 2);
  await moveTo(one, CENTRE.lat, CENTRE.lng);
  await moveTo(two, CENTRE.lat + 0.01, CENTRE.lng);
  await one.waitForSelector(friendItem(2));
  await two.waitForSelector(friendItem(1));
  await expectDistance(one, 2, '1.11 km');
  await expectDistance(two, 1, '1.11 km');
  assert.equal(await one.locator('.friend-marker [data-user-id="2"]').count(), 1);
  await shot(one, 'friends-user1-sees-user2');
  await shot(two, 'friends-user2-sees-user1');

  // User 2 moves: user 1 sees the new distance.
  await moveTo(two, CENTRE.lat + 0.02, CENTRE.lng);
  await expectDistance(one, 2, '2.22 km');
  await shot(one, 'friends-user2-moved');

  // Ghost mode: user 2 disappears for user 1, and comes back when sharing again.
  await two.uncheck('#sharing');
  await two.waitForFunction(() => /Ghost mode/.test(document.querySelector('#sharing-status').textContent));
  await one.waitForSelector(friendItem(2), { state: 'detached' });
  assert.equal(await one.locator('.friend-marker [data-user-id="2"]').count(), 0);
  await shot(one, 'friends-user2-ghost');
  await two.check('#sharing');
  await one.waitForSelector(friendItem(2));

  // User 2 closes the page: friend_gone.
  await two.context().close();
  await one.waitForSelector(friendItem(2), { state: 'detached' });
  await one.waitForSelector('#nearby-empty:not([hidden])');
  await shot(one, 'friends-user2-gone');
  await one.context().close();
});

step('per-friend sharing: approximate is a cell, hidden is nothing; the default round-trips', async () => {
  const [A, B] = [6, 7]; // friends from the seed file; B controls what A sees of B
  const there = { lat: CENTRE.lat + 0.01, lng: CENTRE.lng }; // B, 1.1 km north of A
  const viewer = await openPage(base, 'user 6');
  const sharer = await openPage(base, 'user 7');
  await signIn(viewer, A);
  await signIn(sharer, B);
  const control = `#friends-list li[data-user-id="${A}"]`;
  const setting = `${control} .sharing-now`;
  const choose = async (precision, duration) => {
    await sharer.selectOption(`${control} select.sharing-precision`, precision);
    if (duration) await sharer.selectOption(`${control} select.sharing-duration`, duration);
    await sharer.click(`${control} button.sharing-set`);
  };
  await waitForText(sharer, setting, /^Sees your exact position \(your default\)\.$/);
  assert.equal(await sharer.isDisabled(`${control} select.sharing-duration`), true);

  await moveTo(viewer, CENTRE.lat, CENTRE.lng);
  await moveTo(sharer, there.lat, there.lng);
  const pin = `.friend-marker [data-user-id="${B}"]`;
  const cell = `path.friend-area[data-user-id="${B}"]`;
  await viewer.waitForSelector(pin);
  assert.equal(await viewer.locator(cell).count(), 0);

  // B lets A see only an approximate area, for an hour.
  await choose('approximate', 'hour');
  await waitForText(sharer, setting, /^Sees your approximate area \(set for this friend\), until .+\.$/);
  const approximate = await api('GET', `/v1/me/friends/${A}/sharing`, B);
  assert.equal(approximate.precision, 'approximate');
  assert.equal(approximate.source, 'friend');
  const left = Date.parse(approximate.until) - Date.now();
  assert.ok(left > 59 * 60e3 && left <= 60 * 60e3, `until ${approximate.until} is not an hour ahead`);

  // A sees B as the H3 cell B is in, not as a pin.
  await viewer.waitForSelector(cell);
  await viewer.waitForSelector(pin, { state: 'detached' });
  assert.equal(await viewer.locator('.friend-marker').count(), 0);
  const shown = await viewer.locator(cell).getAttribute('data-cell');
  const truth = await viewer.evaluate(([lat, lng]) => h3.latLngToCell(lat, lng, 7), [there.lat, there.lng]);
  assert.equal(shown, truth, 'the cell drawn is the one B is in');
  const corners = (await viewer.locator(cell).getAttribute('d')).match(/[ML]/g).length;
  assert.equal(corners, 6, 'a hexagon');
  const label = await viewer.locator('.friend-area-label').textContent();
  assert.match(label, /^user 7 · approximate ±1\d{3} m$/);
  await waitForText(viewer, `${friendItem(B)} .precision`, /^approximate ±1\.\d\d km$/);
  await viewer.click('.leaflet-control-zoom-in');
  await viewer.click('.leaflet-control-zoom-in');
  await shot(viewer, 'sharing-user6-sees-user7-approximate');
  await shot(sharer, 'sharing-user7-sets-approximate');

  // Hidden until tomorrow (the next local midnight): B leaves A's map.
  await choose('hidden', 'tomorrow');
  await waitForText(sharer, setting, /^Sees nothing \(set for this friend\), until .+\.$/);
  await viewer.waitForSelector(cell, { state: 'detached' });
  await viewer.waitForSelector(friendItem(B), { state: 'detached' });
  assert.equal(await viewer.locator(pin).count(), 0);
  const hidden = await api('GET', `/v1/me/friends/${A}/sharing`, B);
  const midnight = await sharer.evaluate(() => {
    const now = new Date();
    return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1).getTime();
  });
  assert.equal(hidden.precision, 'hidden');
  assert.equal(Date.parse(hidden.until), midnight);
  await shot(viewer, 'sharing-user6-user7-hidden');

  // The default precision: approximate; A back on the default follows it and sees B's cell.
  await sharer.selectOption('#default-precision', 'approximate');
  await sharer.waitForFunction(() =>
    /now see your approximate area/.test(document.querySelector('#log').textContent),
  );
  assert.equal((await api('GET', '/v1/me/sharing', B)).precision, 'approximate');
  await choose('default');
  await waitForText(sharer, setting, /^Sees your approximate area \(your default\)\.$/);
  assert.equal((await api('GET', `/v1/me/friends/${A}/sharing`, B)).source, 'default');
  await viewer.waitForSelector(cell);
  assert.equal(await viewer.locator(pin).count(), 0);
  // A reload reads both back.
  await sharer.reload();
  await sharer.waitForSelector('#session:not([hidden])');
  await waitForText(sharer, setting, /^Sees your approximate area \(your default\)\.$/);
  assert.equal(await sharer.inputValue('#default-precision'), 'approximate');
  assert.equal(await sharer.inputValue(`${control} select.sharing-precision`), 'default');
  await shot(sharer, 'sharing-user7-default-approximate');
  // And back to exact.
  await sharer.selectOption('#default-precision', 'exact');
  await waitForText(sharer, setting, /^Sees your exact position \(your default\)\.$/);
  assert.equal((await api('GET', '/v1/me/sharing', B)).precision, 'exact');
  await viewer.context().close();
  await sharer.context().close();
});

step('friend requests from the page', async () => {
  const one = await openPage(base, 'user 1');
  const three = await openPage(base, 'user 3');
  await signIn(one, 1);
  await signIn(three, 3);
  await three.fill('#request-user', '1');
  await three.click('#request-button');
  await three.waitForSelector('#outgoing li[data-user-id="1"]');
  await one.click('#friends-refresh');
  await one.waitForSelector('#incoming li[data-user-id="3"]');
  await shot(one, 'requests-incoming');
  await one.click('#incoming li[data-user-id="3"] button.accept');
  await one.waitForSelector('#friends-list li[data-user-id="3"]');
  await three.click('#friends-refresh');
  await three.waitForSelector('#friends-list li[data-user-id="1"]');
  assert.equal(await three.locator('#outgoing li').count(), 0);
  // And they see each other.
  await moveTo(one, CENTRE.lat, CENTRE.lng);
  await moveTo(three, CENTRE.lat, CENTRE.lng + 0.01);
  await one.waitForSelector(friendItem(3));
  await shot(one, 'requests-accepted');
  await one.context().close();
  await three.context().close();
});

step('on the development secret the page mints tokens', async () => {
  const page = await openPage(devBase, 'dev');
  await page.waitForSelector('#dev-signin:not([hidden])');
  await page.fill('#dev-user', '5');
  await page.click('#dev-token-button');
  await page.waitForSelector('#session:not([hidden])');
  assert.equal(await page.textContent('#me-id'), '5');
  await page.waitForSelector('#ws-status.connected');
  await shot(page, 'dev-signed-in');
  await page.context().close();
});

async function main() {
  const places = join(work, 'places.csv');
  writeFileSync(
    places,
    'id,name,latitude,longitude,category\n' +
      PLACES.map(([id, name, k, category]) => `${id},${name},${(CENTRE.lat + k * 0.001).toFixed(4)},${CENTRE.lng},${category}\n`).join(''),
  );
  const friends = join(work, 'friends.csv');
  writeFileSync(friends, 'user_id,friend_id\n1,2\n6,7\n');
  const deadPort = await freePort(); // nothing listens there: tiles fail at once
  const tileUrl = `http://127.0.0.1:${deadPort}/{z}/{x}/{y}.png`;
  base = await startServer('server', [
    '--places', places, '--friends', friends, '--secret', SECRET, '--tile-url', tileUrl,
  ]);
  // No --secret: the development secret, kept in a throwaway data directory.
  devBase = await startServer('dev server', ['--places', places, '--tile-url', tileUrl], {
    XDG_DATA_HOME: join(work, 'data'),
  });

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // Playwright gives every launch a fresh temporary --user-data-dir of its own.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let failed = 0;
  for (const { name, run } of steps) {
    const started = Date.now();
    try {
      await run();
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (err) {
      failed += 1;
      console.log(`FAIL ${name}\n${err.stack ?? err}`);
      for (const { page, label } of pages) {
        if (!page.isClosed()) {
          await page
            .screenshot({ path: join(artifacts, `failure-${label.replace(/\W+/g, '-')}.png`) })
            .catch(() => {});
          await page.context().close().catch(() => {});
        }
      }
    }
    pages.length = 0;
  }
  console.log(`${steps.length - failed} passed, ${failed} failed; screenshots in ${artifacts}`);
  return failed === 0;
}

let ok = false;
try {
  ok = await main();
} catch (err) {
  console.error(err.stack ?? err);
} finally {
  await browser?.close().catch(() => {});
  for (const child of servers) child.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
