// Nearby friends over WebSocket against a running `nearby serve --friends graph.csv`:
// virtual users in circles of friends (VU i is user i; users are grouped in circles of
// CIRCLE consecutive ids, as `friends-bench graph` writes them), each circle around its own
// point of a 50 km box around Paris, every member within 1 km of it (so always within the
// 8 km radius of every friend), each moving a few metres every INTERVAL seconds.
//
//   friends-bench graph --users 20 --circle 5 > graph.csv
//   NEARBY_SECRET=... nearby serve --friends graph.csv &
//   friends-bench tokens --users 20 --secret ... > tokens.json
//   TOKENS=tokens.json VUS=20 CIRCLE=5 k6 run k6/nearby_friends.js
//
// Measures the update-to-push latency (the pushed `friend_location` carries the friend's own
// timestamp, Date.now() at sending: both ends share this machine's clock, so ms resolution)
// and the delivery ratio: every friend sends every INTERVAL seconds, so a gap of k intervals
// between two pushes from the same friend means k - 1 of its updates never arrived.
//
// Options from the environment: WS_URL (default ws://127.0.0.1:8080), TOKENS (JSON array of
// tokens, index i for user i + 1, default tokens.json), VUS (default 20), CIRCLE (default 5,
// as in the graph), DURATION (default 20s), INTERVAL (seconds between updates, default 2;
// the server allows 1/s per connection by default), APPROXIMATE_SHARE (default 0) and
// BASE_URL (default: WS_URL with http for ws).
//
// APPROXIMATE_SHARE=F: the users at which floor(id * F) steps up (a fraction F spread evenly
// over the ids, the same users as `friends-bench run --approximate-share F`) share only
// approximately: setup() sets every user's default precision with PUT /v1/me/sharing
// (approximate for those, exact for the others) before any socket opens. Their friends get
// `"precision":"approximate"` pushes at an H3 cell centre, only when the cell changes, so they
// are counted apart (approximate_pushes) and left out of friend_push_delivered; every push
// and snapshot entry is checked against what its sender shares (precision_violations). Needs
// a writable friend store: `serve` without --redis-url, or with a database.
import { WebSocket } from 'k6/experimental/websockets';
import { setInterval, setTimeout, clearInterval } from 'k6/timers';
import { SharedArray } from 'k6/data';
import { Counter, Rate, Trend } from 'k6/metrics';
import http from 'k6/http';

const WS_URL = (__ENV.WS_URL || 'ws://127.0.0.1:8080').replace(/\/$/, '');
const VUS = Number(__ENV.VUS || 20);
const CIRCLE = Number(__ENV.CIRCLE || 5);
const DURATION = __ENV.DURATION || '20s';
const INTERVAL_MS = Number(__ENV.INTERVAL || 2) * 1000;
const APPROXIMATE_SHARE = Number(__ENV.APPROXIMATE_SHARE || 0);
if (!(APPROXIMATE_SHARE >= 0 && APPROXIMATE_SHARE <= 1)) {
  throw new Error(`APPROXIMATE_SHARE ${__ENV.APPROXIMATE_SHARE}: expected a fraction from 0 to 1`);
}
const BASE_URL = (__ENV.BASE_URL || WS_URL.replace(/^ws/, 'http')).replace(/\/$/, '');

// Read once, shared read-only by every virtual user.
const tokens = new SharedArray('tokens', function () {
  return JSON.parse(open(__ENV.TOKENS || 'tokens.json'));
});

const pushLatency = new Trend('friend_push_ms', true);
const snapshotLatency = new Trend('snapshot_ms', true);
const delivered = new Rate('friend_push_delivered');
const sent = new Counter('locations_sent');
const pushes = new Counter('friend_pushes');
const strangers = new Counter('stranger_pushes');
// Pushes by the precision they announce (friend_pushes counts both).
const exactPushes = new Counter('exact_pushes');
const approximatePushes = new Counter('approximate_pushes');
// Pushes or snapshot entries that break what their sender shares, tagged by `kind`.
const violations = new Counter('precision_violations');
const serverErrors = new Counter('server_errors');
// Our own close answered by a dropped connection instead of a close frame (k6 reports 1006):
// counted apart, as it says nothing about the pushes.
const closeUnanswered = new Counter('close_unanswered');

