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

// Places elsewhere, for the map's clusters: [id, name, latitude, longitude, category]. Suva and
// Taveuni lie on either side of the antimeridian.
const WORLD_PLACES = [
  ['ny1', 'Manhattan', 40.7831, -73.9712, 'city'],
  ['ny2', 'Brooklyn', 40.6782, -73.9442, 'city'],
  ['ny3', 'Queens', 40.7282, -73.7949, 'city'],
  ['tokyo1', 'Shinjuku', 35.6938, 139.7034, 'city'],
  ['tokyo2', 'Asakusa', 35.7148, 139.7967, 'town'],
  ['syd', 'Sydney', -33.8688, 151.2093, 'city'],
  ['akl', 'Auckland', -36.8485, 174.7633, 'city'],
  ['suva', 'Suva', -18.1416, 178.4419, 'city'],
  ['taveuni', 'Taveuni', -16.85, -179.95, 'village'],
  ['hnl', 'Honolulu', 21.3069, -157.8583, 'city'],
];
// A block of 150 cafés in Berlin (15 columns, 10 rows, about 40 m apart): more than one
// `within` page of 100.
const BERLIN = { lat: 52.52, lng: 13.4, rows: 10, columns: 15 };
const BERLIN_PLACES = [];
for (let r = 0; r < BERLIN.rows; r += 1) {
  for (let c = 0; c < BERLIN.columns; c += 1) {
    const i = r * BERLIN.columns + c;
    BERLIN_PLACES.push([`berlin${i}`, `Café ${i}`, BERLIN.lat + r * 0.0004, BERLIN.lng + c * 0.0006, 'cafe']);
  }
}
const ALL_PLACES = PLACES.length + WORLD_PLACES.length + BERLIN_PLACES.length;

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

// ---------------------------------------------------------------------------------------------
// The map's places layer: clusters zoomed out, places from `within` zoomed in.

const mapData = (page) => page.evaluate(() => ({ ...document.querySelector('#map').dataset }));

/**
 * Waits until the places layer shows `mode` for the current view (the answer drawn is for the
 * box in view) and returns the map's data attributes. `after`: a view box that must have been
 * left first (the map moved); `zoom`: the map's zoom that must be reached.
 */
async function areaSettled(page, mode, { after = null, zoom = null } = {}) {
  await page.waitForFunction(
    ([mode, after, zoom]) => {
      const d = document.querySelector('#map').dataset;
      return (
        d.mode === mode &&
        d.areaState === 'done' &&
        d.areaBbox === d.viewBbox &&
        d.viewBbox !== after &&
        (zoom === null || new RegExp(`#map=${zoom}/`).test(location.hash))
      );
    },
    [mode, after, zoom],
  );
  const data = await mapData(page);
  assert.equal(await page.locator('#area-status.error').count(), 0, 'the places layer reported an error');
  return data;
}

/** A GET of the API, straight to the server: the reference the page is checked against. */
async function getJson(path) {
  const response = await fetch(`${base}${path}`);
  assert.equal(response.status, 200, `GET ${path}: ${response.status}`);
  return response.json();
}

/** The bubbles and single places drawn, with their sizes and whether they are in the map. */
function drawnClusters(page) {
  return page.evaluate(() => {
    const box = document.querySelector('#map').getBoundingClientRect();
    const where = (el) => {
      const r = el.getBoundingClientRect();
      const x = r.left + r.width / 2;
      const y = r.top + r.height / 2;
      return { x, y, size: r.width, inside: x >= box.left && x <= box.right && y >= box.top && y <= box.bottom };
    };
    return {
      bubbles: [...document.querySelectorAll('.cluster-bubble')].map((el) => ({
        count: Number(el.querySelector('.count').dataset.count),
        text: el.textContent,
        ...where(el),
      })),
      singles: [...document.querySelectorAll('.area-marker.cluster-single')].map((el) => ({
        name: el.title,
        ...where(el),
      })),
    };
  });
}

