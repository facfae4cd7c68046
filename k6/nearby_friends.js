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
// the server allows 1/s per connection by default).
import { WebSocket } from 'k6/experimental/websockets';
import { setInterval, setTimeout, clearInterval } from 'k6/timers';
import { SharedArray } from 'k6/data';
import { Counter, Rate, Trend } from 'k6/metrics';

const WS_URL = (__ENV.WS_URL || 'ws://127.0.0.1:8080').replace(/\/$/, '');
const VUS = Number(__ENV.VUS || 20);
const CIRCLE = Number(__ENV.CIRCLE || 5);
const DURATION = __ENV.DURATION || '20s';
const INTERVAL_MS = Number(__ENV.INTERVAL || 2) * 1000;

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

function toLatLng(east, north) {
  return [
    PARIS[0] + north / M_PER_DEG,
    PARIS[1] + east / (M_PER_DEG * Math.cos((PARIS[0] * Math.PI) / 180)),
  ];
}

export default function () {
  const user = ((__VU - 1) % tokens.length) + 1;
  const circle = Math.floor((user - 1) / CIRCLE);
  const centreRandom = mulberry32(1000 + circle);
  const centre = [(centreRandom() - 0.5) * 50000, (centreRandom() - 0.5) * 50000];
  const random = mulberry32(user * 7919 + __ITER);
  const r = SPREAD_M * Math.sqrt(random());
  const a = random() * 2 * Math.PI;
  let offset = [r * Math.cos(a), r * Math.sin(a)];
  // Per friend, the timestamp of the last push seen: a gap of k intervals is k - 1 missed.
  const lastSeen = {};
  let snapshotAt = 0;
  let ticker = null;
  let closing = false;

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
      const dx = (random() * 2 - 1) * STEP_M;
      const dy = (random() * 2 - 1) * STEP_M;
      const next = [offset[0] + dx, offset[1] + dy];
      // Turn back towards the centre rather than leave the circle's disc.
      offset = Math.hypot(next[0], next[1]) <= SPREAD_M
        ? next
        : [offset[0] - Math.abs(dx) * Math.sign(offset[0]), offset[1] - Math.abs(dy) * Math.sign(offset[1])];
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
        break;
      case 'friend_location': {
        const friend = message.user_id;
        if (Math.floor((friend - 1) / CIRCLE) !== circle) {
          strangers.add(1);
          return;
        }
        pushes.add(1);
        pushLatency.add(now - message.timestamp);
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