export const options = {
  scenarios: {
    // One long session per virtual user, as a phone keeps its socket open: no reconnects.
    friends: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(durationMs(DURATION) / 1000) + 30}s`,
    },
  },
  thresholds: {
    friend_push_ms: ['p(95)<50', 'p(99)<200'],
    friend_push_delivered: ['rate>0.99'],
    snapshot_ms: ['p(99)<500'],
    stranger_pushes: ['count==0'],
    precision_violations: ['count==0'],
    server_errors: ['count==0'],
  },
};

function durationMs(text) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!match) throw new Error(`DURATION ${text}: expected e.g. 20s or 2m`);
  const scale = { ms: 1, s: 1000, m: 60000, h: 3600000 }[match[2] || 's'];
  return Number(match[1]) * scale;
}

// A small deterministic generator, so a circle's centre is the same in every VU.
function mulberry32(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PARIS = [48.8566, 2.3522];
const M_PER_DEG = 111320;
const SPREAD_M = 1000;
const STEP_M = 5;
// Two coordinates closer than this (degrees, ~0.1 m) are the same position.
const SAME_POSITION_DEG = 1e-6;

function toLatLng(east, north) {
  return [
    PARIS[0] + north / M_PER_DEG,
    PARIS[1] + east / (M_PER_DEG * Math.cos((PARIS[0] * Math.PI) / 180)),
  ];
}

// Great-circle distance, metres (the server's sphere, near enough for a plausibility bound).
function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b[0] - a[0]) * rad;
  const dLng = (b[1] - a[1]) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
}

// Whether `user` shares only approximately: exactly floor(N * APPROXIMATE_SHARE) of users
// 1..N do, spread evenly over the ids (with 0.5, the even ids), as in friends-bench.
function approximateSharer(user) {
  return APPROXIMATE_SHARE > 0 && Math.floor(user * APPROXIMATE_SHARE) > Math.floor((user - 1) * APPROXIMATE_SHARE);
}

// A user's walk: its first offset from the circle's centre, then one step per update. Every
// VU draws the same numbers for a user, so any VU can replay a friend's positions.
function walk(user) {
  const random = mulberry32(user * 7919);
  const r = SPREAD_M * Math.sqrt(random());
  const a = random() * 2 * Math.PI;
  let offset = [r * Math.cos(a), r * Math.sin(a)];
  return {
    offset: () => offset,
    step: () => {
      const dx = (random() * 2 - 1) * STEP_M;
      const dy = (random() * 2 - 1) * STEP_M;
      const next = [offset[0] + dx, offset[1] + dy];
      // Turn back towards the centre rather than leave the circle's disc.
      offset = Math.hypot(next[0], next[1]) <= SPREAD_M
        ? next
        : [offset[0] - Math.abs(dx) * Math.sign(offset[0]), offset[1] - Math.abs(dy) * Math.sign(offset[1])];
      return offset;
    },
  };
}

// Sets every user's default precision before any socket opens (only with APPROXIMATE_SHARE).
export function setup() {
  if (APPROXIMATE_SHARE <= 0) return;
  const users = Math.min(VUS, tokens.length);
  let approximate = 0;
  for (let first = 1; first <= users; first += 100) {
    const batch = [];
    for (let user = first; user < Math.min(first + 100, users + 1); user++) {
      const precision = approximateSharer(user) ? 'approximate' : 'exact';
      if (precision === 'approximate') approximate++;
      batch.push({
        method: 'PUT',
        url: `${BASE_URL}/v1/me/sharing`,
        body: JSON.stringify({ enabled: true, precision }),
        params: {
          headers: { Authorization: `Bearer ${tokens[user - 1]}`, 'Content-Type': 'application/json' },
          tags: { name: 'PUT /v1/me/sharing' },
        },
      });
    }
    http.batch(batch).forEach((response, i) => {
      const user = first + i;
      const precision = approximateSharer(user) ? 'approximate' : 'exact';
      if (response.status === 409 && String(response.body).includes('read_only')) {
        throw new Error('PUT /v1/me/sharing answers 409 read_only: friendships and sharing are read-only ' +
          'with Redis and no database; APPROXIMATE_SHARE needs `serve` without --redis-url, or a database');
      }
      let answer = null;
      try {
        answer = JSON.parse(response.body);
      } catch (_) {
        // reported below
      }
      if (response.status !== 200 || !answer || answer.precision !== precision) {
        throw new Error(`PUT /v1/me/sharing for user ${user} (${precision}): HTTP ${response.status} ${response.body}`);
      }
    });
  }
  console.log(`sharing precisions set: ${approximate} of ${users} users approximate`);
}

export default function () {
  const user = ((__VU - 1) % tokens.length) + 1;
  const circle = Math.floor((user - 1) / CIRCLE);
  const centreRandom = mulberry32(1000 + circle);
  const centre = [(centreRandom() - 0.5) * 50000, (centreRandom() - 0.5) * 50000];
  const centreLatLng = toLatLng(centre[0], centre[1]);
  const mine = walk(user);
  let offset = mine.offset();
  // Per friend, the timestamp of the last push seen: a gap of k intervals is k - 1 missed.
  const lastSeen = {};
  // Per friend, their walk replayed so far (positions as sent), to check that an approximate
  // push never carries one of them.
  const walks = {};
  const startedAt = Date.now();
  let snapshotAt = 0;
  let ticker = null;
  let closing = false;

  function violation(kind) {
    violations.add(1, { kind });
  }

  // The positions `friend` can have sent by now: one at connecting, one per INTERVAL since.
  function friendPositions(friend) {
    let known = walks[friend];
    if (known === undefined) {
      const w = walk(friend);
      known = walks[friend] = { walk: w, positions: [w.offset()] };
    }
    const upTo = Math.ceil((Date.now() - startedAt) / INTERVAL_MS) + 2;
    while (known.positions.length < upTo) known.positions.push(known.walk.step());
    return known.positions;
  }

  // Checks what a push or snapshot entry shows of `friend` against what `friend` shares;
  // returns whether it announces itself as approximate.
  function checkShown(friend, shown) {
    const sharerApproximate = approximateSharer(friend);
    if (shown.precision === 'exact') {
      if (sharerApproximate) violation('exact from an approximate sharer');
      if (shown.accuracy_m !== undefined) violation('exact with accuracy_m');
      return false;
    }
    if (shown.precision !== 'approximate') {
      violation(shown.precision === undefined ? 'no precision' : 'unknown precision');
      return false;
    }
    if (!sharerApproximate) violation('approximate from an exact sharer');
    const accuracy = shown.accuracy_m;
    const plausible = typeof accuracy === 'number' && accuracy > 0 && accuracy <= 10000;
    if (!plausible) violation('approximate without a plausible accuracy_m');
    if (typeof shown.latitude !== 'number' || typeof shown.longitude !== 'number') {
      violation('approximate without coordinates');
      return true;
    }
    const own = friendPositions(friend).some((o) => {
      const [lat, lng] = toLatLng(centre[0] + o[0], centre[1] + o[1]);
      return Math.abs(lat - shown.latitude) < SAME_POSITION_DEG && Math.abs(lng - shown.longitude) < SAME_POSITION_DEG;
    });
    if (own) violation("approximate carrying the sender's coordinates");
    // The shown cell held the sender once, and the sender never leaves the circle's disc.
    if (plausible && distanceM(centreLatLng, [shown.latitude, shown.longitude]) > accuracy + SPREAD_M + 2 * STEP_M + 50) {
      violation("approximate too far from the sender's circle");
    }
    return true;
  }

  const ws = new WebSocket(`${WS_URL}/v1/ws`, null, {
    headers: { Authorization: `Bearer ${tokens[user - 1]}` },
  });

  function sendLocation() {
    const [lat, lng] = toLatLng(centre[0] + offset[0], centre[1] + offset[1]);
    ws.send(JSON.stringify({ type: 'location', latitude: lat, longitude: lng, timestamp: Date.now() }));
    sent.add(1);
  }

  ws.onopen = () => {
    snapshotAt = Date.now();
    sendLocation();
    ticker = setInterval(() => {
      offset = mine.step();
      sendLocation();
    }, INTERVAL_MS);
    // Stop sending after DURATION, then read the last pushes for a second before leaving.
    setTimeout(() => {
      if (ticker !== null) clearInterval(ticker);
      setTimeout(() => {
        closing = true;
        ws.close();
      }, 1000);
    }, durationMs(DURATION));
  };

  ws.onmessage = (event) => {
    const now = Date.now();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (_) {
      serverErrors.add(1, { code: 'unparsable' });
      return;
    }
    switch (message.type) {
      case 'nearby_friends':
        snapshotLatency.add(now - snapshotAt);
        for (const entry of message.friends || []) {
          if (Math.floor((entry.user_id - 1) / CIRCLE) !== circle) {
            strangers.add(1);
          } else {
            checkShown(entry.user_id, entry);
          }
        }
        break;
      case 'friend_location': {
        const friend = message.user_id;
        if (Math.floor((friend - 1) / CIRCLE) !== circle) {
          strangers.add(1);
          return;
        }
        const approximate = checkShown(friend, message);
        pushes.add(1);
        pushLatency.add(now - message.timestamp, { precision: approximate ? 'approximate' : 'exact' });
        if (approximate) {
          // Pushed only when the sender's cell changes: gaps say nothing about losses.
          approximatePushes.add(1);
          return;
        }
        exactPushes.add(1);
        const previous = lastSeen[friend];
        if (previous !== undefined) {
          const missed = Math.max(Math.round((message.timestamp - previous) / INTERVAL_MS) - 1, 0);
          for (let i = 0; i < missed; i++) delivered.add(false);
          delivered.add(true);
        }
        lastSeen[friend] = message.timestamp;
        break;
      }
      case 'error':
        serverErrors.add(1, { code: String(message.code) });
        break;
      default:
        break;
    }
  };

  ws.onerror = (event) => {
    if (closing) {
      closeUnanswered.add(1);
      return;
    }
    serverErrors.add(1, { code: 'socket' });
    console.error(`user ${user}: ${event.error}`);
  };

  ws.onclose = () => {
    if (ticker !== null) clearInterval(ticker);
  };
}