/** Checks the clusters drawn against `/v1/search/clusters` for the page's own box and zoom. */
async function checkClusters(page, data) {
  const category = data.areaCategory ? `&category=${data.areaCategory}` : '';
  const answer = await getJson(`/v1/search/clusters?bbox=${data.areaBbox}&zoom=${data.areaZoom}${category}`);
  const drawn = await drawnClusters(page);
  const sum = drawn.bubbles.reduce((total, b) => total + b.count, 0) + drawn.singles.length;
  assert.equal(Number(data.areaTotal), answer.total, 'the total shown is the API total');
  assert.equal(sum, answer.total, 'the bubbles and single places add up to the total');
  assert.equal(drawn.bubbles.length + drawn.singles.length, answer.clusters.length, 'one symbol per cluster');
  assert.deepEqual(
    drawn.bubbles.map((b) => b.count).sort((a, b) => a - b),
    answer.clusters.filter((c) => c.count > 1).map((c) => c.count).sort((a, b) => a - b),
  );
  assert.deepEqual(
    drawn.singles.map((s) => s.name).sort(),
    answer.clusters.filter((c) => c.count === 1).map((c) => c.business.name).sort(),
  );
  for (const symbol of [...drawn.bubbles, ...drawn.singles]) {
    assert.ok(symbol.inside, `drawn off the map: ${JSON.stringify(symbol)}`);
  }
  // Sized by count: a bigger count is never a smaller bubble.
  const bySize = [...drawn.bubbles].sort((a, b) => a.count - b.count);
  for (let i = 1; i < bySize.length; i += 1) {
    assert.ok(bySize[i].size >= bySize[i - 1].size, `bubble sizes: ${JSON.stringify(bySize)}`);
  }
  return { answer, drawn };
}

const box = (bbox) => {
  const [west, south, east, north] = bbox.split(',').map(Number);
  return { west, south, east, north };
};

step('map clusters at world zoom: across the antimeridian, and the whole world', async () => {
  // Centred on 180°: the view crosses the antimeridian (west > east in the API's box).
  const page = await openPage(`${base}/#map=2/0/180`, 'clusters');
  const data = await areaSettled(page, 'clusters');
  assert.equal(data.areaZoom, '2');
  const { west, east, south, north } = box(data.areaBbox);
  assert.ok(west > east, `a box across 180° has west > east: ${data.areaBbox}`);
  assert.ok(south >= -90 && north <= 90 && west <= 180 && east >= -180, data.areaBbox);
  const { drawn } = await checkClusters(page, data);
  // The Pacific side of the world: New York, Tokyo, Oceania and Honolulu, not Europe.
  assert.equal(Number(data.areaTotal), WORLD_PLACES.length);
  assert.deepEqual(drawn.bubbles.map((b) => b.count).sort(), [2, 3]);
  assert.deepEqual(drawn.singles.map((s) => s.name).sort(), ['Auckland', 'Honolulu', 'Suva', 'Sydney', 'Taveuni']);
  // Taveuni (179.95° W) is drawn just east of Suva (178.44° E), not a world away.
  const at = (name) => drawn.singles.find((s) => s.name === name);
  assert.ok(at('Taveuni').x > at('Suva').x && at('Taveuni').x - at('Suva').x < 20, JSON.stringify(drawn.singles));
  await waitForText(page, '#area-status', /^10 places in view, in 7 clusters\./);
  // A single place is a marker with its popup.
  await page.click('.area-marker.cluster-single[title="Auckland"]');
  await waitForText(page, '.leaflet-popup-content', /^Auckland/);
  await shot(page, 'map-clusters-antimeridian');

  // Zoomed out so far that the screen holds more than one world: the box is the whole world.
  const before = data.viewBbox;
  await page.goto(`${base}/#map=0/0/0`);
  const world = await areaSettled(page, 'clusters', { after: before, zoom: 0 });
  assert.equal(world.areaBbox.split(',').map(Number).filter((_, i) => i % 2 === 0).join(), '-180,180');
  await checkClusters(page, world);
  assert.equal(Number(world.areaTotal), ALL_PLACES);
  await shot(page, 'map-clusters-world');
  await page.close();
});

