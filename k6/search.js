// A realistic search mix against a running `nearby serve`:
// centres drawn from the bundled GeoNames places (where people are), radii 0.5/1/2/5/20 km,
// a quarter of the searches page once or twice, a tenth filter by category.
//
//   BASE_URL=http://127.0.0.1:8080 k6 run k6/search.js
//
// Options from the environment: BASE_URL, RATE (requests/s, default 500), DURATION
// (default 30s), VUS (pre-allocated virtual users, default 50), PLACES (CSV with
// latitude and longitude columns, default data/cities1000.csv).
import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import { Trend, Rate } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const PLACES = __ENV.PLACES || '../data/cities1000.csv';
const RADII = [500, 1000, 2000, 5000, 20000];
const CATEGORIES = (__ENV.CATEGORIES || 'city,town,village').split(',');

// Parsed once, shared read-only by every virtual user.
const centres = new SharedArray('centres', function () {
  const lines = open(PLACES).split('\n');
  const header = lines[0].split(',');
  const lat = header.indexOf('latitude');
  const lng = header.indexOf('longitude');
  const out = [];
  // Names may hold quoted commas: take the numeric columns counted from the end when the
  // row has more fields than the header.
  for (let i = 1; i < lines.length; i += 7) {
    const fields = lines[i].split(',');
    if (fields.length < header.length) continue;
    const shift = fields.length - header.length;
    const la = parseFloat(fields[lat + shift]);
    const ln = parseFloat(fields[lng + shift]);
    if (Number.isFinite(la) && Number.isFinite(ln)) out.push([la, ln]);
  }
  return out;
});

const pageLatency = new Trend('search_page_ms', true);
const ordered = new Rate('results_ordered');

export const options = {
  scenarios: {
    search: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 500),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: Number(__ENV.VUS || 50),
      maxVUs: Number(__ENV.VUS || 50) * 4,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{kind:first}': ['p(95)<10', 'p(99)<25'],
    'http_req_duration{kind:next}': ['p(95)<10', 'p(99)<25'],
    results_ordered: ['rate==1'],
    checks: ['rate>0.999'],
  },
};

function search(query, kind) {
  const res = http.get(`${BASE_URL}/v1/search/nearby?${query}`, { tags: { kind, name: 'search' } });
  pageLatency.add(res.timings.duration);
  const ok = check(res, { 'status 200': (r) => r.status === 200 });
  if (!ok) return null;
  const body = res.json();
  const distances = body.businesses.map((b) => b.distance_m);
  ordered.add(distances.every((d, i) => i === 0 || distances[i - 1] <= d));
  return body;
}

export default function () {
  const [lat, lng] = centres[Math.floor(Math.random() * centres.length)];
  const radius = RADII[Math.floor(Math.random() * RADII.length)];
  let query = `latitude=${lat}&longitude=${lng}&radius=${radius}&limit=20`;
  if (Math.random() < 0.1) {
    query += `&category=${CATEGORIES[Math.floor(Math.random() * CATEGORIES.length)]}`;
  }
  let body = search(query, 'first');
  // A quarter of users scroll: one or two more pages.
  let pages = Math.random() < 0.25 ? 1 + Math.floor(Math.random() * 2) : 0;
  while (body && body.next_cursor && pages > 0) {
    body = search(`${query}&cursor=${encodeURIComponent(body.next_cursor)}`, 'next');
    pages -= 1;
  }
}
