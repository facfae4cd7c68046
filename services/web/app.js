// The Nearby web console: places search and nearby friends on a Leaflet map.
// Plain ES module, no build step; Leaflet (`L`), topojson-client (`topojson`) and h3-js (`h3`)
// are vendored classic scripts loaded before this one.

const SEND_INTERVAL_MS = 1000; // the gateway allows 1 location/s per connection (bursts of 5)
const REQUESTS_POLL_MS = 5000;
// The H3 resolution of approximate locations: the server sends the centre of the friend's
// resolution-7 cell, and the page draws that cell.
const APPROXIMATE_RESOLUTION = 7;
const TRANSPARENT_PIXEL =
  'data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7';

const $ = (selector) => document.querySelector(selector);

function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

function formatDistance(metres) {
  if (metres < 1000) return `${Math.round(metres)} m`;
  return `${(metres / 1000).toFixed(metres < 10000 ? 2 : 1)} km`;
}

function setStatus(node, text, isError = false) {
  node.textContent = text;
  node.classList.toggle('error', isError);
}

function log(text) {
  const list = $('#log');
  const time = new Date().toLocaleTimeString();
  list.prepend(element('li', { textContent: `${time} ${text}` }));
  while (list.children.length > 50) list.lastChild.remove();
}

/** An API failure: the status and the `{"error":{"code","message","field"?}}` body. */
class ApiFailure extends Error {
  constructor(status, error) {
    super(error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error?.code;
    this.field = error?.field;
  }
}

async function request(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiFailure(response.status, data?.error);
  return data;
}

function describe(err) {
  if (err instanceof ApiFailure) {
    return err.field ? `${err.field}: ${err.message}` : err.message;
  }
  return String(err?.message ?? err);
}

// ---------------------------------------------------------------------------------------------
// The map: configurable tiles over a bundled offline layer of country outlines.

let map;

async function initMap(config) {
  map = L.map('map', { worldCopyJump: true, zoomControl: true }).setView([48.8566, 2.3522], 11);
  map.createPane('countries');
  map.getPane('countries').style.zIndex = 150; // under the tiles (200): shows when they fail

  const osm = /openstreetmap\.org/.test(config.tile_url);
  const tiles = L.tileLayer(config.tile_url, {
    maxZoom: 19,
    errorTileUrl: TRANSPARENT_PIXEL,
    attribution: osm
      ? '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
      : '',
  });
  let loaded = 0;
  let failed = 0;
  const note = L.control({ position: 'bottomleft' });
  note.onAdd = () => element('div', { className: 'basemap-note', id: 'basemap-note', hidden: true });
  note.addTo(map);
  const updateBasemap = () => {
    const offline = failed > 0 && loaded === 0;
    document.body.dataset.basemap = offline ? 'offline' : loaded > 0 ? 'online' : 'loading';
    const box = $('#basemap-note');
    box.hidden = !offline;
    box.textContent = 'Map tiles unavailable: showing the offline country outlines';
  };
  tiles.on('tileload', (event) => {
    if (event.tile.src === TRANSPARENT_PIXEL) return; // the stand-in for a failed tile
    loaded += 1;
    updateBasemap();
  });
  tiles.on('tileerror', () => {
    failed += 1;
    updateBasemap();
  });
  tiles.addTo(map);

  try {
    const topology = await (await fetch('/web/vendor/world-atlas/countries-110m.json')).json();
    const countries = topojson.feature(topology, topology.objects.countries);
    L.geoJSON(countries, {
      pane: 'countries',
      interactive: false,
      attribution: 'Outlines: <a href="https://www.naturalearthdata.com/">Natural Earth</a>',
      style: {
        className: 'country',
        color: '#9a948a',
        weight: 1,
        fillColor: '#f2efe9',
        fillOpacity: 1,
      },
    }).addTo(map);
    document.body.dataset.countries = String(countries.features.length);
  } catch (err) {
    log(`offline base layer unavailable: ${describe(err)}`);
  }

  map.on('click', (event) => {
    const { lat, lng } = event.latlng.wrap();
    if ($('#click-mode').value === 'me' && friends.token) {
      setMe(L.latLng(lat, lng));
    } else {
      $('#search-lat').value = lat.toFixed(5);
      $('#search-lng').value = lng.toFixed(5);
      startSearch();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Places: search within a circle, results as markers and a list, keyset paging.

const search = {
  query: null, // {latitude, longitude, radius, category, limit}
  cursors: [null], // cursors[i] fetches page i
  page: 0,
  layer: null,
  markers: new Map(),
};

const placeIcon = () => new L.Icon.Default({ className: 'place-marker' });

function startSearch() {
  const latitude = Number($('#search-lat').value);
  const longitude = Number($('#search-lng').value);
  const radius = Number($('#search-radius').value);
  search.query = {
    latitude,
    longitude,
    radius,
    category: $('#search-category').value,
    limit: $('#search-limit').value,
  };
  search.cursors = [null];
  search.page = 0;
  showPage(0, true);
}

async function showPage(page, fit = false) {
  const query = search.query;
  if (!query) return;
  const params = new URLSearchParams({
    latitude: query.latitude,
    longitude: query.longitude,
    radius: query.radius,
    limit: query.limit,
  });
  if (query.category) params.set('category', query.category);
  const cursor = search.cursors[page];
  if (cursor) params.set('cursor', cursor);
  setStatus($('#search-status'), 'Searching…');
  let body;
  try {
    body = await request('GET', `/v1/search/nearby?${params}`);
  } catch (err) {
    setStatus($('#search-status'), `Search failed: ${describe(err)}`, true);
    return;
  }
  if (query !== search.query) return; // a newer search started meanwhile
  search.page = page;
  search.cursors[page + 1] = body.next_cursor;
  search.cursors.length = page + 2;
  drawResults(query, body.businesses, fit);
  const first = page * Number(query.limit) + 1;
  const last = first + body.businesses.length - 1;
  setStatus(
    $('#search-status'),
    body.businesses.length
      ? `Results ${first}–${last}${body.next_cursor ? '' : ' (last page)'}`
      : page === 0
        ? 'Nothing within this radius.'
        : 'No more results.',
  );
  $('#page-number').textContent = `page ${page + 1}`;
  $('#prev-page').disabled = page === 0;
  $('#next-page').disabled = !body.next_cursor;
}

function drawResults(query, businesses, fit) {
  if (search.layer) search.layer.remove();
  search.markers.clear();
  const layer = L.layerGroup().addTo(map);
  search.layer = layer;
  const centre = L.latLng(query.latitude, query.longitude);
  const circle = L.circle(centre, {
    radius: query.radius,
    className: 'search-circle',
    color: '#1d3557',
    weight: 2,
    fillOpacity: 0.06,
  }).addTo(layer);
  L.circleMarker(centre, { radius: 4, className: 'search-centre', color: '#1d3557' }).addTo(layer);
  const list = $('#results');
  list.replaceChildren();
  list.start = search.page * Number(query.limit) + 1;
  for (const business of businesses) {
    const popup = element(
      'div',
      {},
      element('strong', { textContent: business.name }),
      element('br'),
      `${business.category ?? 'no category'} · ${formatDistance(business.distance_m)}`,
    );
    const marker = L.marker([business.latitude, business.longitude], {
      icon: placeIcon(),
      title: business.name,
      alt: business.name,
    })
      .bindPopup(popup)
      .addTo(layer);
    search.markers.set(business.id, marker);
    list.append(
      element(
        'li',
        {
          className: 'result',
          dataset: { id: business.id },
          onclick: () => {
            map.panTo(marker.getLatLng());
            marker.openPopup();
          },
        },
        element('span', { className: 'name', textContent: business.name }),
        ' ',
        element('span', { className: 'category', textContent: business.category ?? '' }),
        element('span', { className: 'distance', textContent: formatDistance(business.distance_m) }),
      ),
    );
  }
  if (fit) map.fitBounds(circle.getBounds(), { padding: [20, 20] });
}

function initSearch() {
  $('#search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    startSearch();
  });
  $('#prev-page').addEventListener('click', () => showPage(search.page - 1));
  $('#next-page').addEventListener('click', () => showPage(search.page + 1));
}

// ---------------------------------------------------------------------------------------------
// Nearby friends: sign in, share a position over the WebSocket, see friends move.

const friends = {
  token: null,
  userId: null,
  socket: null,
  retryMs: 1000,
  retryTimer: null,
  me: null, // L.LatLng
  meMarker: null,
  meCircle: null,
  pending: null, // the latest position not yet sent
  lastSentAt: 0,
  sendTimer: null,
  shown: new Map(), // user id -> {view, layer, approximate}: a pin, or a cell when approximate
  sharing: null, // the last GET/PUT /v1/me/sharing answer
  sharingItems: new Map(), // friend's user id -> their sharing control (friendItem)
  pollTimer: null,
  watchId: null,
  radiusM: null,
};

/** The user id a token speaks for, read from its claims (the server checks the signature). */
function tokenUser(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    // Read the digits as text: ids may exceed what a JS number holds exactly.
    return /"sub":(\d+)/.exec(json)?.[1] ?? null;
  } catch {
    return null;
  }
}

async function signIn(token) {
  const status = $('#signin-status');
  const userId = tokenUser(token);
  if (!userId) {
    setStatus(status, 'That is not a Nearby token.', true);
    return;
  }
  let sharing;
  try {
    sharing = await request('GET', '/v1/me/sharing', { token });
  } catch (err) {
    setStatus(status, `Sign-in failed: ${describe(err)}`, true);
    return;
  }
  setStatus(status, '');
  friends.token = token;
  friends.userId = userId;
  sessionStorage.setItem('nearby-token', token);
  $('#me-id').textContent = userId;
  $('#signin').hidden = true;
  $('#session').hidden = false;
  showSharing(sharing);
  log(`signed in as user ${userId}`);
  connect().catch((err) => log(`cannot connect: ${err}`));
  refreshPeople();
  friends.pollTimer = setInterval(() => refreshPeople(), REQUESTS_POLL_MS);
}

function signOut() {
  const socket = friends.socket;
  friends.socket = null;
  if (socket) socket.close(1000, 'signed out');
  clearTimeout(friends.retryTimer);
  clearTimeout(friends.sendTimer);
  clearInterval(friends.pollTimer);
  if (friends.watchId !== null) navigator.geolocation.clearWatch(friends.watchId);
  friends.watchId = null;
  friends.sendTimer = null;
  friends.token = null;
  friends.userId = null;
  friends.pending = null;
  clearShown();
  friends.sharing = null;
  friends.sharingItems.clear();
  $('#friends-list').replaceChildren();
  sessionStorage.removeItem('nearby-token');
  $('#session').hidden = true;
  $('#signin').hidden = false;
  setSocketStatus('offline');
  log('signed out');
}

function setSocketStatus(text) {
  const badge = $('#ws-status');
  badge.textContent = text;
  badge.className = `badge ${text}`;
}

// The node that serves this user's WebSocket: with several gateway nodes each user belongs to
// one of them (GET /v1/gateway); a browser's WebSocket does not follow HTTP redirects.
async function gatewayUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const fallback = `${scheme}://${location.host}/v1/ws`;
  try {
    const response = await fetch('/v1/gateway', {
      headers: { authorization: `Bearer ${friends.token}` },
    });
    if (!response.ok) return fallback;
    const body = await response.json();
    return typeof body.url === 'string' ? body.url : fallback;
  } catch {
    return fallback;
  }
}

// A close that names where to go next: 4001 (another node now serves this user) or 1012
// (this node is draining), with that node's WebSocket URL as the reason.
function movedTo(event) {
  if ((event.code === 4001 || event.code === 1012) && /^wss?:\/\//.test(event.reason)) {
    return event.reason;
  }
  return null;
}

async function connect(target) {
  const token = friends.token;
  const base = target || (await gatewayUrl());
  if (friends.token !== token || !token) return; // signed out meanwhile
  const url = `${base}?token=${encodeURIComponent(token)}`;
  const socket = new WebSocket(url);
  friends.socket = socket;
  setSocketStatus('connecting');
  socket.addEventListener('open', () => {
    if (friends.socket !== socket) return;
    friends.retryMs = 1000;
    setSocketStatus('connected');
    log('connected');
    // A new connection starts with no position: send ours again.
    if (friends.me) queueLocation(friends.me);
  });
  socket.addEventListener('message', (event) => {
    if (friends.socket !== socket) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    onMessage(message);
  });
  socket.addEventListener('close', (event) => {
    if (friends.socket !== socket) return; // signed out, or replaced
    clearShown();
    const next = movedTo(event);
    if (next) {
      // Moved to another node: go there at once.
      setSocketStatus('connecting');
      log(`moving to ${next} (${event.code})`);
      friends.retryTimer = setTimeout(() => {
        if (friends.socket === socket && friends.token) connect(next).catch((err) => log(`cannot connect: ${err}`));
      }, 0);
      return;
    }
    setSocketStatus('closed');
    log(`disconnected (${event.code}${event.reason ? `: ${event.reason}` : ''}); retrying`);
    friends.retryTimer = setTimeout(() => {
      if (friends.socket === socket && friends.token) connect().catch((err) => log(`cannot connect: ${err}`));
    }, friends.retryMs);
    friends.retryMs = Math.min(friends.retryMs * 2, 30000);
  });
}

function onMessage(message) {
  switch (message.type) {
    case 'nearby_friends':
      clearShown();
      for (const view of message.friends) showFriend(view);
      log(`${message.friends.length} friend(s) nearby`);
      break;
    case 'friend_location':
      if (!friends.shown.has(String(message.user_id))) log(`user ${message.user_id} is nearby`);
      showFriend(message);
      break;
    case 'friend_gone':
      hideFriend(String(message.user_id));
      log(`user ${message.user_id} left`);
      break;
    case 'error':
      log(`server refused a message: ${message.code}: ${message.message}`);
      break;
    default:
      break;
  }
  renderShown();
}

/** A friend on the map: a pin, or the H3 cell they are in when they share only approximately. */
function showFriend(view) {
  const id = String(view.user_id);
  const approximate = view.precision === 'approximate';
  const entry = friends.shown.get(id);
  if (entry && entry.approximate === approximate) {
    entry.view = view;
    if (approximate) drawCell(entry.layer, view);
    else entry.layer.setLatLng([view.latitude, view.longitude]);
    return;
  }
  if (entry) entry.layer.remove();
  const layer = approximate ? friendCell(id, view) : friendPin(id, view);
  friends.shown.set(id, { view, layer, approximate });
}

function friendPin(id, view) {
  const digits = id.replace(/\D/g, '');
  return L.marker([view.latitude, view.longitude], {
    icon: L.divIcon({
      className: 'friend-marker',
      html: `<span data-user-id="${digits}">${digits}</span>`,
      iconSize: [24, 24],
    }),
    title: `user ${id}`,
    keyboard: false,
  }).addTo(map);
}

/** The friend's H3 cell, from its centre (all the server sends) and labelled with its size. */
function cellOf(view) {
  const cell = h3.latLngToCell(view.latitude, view.longitude, APPROXIMATE_RESOLUTION);
  // Vertices within 180° of the centre's longitude, so a cell on the antimeridian stays whole.
  const boundary = h3
    .cellToBoundary(cell)
    .map(([lat, lng]) => [lat, lng + 360 * Math.round((view.longitude - lng) / 360)]);
  const label = element('span', {
    textContent: `user ${view.user_id} · approximate ±${Math.round(view.accuracy_m)} m`,
  });
  return { cell, boundary, label };
}

function friendCell(id, view) {
  const { cell, boundary, label } = cellOf(view);
  const polygon = L.polygon(boundary, {
    className: 'friend-area',
    color: '#457b9d',
    weight: 2,
    fillOpacity: 0.15,
  })
    .bindTooltip(label, { permanent: true, direction: 'top', className: 'friend-area-label' })
    .addTo(map);
  Object.assign(polygon.getElement().dataset, { userId: id, cell });
  return polygon;
}

function drawCell(polygon, view) {
  const { cell, boundary, label } = cellOf(view);
  polygon.setLatLngs(boundary).setTooltipContent(label);
  polygon.getElement().dataset.cell = cell;
}

function hideFriend(id) {
  const entry = friends.shown.get(id);
  if (!entry) return;
  entry.layer.remove();
  friends.shown.delete(id);
}

function clearShown() {
  for (const id of [...friends.shown.keys()]) hideFriend(id);
  renderShown();
}

function renderShown() {
  const list = $('#nearby-friends');
  const entries = [...friends.shown.entries()].sort((a, b) => a[1].view.distance_m - b[1].view.distance_m);
  list.replaceChildren(
    ...entries.map(([id, { view, approximate }]) =>
      element(
        'li',
        {
          className: 'friend',
          dataset: { userId: id },
          onclick: () => map.panTo([view.latitude, view.longitude]),
        },
        element('strong', { textContent: `user ${id}` }),
        approximate
          ? element('span', {
              className: 'precision',
              textContent: `approximate ±${formatDistance(view.accuracy_m)}`,
            })
          : '',
        element('span', {
          className: 'when',
          textContent: new Date(view.timestamp).toLocaleTimeString(),
        }),
        element('span', { className: 'distance', textContent: formatDistance(view.distance_m) }),
      ),
    ),
  );
  $('#nearby-empty').hidden = entries.length > 0;
}

/** Moves my pin and (throttled) tells the server. */
function setMe(latlng, { pan = false } = {}) {
  friends.me = latlng;
  if (!friends.meMarker) {
    friends.meMarker = L.marker(latlng, {
      draggable: true,
      autoPan: true,
      icon: L.divIcon({ className: 'me-marker', html: 'me', iconSize: [28, 28] }),
      title: 'me (drag to move)',
      zIndexOffset: 1000,
    }).addTo(map);
    friends.meMarker.on('drag dragend', () => setMe(friends.meMarker.getLatLng()));
  } else if (!friends.meMarker.getLatLng().equals(latlng)) {
    friends.meMarker.setLatLng(latlng);
  }
  if (friends.radiusM) {
    if (!friends.meCircle) {
      friends.meCircle = L.circle(latlng, {
        radius: friends.radiusM,
        className: 'friend-radius',
        color: '#e63946',
        weight: 1,
        dashArray: '4 4',
        fill: false,
        interactive: false,
      }).addTo(map);
    } else {
      friends.meCircle.setLatLng(latlng);
    }
  }
  $('#me-lat').value = latlng.lat.toFixed(5);
  $('#me-lng').value = latlng.lng.toFixed(5);
  if (pan) map.panTo(latlng);
  queueLocation(latlng);
}

/** At most one location per SEND_INTERVAL_MS; the latest position wins. */
function queueLocation(latlng) {
  friends.pending = latlng;
  if (friends.sendTimer) return;
  const wait = Math.max(0, friends.lastSentAt + SEND_INTERVAL_MS - Date.now());
  friends.sendTimer = setTimeout(flushLocation, wait);
}

function flushLocation() {
  friends.sendTimer = null;
  const socket = friends.socket;
  const position = friends.pending;
  if (!position || !socket || socket.readyState !== WebSocket.OPEN) return; // sent on open
  const wrapped = position.wrap();
  socket.send(
    JSON.stringify({ type: 'location', latitude: wrapped.lat, longitude: wrapped.lng }),
  );
  friends.lastSentAt = Date.now();
  friends.pending = null;
  document.body.dataset.sentLocations = String(Number(document.body.dataset.sentLocations ?? 0) + 1);
}

function showSharing(sharing) {
  friends.sharing = sharing;
  $('#sharing').checked = sharing.enabled;
  $('#default-precision').value = sharing.precision ?? 'exact';
  let text = sharing.sharing_now ? 'Friends can see you.' : 'Ghost mode: friends cannot see you.';
  if (sharing.until) text += ` Until ${new Date(sharing.until).toLocaleString()}.`;
  setStatus($('#sharing-status'), text);
}

async function changeSharing() {
  const enabled = $('#sharing').checked;
  const body = { enabled };
  const until = $('#ghost-until').value;
  if (until) body.until = new Date(until).toISOString();
  try {
    const sharing = await request('PUT', '/v1/me/sharing', { token: friends.token, body });
    showSharing(sharing);
    log(sharing.sharing_now ? 'sharing on' : 'ghost mode on');
    // Friends see us again from our next position.
    if (sharing.sharing_now && friends.me) queueLocation(friends.me);
  } catch (err) {
    $('#sharing').checked = !enabled;
    setStatus($('#sharing-status'), `Could not change sharing: ${describe(err)}`, true);
  }
}

/** `PUT /v1/me/sharing` with only the default precision changed (ghost mode and its `until` kept). */
async function changeDefaultPrecision() {
  const select = $('#default-precision');
  const precision = select.value;
  const current = friends.sharing;
  const body = { enabled: current.sharing_now, precision };
  if (current.until && Date.parse(current.until) > Date.now()) body.until = current.until;
  try {
    const sharing = await request('PUT', '/v1/me/sharing', { token: friends.token, body });
    showSharing(sharing);
    log(`friends without a setting of their own now see ${PRECISIONS[precision]}`);
    for (const item of friends.sharingItems.values()) {
      if (item.setting?.source === 'default') showFriendSharing(item, { ...item.setting, precision });
    }
  } catch (err) {
    select.value = current.precision ?? 'exact';
    setStatus($('#sharing-status'), `Could not change the default: ${describe(err)}`, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Per-friend sharing: what one friend sees of me, and for how long.

const PRECISIONS = {
  exact: 'your exact position',
  approximate: 'your approximate area',
  hidden: 'nothing',
};

/** When a per-friend setting chosen now ends; null: it does not. */
const DURATIONS = {
  always: () => null,
  hour: () => new Date(Date.now() + 3_600_000),
  tomorrow: () => {
    const now = new Date();
    return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1); // next local midnight
  },
};

function option(value, text) {
  return element('option', { value, textContent: text });
}

/** A friend in the friends list: their id, Remove, and what they see of me. */
function friendItem(id, remove) {
  const precision = element(
    'select',
    { className: 'sharing-precision' },
    option('default', 'my default'),
    option('exact', 'my exact position'),
    option('approximate', 'my approximate area'),
    option('hidden', 'nothing'),
  );
  const duration = element(
    'select',
    { className: 'sharing-duration', disabled: true },
    option('always', 'always'),
    option('hour', 'for 1 hour'),
    option('tomorrow', 'until tomorrow (midnight)'),
  );
  precision.addEventListener('change', () => {
    duration.disabled = precision.value === 'default';
  });
  const status = element('p', { className: 'sharing-now status' });
  status.setAttribute('role', 'status');
  const item = { id, precision, duration, status, setting: null };
  item.li = element(
    'li',
    { className: 'friend-entry', dataset: { userId: id } },
    element('span', { className: 'name', textContent: `user ${id}` }),
    remove,
    element(
      'form',
      {
        className: 'friend-sharing',
        onsubmit: (event) => {
          event.preventDefault();
          setFriendSharing(item);
        },
      },
      element(
        'fieldset',
        {},
        element('legend', { textContent: `What user ${id} sees of me` }),
        element('label', {}, 'Sees', precision),
        element('label', {}, 'For', duration),
        element('button', { type: 'submit', className: 'sharing-set', textContent: 'Set' }),
      ),
      status,
    ),
  );
  return item;
}

/** Shows a `/v1/me/friends/{id}/sharing` answer: the effective setting, its source, its end. */
function showFriendSharing(item, setting) {
  item.setting = setting;
  item.precision.value = setting.source === 'friend' ? setting.precision : 'default';
  item.duration.disabled = item.precision.value === 'default';
  let text = `Sees ${PRECISIONS[setting.precision] ?? setting.precision}`;
  text += setting.source === 'friend' ? ' (set for this friend)' : ' (your default)';
  if (setting.until) {
    const until = new Date(setting.until).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
    text += `, until ${until}`;
  }
  setStatus(item.status, `${text}.`);
}

async function loadFriendSharing(item) {
  const token = friends.token;
  try {
    const setting = await request('GET', `/v1/me/friends/${item.id}/sharing`, { token });
    if (token === friends.token) showFriendSharing(item, setting);
  } catch (err) {
    if (token === friends.token) setStatus(item.status, `Could not read the setting: ${describe(err)}`, true);
  }
}

async function setFriendSharing(item) {
  const path = `/v1/me/friends/${item.id}/sharing`;
  const precision = item.precision.value;
  try {
    if (precision === 'default') {
      await request('DELETE', path, { token: friends.token });
      log(`user ${item.id} sees what your default shows`);
      await loadFriendSharing(item);
      return;
    }
    const body = { precision };
    const until = DURATIONS[item.duration.value]();
    if (until) body.until = until.toISOString();
    const setting = await request('PUT', path, { token: friends.token, body });
    showFriendSharing(item, { ...setting, source: 'friend' });
    log(`user ${item.id} sees ${PRECISIONS[precision]}`);
  } catch (err) {
    setStatus(item.status, `Could not change it: ${describe(err)}`, true);
  }
}

/**
 * Updates the friends list in place (a poll must not reset a half-made choice or move the
 * keyboard focus): removes ended friendships, adds new friends and reads their setting. The
 * settings are read again when `reload` is set, or when the one shown has ended.
 */
function renderFriendsList(ids, removeButton, reload) {
  const list = $('#friends-list');
  const keep = new Set(ids.map(String));
  for (const [id, item] of friends.sharingItems) {
    if (!keep.has(id)) {
      item.li.remove();
      friends.sharingItems.delete(id);
    }
  }
  let next = list.firstElementChild;
  for (const id of keep) {
    let item = friends.sharingItems.get(id);
    if (!item) {
      item = friendItem(id, removeButton(id));
      friends.sharingItems.set(id, item);
      loadFriendSharing(item);
    } else if (reload || (item.setting?.until && Date.parse(item.setting.until) <= Date.now())) {
      loadFriendSharing(item);
    }
    if (item.li === next) next = next.nextElementSibling;
    else list.insertBefore(item.li, next);
  }
}

function personItem(id, ...buttons) {
  return element('li', { dataset: { userId: String(id) } }, `user ${id}`, ...buttons);
}

function button(label, className, action) {
  return element('button', { type: 'button', className, textContent: label, onclick: action });
}

async function refreshPeople({ reload = false } = {}) {
  const token = friends.token;
  if (!token) return;
  let list;
  let requests;
  try {
    [list, requests] = await Promise.all([
      request('GET', '/v1/me/friends', { token }),
      request('GET', '/v1/me/friend-requests', { token }),
    ]);
  } catch (err) {
    setStatus($('#request-status'), `Could not load friends: ${describe(err)}`, true);
    return;
  }
  if (token !== friends.token) return;
  const act = (method, id, done) => async () => {
    try {
      await request(method, `/v1/me/friends/${id}`, { token: friends.token });
      setStatus($('#request-status'), done);
      log(done);
    } catch (err) {
      setStatus($('#request-status'), describe(err), true);
    }
    refreshPeople();
  };
  $('#incoming').replaceChildren(
    ...requests.incoming.map((id) =>
      personItem(
        id,
        button('Accept', 'accept', act('PUT', id, `now friends with user ${id}`)),
        button('Decline', 'decline', act('DELETE', id, `declined user ${id}`)),
      ),
    ),
  );
  $('#outgoing').replaceChildren(
    ...requests.outgoing.map((id) =>
      personItem(id, button('Cancel', 'cancel', act('DELETE', id, `cancelled the request to user ${id}`))),
    ),
  );
  renderFriendsList(
    list.friends,
    (id) => button('Remove', 'remove', act('DELETE', id, `no longer friends with user ${id}`)),
    reload,
  );
}

async function sendRequest(event) {
  event.preventDefault();
  const id = $('#request-user').value.trim();
  try {
    const body = await request('POST', `/v1/me/friend-requests/${encodeURIComponent(id)}`, {
      token: friends.token,
    });
    const text = body.status === 'friends' ? `now friends with user ${id}` : `asked user ${id}`;
    setStatus($('#request-status'), text);
    log(text);
  } catch (err) {
    setStatus($('#request-status'), `Request failed: ${describe(err)}`, true);
  }
  refreshPeople();
}

function geolocate() {
  if (!navigator.geolocation) {
    log('this browser has no geolocation');
    return;
  }
  if (friends.watchId !== null) {
    navigator.geolocation.clearWatch(friends.watchId);
    friends.watchId = null;
    $('#geolocate').textContent = 'Use browser location';
    return;
  }
  let first = true;
  friends.watchId = navigator.geolocation.watchPosition(
    (position) => {
      setMe(L.latLng(position.coords.latitude, position.coords.longitude), { pan: first });
      first = false;
    },
    (err) => log(`browser location unavailable: ${err.message}`),
    { enableHighAccuracy: true, maximumAge: 5000 },
  );
  $('#geolocate').textContent = 'Stop following my location';
}

function initFriends(config) {
  friends.radiusM = config.friend_radius_m;
  $('#dev-signin').hidden = !config.development;
  $('#signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('#token').value.trim());
  });
  $('#dev-signin').addEventListener('submit', async (event) => {
    event.preventDefault();
    const user = $('#dev-user').value.trim();
    try {
      const body = await request('POST', `/v1/dev/token?user=${encodeURIComponent(user)}`);
      $('#token').value = body.token;
      await signIn(body.token);
    } catch (err) {
      setStatus($('#signin-status'), `Could not mint a token: ${describe(err)}`, true);
    }
  });
  $('#signout').addEventListener('click', signOut);
  $('#geolocate').addEventListener('click', geolocate);
  $('#place-pin').addEventListener('click', () => setMe(map.getCenter().wrap()));
  $('#me-form').addEventListener('submit', (event) => {
    event.preventDefault();
    setMe(L.latLng(Number($('#me-lat').value), Number($('#me-lng').value)), { pan: true });
  });
  $('#sharing').addEventListener('change', changeSharing);
  $('#default-precision').addEventListener('change', changeDefaultPrecision);
  $('#request-form').addEventListener('submit', sendRequest);
  $('#friends-refresh').addEventListener('click', () => refreshPeople({ reload: true }));
  const saved = sessionStorage.getItem('nearby-token');
  if (saved) signIn(saved);
}

async function main() {
  let config = { tile_url: 'https://tile.openstreetmap.org/{z}/{x}/{y}.png', development: false };
  try {
    config = await request('GET', '/web/config.json');
  } catch (err) {
    log(`could not read the server's configuration: ${describe(err)}`);
  }
  await initMap(config);
  initSearch();
  initFriends(config);
  document.body.dataset.ready = 'true';
}

main();