step('map clusters at two zooms: Europe, then a city; clicking a bubble zooms in', async () => {
  const page = await openPage(`${base}/#map=3/50/20`, 'clusters');
  const europe = await areaSettled(page, 'clusters');
  const { drawn } = await checkClusters(page, europe);
  assert.equal(Number(europe.areaTotal), PLACES.length + BERLIN_PLACES.length);
  // Paris's seven (Foxtrot, 22 km north, falls in the next tile row) and Berlin's block.
  assert.deepEqual(drawn.bubbles.map((b) => b.count).sort((a, b) => a - b), [7, 150]);
  assert.deepEqual(drawn.singles.map((s) => s.name), ['Foxtrot']);
  const [paris, berlin] = [...drawn.bubbles].sort((a, b) => a.count - b.count);
  assert.ok(berlin.size > paris.size, `150 is a bigger bubble than 7: ${berlin.size} vs ${paris.size}`);
  assert.equal(berlin.text, '150');
  await shot(page, 'map-clusters-europe');

  // Only cities: Alpha, Charlie, Golf and Foxtrot (the cafés and towns go).
  await page.fill('#area-category', 'City ');
  await page.press('#area-category', 'Enter');
  await page.waitForFunction(() => document.querySelector('#map').dataset.areaCategory === 'city');
  const cities = await areaSettled(page, 'clusters');
  const onlyCities = await checkClusters(page, cities);
  assert.equal(Number(cities.areaTotal), 4);
  assert.deepEqual(onlyCities.drawn.bubbles.map((b) => b.count), [3]);
  await page.fill('#area-category', '');
  await page.press('#area-category', 'Enter');
  await page.waitForFunction(() => document.querySelector('#map').dataset.areaCategory === '');

  // City zoom over Paris: the seven and Foxtrot apart, all counted.
  await page.goto(`${base}/#map=10/48.95/2.35`);
  const city = await areaSettled(page, 'clusters', { after: europe.viewBbox, zoom: 10 });
  assert.equal(city.areaZoom, '10');
  const atCity = await checkClusters(page, city);
  assert.equal(Number(city.areaTotal), PLACES.length);
  assert.deepEqual(atCity.drawn.bubbles.map((b) => b.count), [7]);
  assert.deepEqual(atCity.drawn.singles.map((s) => s.name), ['Foxtrot']);
  await shot(page, 'map-clusters-city');

  // Clicking the bubble zooms to its tile (zoom 12, as clusters are taken at zoom + 2): the
  // largest zoom showing that 256 px tile whole in this 736 px high map is 13. And the click
  // is the bubble's: it does not fall through to the map (a radius search there).
  await page.click('.cluster-bubble');
  const closer = await areaSettled(page, 'clusters', { after: city.viewBbox });
  assert.equal(closer.areaZoom, '13');
  assert.equal(await page.locator('path.search-circle').count(), 0, 'no radius search');
  const zoomed = await checkClusters(page, closer);
  assert.equal(zoomed.drawn.bubbles.reduce((t, b) => t + b.count, 0) + zoomed.drawn.singles.length, 7);
  assert.match(page.url(), new RegExp(`#map=${closer.areaZoom}/`));
  await page.close();
});

step('zoomed in: places from within, "Search this area", more places', async () => {
  const page = await openPage(`${base}/#map=15/${CENTRE.lat + 0.0035}/${CENTRE.lng}`, 'places');
  const first = await areaSettled(page, 'places');
  assert.equal(await page.locator('.cluster-bubble').count(), 0, 'no bubbles when zoomed in');
  const reference = await getJson(`/v1/search/within?bbox=${first.areaBbox}&limit=100`);
  const names = () => page.locator('#area-results li .name').allTextContents();
  const markers = () => page.locator('.area-marker.area-place').evaluateAll((els) => els.map((e) => e.title).sort());
  const paris = PLACES.filter(([id]) => id !== 'f').map(([, name]) => name);
  assert.deepEqual(await names(), reference.businesses.map((b) => b.name), 'the list is within\'s, in its order');
  assert.deepEqual(await markers(), [...paris].sort());
  assert.equal(await page.isHidden('#search-area'), true, 'no "Search this area" before a move');
  assert.equal(await page.isHidden('#area-more'), true, 'no more places than these');
  // Seven places 111 m apart: every name fits.
  assert.equal(await page.locator('.area-marker.area-place:not(.label-hidden)').count(), 7);
  await waitForText(page, '#area-status', /^7 places in this area\.$/);
  await shot(page, 'map-places');

  // The user drags the map north-up by 300 px (the view moves south): the button appears and
  // the old answer stays until it is pressed.
  const frame = await page.locator('#map').boundingBox();
  // Left of the column of places, so the drag starts on the map, not on a marker or its label.
  const [x, y] = [frame.x + frame.width / 2 - 200, frame.y + frame.height / 2];
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x, y - 300, { steps: 15 });
  await page.waitForTimeout(200); // at rest before release: no inertia, a known move
  await page.mouse.up();
  await page.waitForSelector('#search-area:not([hidden])');
  const moved = await mapData(page);
  assert.notEqual(moved.viewBbox, first.areaBbox);
  assert.ok(box(moved.viewBbox).north < box(first.viewBbox).north, 'the view moved south');
  assert.equal(moved.areaBbox, first.areaBbox, 'nothing searched before the button is pressed');
  assert.equal((await names()).length, 7);
  await shot(page, 'map-search-this-area-button');
  await page.click('#search-area');
  const second = await areaSettled(page, 'places', { after: first.viewBbox });
  assert.equal(second.areaBbox, moved.viewBbox);
  const again = await getJson(`/v1/search/within?bbox=${second.areaBbox}&limit=100`);
  assert.deepEqual(await names(), again.businesses.map((b) => b.name));
  assert.deepEqual(await markers(), again.businesses.map((b) => b.name).sort());
  const count = again.businesses.length;
  assert.ok(count > 0 && count < 7, `the northernmost places left the view: ${count} remain`);
  assert.equal(await page.isHidden('#search-area'), true);
  await shot(page, 'map-search-this-area');
  await page.close();

  // 150 cafés in view: 100 nearest the centre, then the other 50 with "More places".
  const cafes = await openPage(`${base}/#map=16/52.5218/13.4042`, 'places');
  const block = await areaSettled(cafes, 'places');
  const cafeMarkers = () => cafes.locator('.area-marker.area-place').count();
  assert.equal(await cafeMarkers(), 100);
  await cafes.waitForSelector('#area-more:not([hidden])');
  await waitForText(cafes, '#area-status', /^The 100 places nearest the centre of this area; there are more\.$/);
  const page1 = await getJson(`/v1/search/within?bbox=${block.areaBbox}&limit=100`);
  assert.deepEqual(
    await cafes.locator('#area-results li').evaluateAll((els) => els.map((e) => e.dataset.id)),
    page1.businesses.map((b) => b.id),
  );
  await cafes.click('#area-more');
  await cafes.waitForFunction(() => document.querySelectorAll('.area-marker.area-place').length === 150);
  await cafes.waitForSelector('#area-more', { state: 'hidden' });
  const ids = await cafes.locator('#area-results li').evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.deepEqual([...ids].sort(), BERLIN_PLACES.map(([id]) => id).sort());
  await waitForText(cafes, '#area-status', /^150 places in this area\.$/);
  // Names 40 m apart collide at this zoom: some are hidden, and none of those shown overlap.
  const labels = await cafes.locator('.area-marker:not(.label-hidden) .label').evaluateAll((els) =>
    els.map((e) => {
      const r = e.getBoundingClientRect();
      return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
    }),
  );
  assert.ok(labels.length > 5 && labels.length < 150, `${labels.length} labels shown`);
  for (let i = 0; i < labels.length; i += 1) {
    for (let j = i + 1; j < labels.length; j += 1) {
      const [a, b] = [labels[i], labels[j]];
      const overlap = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
      assert.ok(!overlap, `labels ${i} and ${j} overlap`);
    }
  }
  await shot(cafes, 'map-places-more');
  await cafes.close();
});

step('offline at city zoom: a labelled grid, a scale, the country and the places', async () => {
  const page = await openPage(`${base}/#map=13/48.86/2.35`, 'offline-city');
  await page.waitForSelector('body[data-basemap="offline"]');
  const data = await areaSettled(page, 'clusters');
  const view = box(data.viewBbox);
  const values = (axis) =>
    page.locator(`.graticule-${axis} span`).evaluateAll((els, axis) => els.map((e) => Number(e.dataset[axis])), axis);
  const lats = await values('lat');
  const lngs = await values('lng');
  assert.ok(lats.length >= 2 && lngs.length >= 2, `grid labels: ${lats} / ${lngs}`);
  for (const lat of lats) assert.ok(lat >= view.south && lat <= view.north, `${lat} in ${data.viewBbox}`);
  for (const lng of lngs) assert.ok(lng >= view.west && lng <= view.east, `${lng} in ${data.viewBbox}`);
  // Evenly spaced at a round step, labelled in degrees.
  const [latStep] = data.grid.split(',').map(Number);
  for (let i = 1; i < lats.length; i += 1) assert.ok(Math.abs(lats[i] - lats[i - 1] - latStep) < 1e-9);
  assert.match(await page.locator('.graticule-lat span').first().textContent(), /^48\.\d+° N$/);
  assert.match(await page.locator('.graticule-lng span').first().textContent(), /^2\.\d+° E$/);
  assert.ok((await page.locator('path.graticule-line').count()) >= lats.length + lngs.length);
  await waitForText(page, '#basemap-note', /Centre 48\.860° N, 2\.350° E, in France\.$/);
  assert.match(await page.textContent('.leaflet-control-scale-line'), /\d+ (m|km)/);
  // And the places: Paris's seven counted in one bubble.
  assert.deepEqual((await drawnClusters(page)).bubbles.map((b) => b.count), [7]);
  await shot(page, 'map-offline-city');
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
      PLACES.map(([id, name, k, category]) => `${id},${name},${(CENTRE.lat + k * 0.001).toFixed(4)},${CENTRE.lng},${category}\n`).join('') +
      [...WORLD_PLACES, ...BERLIN_PLACES]
        .map(([id, name, lat, lng, category]) => `${id},${name},${lat.toFixed(4)},${lng.toFixed(4)},${category}\n`)
        .join(''),
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
