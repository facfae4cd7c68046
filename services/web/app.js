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

async function request(method, path, { token, body, signal } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
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
// The map: configurable tiles over a bundled offline layer (country outlines, a labelled
// latitude/longitude grid, a scale bar and the name of the country at the centre).

let map;

/** Latitudes Web Mercator draws: the map (and its tiles) end there. */
const MERCATOR_MAX_LAT = 85.0511287798;
/** The view when the address names none: Paris, a city-wide view. */
const DEFAULT_VIEW = { centre: [48.8566, 2.3522], zoom: 11 };
const MAX_MAP_ZOOM = 19;

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

/** `lng` moved by whole turns into [-180, 180). */
function wrapLng(lng) {
  return ((((lng + 180) % 360) + 360) % 360) - 180;
}

/**
 * `lng` moved by whole turns to within 180° of `near`. The server answers in [-180, 180], but
 * a map panned across the antimeridian shows another copy of the world: a place must be drawn
 * on the copy in view, not 360° away off screen.
 */
function nearLng(lng, near) {
  return lng + 360 * Math.round((near - lng) / 360);
}

const offline = {
  countries: [], // GeoJSON features of the bundled outlines
  grid: null, // L.layerGroup of the graticule's lines and labels
  tilesLoaded: 0,
  tilesFailed: 0,
};

/** `#map=zoom/lat/lng` in the address: the view to open (links and reloads keep the view). */
function viewFromHash() {
  const match = /^#map=(\d{1,2})\/(-?\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)$/.exec(location.hash);
  if (!match) return null;
  return {
    zoom: clamp(Number(match[1]), 0, MAX_MAP_ZOOM),
    centre: [clamp(Number(match[2]), -MERCATOR_MAX_LAT, MERCATOR_MAX_LAT), Number(match[3])],
  };
}

function writeHash() {
  const zoom = map.getZoom();
  const centre = map.getCenter();
  // Enough decimals to place the centre within about a pixel at this zoom.
  const digits = Math.max(0, Math.ceil(Math.log10(2 ** zoom)));
  const hash = `#map=${zoom}/${centre.lat.toFixed(digits)}/${wrapLng(centre.lng).toFixed(digits)}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
}

async function initMap(config) {
  const view = viewFromHash() ?? DEFAULT_VIEW;
  map = L.map('map', { worldCopyJump: true, zoomControl: true, maxZoom: MAX_MAP_ZOOM }).setView(
    view.centre,
    view.zoom,
  );
  // Panes from the bottom: outlines, the grid, then the tiles (200), which hide both once
  // they load; the places layer (550) sits under the search's pins and friends (600).
  map.createPane('countries').style.zIndex = 150;
  map.createPane('graticule').style.zIndex = 160;
  map.createPane('area').style.zIndex = 550;

  const osm = /openstreetmap\.org/.test(config.tile_url);
  const tiles = L.tileLayer(config.tile_url, {
    maxZoom: MAX_MAP_ZOOM,
    errorTileUrl: TRANSPARENT_PIXEL,
    attribution: osm
      ? '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
      : '',
  });
  const note = L.control({ position: 'bottomleft' });
  note.onAdd = () => element('div', { className: 'basemap-note', id: 'basemap-note', hidden: true });
  note.addTo(map);
  L.control.scale({ position: 'bottomleft' }).addTo(map);
  tiles.on('tileload', (event) => {
    if (event.tile.src === TRANSPARENT_PIXEL) return; // the stand-in for a failed tile
    offline.tilesLoaded += 1;
    updateBasemap();
  });
  tiles.on('tileerror', () => {
    offline.tilesFailed += 1;
    updateBasemap();
  });
  tiles.addTo(map);

  offline.grid = L.layerGroup().addTo(map);
  drawGraticule();
  try {
    const topology = await (await fetch('/web/vendor/world-atlas/countries-110m.json')).json();
    const countries = topojson.feature(topology, topology.objects.countries);
    offline.countries = countries.features;
    const drawn = { ...countries, features: countries.features.map(continuousFeature) };
    // Vector layers are drawn once, on longitudes as given; the map shows a world copy east or
    // west of it as soon as the view nears 180°: the outlines are drawn on those copies too.
    for (const shift of [-360, 0, 360]) {
      L.geoJSON(drawn, {
        pane: 'countries',
        interactive: false,
        attribution: 'Outlines: <a href="https://www.naturalearthdata.com/">Natural Earth</a>',
        coordsToLatLng: ([lng, lat]) => L.latLng(lat, lng + shift),
        style: {
          className: 'country',
          color: '#9a948a',
          weight: 1,
          fillColor: '#f2efe9',
          fillOpacity: 1,
        },
      }).addTo(map);
    }
    document.body.dataset.countries = String(countries.features.length);
  } catch (err) {
    log(`offline base layer unavailable: ${describe(err)}`);
  }
  updateBasemap();

  map.on('moveend', () => {
    writeHash();
    drawGraticule();
    describeCentre();
  });
  window.addEventListener('hashchange', () => {
    const target = viewFromHash();
    if (target) map.setView(target.centre, target.zoom);
  });
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

/**
 * A country whose rings cross the antimeridian (Fiji, Russia) steps from 180° to -180° and
 * back, which a map draws as two lines around the world: such a ring is made continuous (it
 * may then run past ±180°, drawn on the next world copy). A ring around a pole crosses once
 * (Antarctica): it is kept as it is, its seam along the map's edge.
 */
function continuousFeature(feature) {
  const geometry = feature.geometry;
  if (!geometry || (geometry.type !== 'Polygon' && geometry.type !== 'MultiPolygon')) return feature;
  const ring = (points) => {
    let jumps = 0;
    for (let i = 1; i < points.length; i += 1) {
      if (Math.abs(points[i][0] - points[i - 1][0]) > 180) jumps += 1;
    }
    if (jumps === 0 || jumps % 2 === 1) return points;
    let previous = points[0][0];
    return points.map(([lng, lat]) => {
      previous = nearLng(lng, previous);
      return [previous, lat];
    });
  };
  const polygon = (rings) => rings.map(ring);
  const coordinates =
    geometry.type === 'Polygon' ? polygon(geometry.coordinates) : geometry.coordinates.map(polygon);
  return { ...feature, geometry: { ...geometry, coordinates } };
}

function isOffline() {
  return offline.tilesFailed > 0 && offline.tilesLoaded === 0;
}

function updateBasemap() {
  const state = isOffline() ? 'offline' : offline.tilesLoaded > 0 ? 'online' : 'loading';
  document.body.dataset.basemap = state;
  $('#basemap-note').hidden = state !== 'offline';
  describeCentre();
}

/**
 * Without tiles, a city-wide view lies inside one country's outline: a plain colour. The note
 * then says where the centre is (coordinates and the country holding it), the grid gives the
 * latitude/longitude of every line, and the places layer names what is there.
 */
function describeCentre() {
  const box = $('#basemap-note');
  if (box.hidden) return;
  const centre = map.getCenter();
  const lng = wrapLng(centre.lng);
  const country = countryAt(centre.lat, lng);
  const where = `${formatLatitude(centre.lat, 3)}, ${formatLongitude(lng, 3)}`;
  box.textContent =
    `Map tiles unavailable: offline outlines and grid. Centre ${where}` +
    (country ? `, in ${country}.` : '.');
  box.dataset.country = country ?? '';
}

/** The name of the bundled outline holding the point, if any (even-odd rule: holes work). */
function countryAt(lat, lng) {
  for (const feature of offline.countries) {
    const geometry = feature.geometry;
    if (!geometry) continue;
    const polygons =
      geometry.type === 'Polygon'
        ? [geometry.coordinates]
        : geometry.type === 'MultiPolygon'
          ? geometry.coordinates
          : [];
    if (polygons.some((rings) => insideRings(rings, lng, lat))) return feature.properties?.name ?? null;
  }
  return null;
}

function insideRings(rings, x, y) {
  let inside = false;
  for (const ring of rings) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
      const [xi, yi] = ring[i];
      const [xj, yj] = ring[j];
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

function formatLatitude(lat, digits) {
  const text = Math.abs(lat).toFixed(digits);
  if (Number(text) === 0) return `${text}°`;
  return `${text}° ${lat > 0 ? 'N' : 'S'}`;
}

function formatLongitude(lng, digits) {
  const text = Math.abs(lng).toFixed(digits);
  if (Number(text) === 0 || Number(text) === 180) return `${text}°`;
  return `${text}° ${lng > 0 ? 'E' : 'W'}`;
}

// Graticule spacings, degrees: "round" numbers, as on printed maps.
const GRID_STEPS = [
  0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
  45, 90,
];
/** Grid lines at least this far apart on screen: a handful per view, labels that fit. */
const GRID_MIN_PX = 110;
/** Where grid labels may go, px from the map's edges. */
const GRID_LABEL_MARGIN = { top: 90, bottom: 70, left: 80, right: 40 };

function gridStep(degreesPerPixel) {
  const wanted = degreesPerPixel * GRID_MIN_PX;
  return GRID_STEPS.find((step) => step >= wanted) ?? 90;
}

/** The decimals a grid label needs at this spacing (0.05 → 2). */
function gridDigits(step) {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/** Whole multiples of `step` in [low, high], computed from integers so 0.1 + 0.2 never drifts. */
function multiples(low, high, step) {
  const values = [];
  for (let k = Math.ceil(low / step - 1e-9); k <= Math.floor(high / step + 1e-9); k += 1) {
    values.push(Number((k * step).toFixed(gridDigits(step))));
  }
  return values;
}

/**
 * The latitude/longitude grid of the offline base layer: lines a few hundred pixels apart at
 * round values, labelled at the view's left edge (latitudes) and top edge (longitudes). Drawn
 * under the tiles, so it shows only where they do not load; redrawn after each move.
 */
function drawGraticule() {
  const grid = offline.grid;
  grid.clearLayers();
  const size = map.getSize();
  if (!size.x || !size.y) return;
  const bounds = map.getBounds();
  const south = Math.max(bounds.getSouth(), -MERCATOR_MAX_LAT);
  const north = Math.min(bounds.getNorth(), MERCATOR_MAX_LAT);
  const west = bounds.getWest();
  const east = bounds.getEast();
  const latStep = gridStep((north - south) / size.y);
  const lngStep = gridStep((east - west) / size.x);
  // Lines reach half a view past each edge, so panning shows them before the redraw.
  const latPad = (north - south) / 2;
  const lngPad = (east - west) / 2;
  const top = Math.min(north + latPad, MERCATOR_MAX_LAT);
  const bottom = Math.max(south - latPad, -MERCATOR_MAX_LAT);
  const renderer = offline.renderer ?? (offline.renderer = L.svg({ pane: 'graticule' }));
  const line = (points, value) =>
    L.polyline(points, {
      renderer,
      pane: 'graticule',
      interactive: false,
      className: value === 0 ? 'graticule-line graticule-zero' : 'graticule-line',
      color: '#8a94a6',
      weight: value === 0 ? 1.5 : 1,
      dashArray: value === 0 ? null : '4 4',
    }).addTo(grid);
  const label = (latlng, text, axis, value) => {
    const span = element('span', { textContent: text });
    span.dataset[axis] = String(value);
    L.marker(latlng, {
      pane: 'graticule',
      interactive: false,
      keyboard: false,
      icon: L.divIcon({ className: `graticule-label graticule-${axis}`, html: span, iconSize: [0, 0] }),
    }).addTo(grid);
  };
  // Labels stay clear of the corners: the zoom buttons (top left), the scale and the note
  // (bottom left), and each other where the two rows of labels meet.
  const labelled = (point) =>
    point.y >= GRID_LABEL_MARGIN.top &&
    point.y <= size.y - GRID_LABEL_MARGIN.bottom &&
    point.x >= GRID_LABEL_MARGIN.left &&
    point.x <= size.x - GRID_LABEL_MARGIN.right;
  for (const lat of multiples(bottom, top, latStep)) {
    line([[lat, west - lngPad], [lat, east + lngPad]], lat);
    const at = map.latLngToContainerPoint([lat, west]);
    if (labelled({ x: GRID_LABEL_MARGIN.left, y: at.y })) {
      label([lat, west], formatLatitude(lat, gridDigits(latStep)), 'lat', lat);
    }
  }
  for (const lng of multiples(west - lngPad, east + lngPad, lngStep)) {
    line([[bottom, lng], [top, lng]], wrapLng(lng));
    const wrapped = Number(wrapLng(lng).toFixed(gridDigits(lngStep)));
    const at = map.latLngToContainerPoint([north, lng]);
    if (labelled({ x: at.x, y: GRID_LABEL_MARGIN.top })) {
      label([north, lng], formatLongitude(wrapped, gridDigits(lngStep)), 'lng', wrapped);
    }
  }
  map.getContainer().dataset.grid = `${latStep},${lngStep}`;
}

// ---------------------------------------------------------------------------------------------
// The places layer: what the map shows wherever it is. Zoomed out, counted clusters
// (`/v1/search/clusters`), refreshed after every move; zoomed in, the places themselves
// (`/v1/search/within`), 100 at a time nearest the centre, searched again on request
// ("Search this area").

/**
 * Below this zoom the map shows clusters; from it on, places. At zoom 14 a 1280 × 800 view
 * spans about 12 × 8 km at the equator (8 × 5 km at Paris): a neighbourhood, where a person
 * looks for particular places and a page of `within`'s 100 nearest the centre is readable.
 * Further out, a view holds a city or more: hundreds of the bundled GeoNames towns, hundreds of
 * thousands of businesses with 10M loaded, readable only as counts, which `clusters` answers
 * from the index's per-subtree counts without visiting each place. A rule on the zoom rather
 * than on the count in view keeps the switch predictable (the same zoom always shows the same
 * kind of map) and needs no second request per move to decide.
 */
const PLACES_ZOOM = 14;
/** `within`'s largest page. */
const AREA_LIMIT = 100;
/** The server refuses a `clusters` box spanning more tiles than this at zoom + 2. */
const MAX_CLUSTER_TILES = 4096;
const MAX_CLUSTER_ZOOM = 20;
/** A burst of moves (wheel zooming, keyboard panning) makes one request, after it settles. */
const AREA_DEBOUNCE_MS = 200;
/** Labels of the places with these categories win when labels collide. */
const LABEL_RANK = { city: 0, town: 1, village: 2 };

const area = {
  mode: null, // 'clusters' | 'places'
  layer: null, // L.layerGroup in the 'area' pane
  controller: null, // AbortController of the request in flight
  timer: null,
  clusters: new Map(), // tile key -> {marker, signature, single}
  places: new Map(), // business id -> {marker, business}
  query: null, // places mode: {bbox, category} of the search shown
  cursor: null, // its next page
  category: '', // the category filter applied (empty: every place)
};

/**
 * The API's box for what the map shows: latitudes clamped to [-90, 90]; longitudes wrapped into
 * [-180, 180], west > east when the view crosses 180°; the whole circle when the view spans
 * more than 360° (zoomed out on a wide screen).
 */
function apiBox(bounds) {
  const south = clamp(bounds.getSouth(), -90, 90);
  const north = clamp(bounds.getNorth(), -90, 90);
  let west = -180;
  let east = 180;
  if (bounds.getEast() - bounds.getWest() < 360) {
    west = wrapLng(bounds.getWest());
    east = wrapLng(bounds.getEast());
    // -180 and 180 are one meridian: a view ending there ends at 180, it does not cross.
    if (east === -180) east = 180;
  }
  return { west, south, east, north };
}

function bboxParam({ west, south, east, north }) {
  return [west, south, east, north].map((v) => Number(v.toFixed(6))).join(',');
}

/** The Web Mercator tile column of a longitude, as the server counts it. */
function tileColumn(lng, n) {
  return clamp(Math.floor(((lng + 180) / 360) * n), 0, n - 1);
}

function tileRow(lat, n) {
  const phi = (clamp(lat, -MERCATOR_MAX_LAT, MERCATOR_MAX_LAT) * Math.PI) / 180;
  const y = (1 - Math.log(Math.tan(phi) + 1 / Math.cos(phi)) / Math.PI) / 2;
  return clamp(Math.floor(y * n), 0, n - 1);
}

/**
 * How many tiles at zoom `z` the box spans, plus a row and a column: the server's count may
 * differ by one where an edge falls on a tile edge, and a refused request would leave the
 * map empty.
 */
function tileBudget(box, z) {
  const n = 2 ** z;
  const west = tileColumn(box.west, n);
  const east = tileColumn(box.east, n);
  const columns = box.west > box.east ? n - west + east + 1 : east - west + 1;
  const rows = tileRow(box.south, n) - tileRow(box.north, n) + 1;
  return (columns + 1) * (rows + 1);
}

/** A tile's bounds, moved east by `shift` degrees (the world copy its cluster is drawn on). */
function tileBounds([z, x, y], shift) {
  const n = 2 ** z;
  const lng = (k) => (k / n) * 360 - 180 + shift;
  const lat = (k) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * k) / n))) * 180) / Math.PI;
  return L.latLngBounds([lat(y + 1), lng(x)], [lat(y), lng(x + 1)]);
}

function shortCount(count) {
  if (count < 1000) return String(count);
  const [value, unit] = count < 1e6 ? [count / 1e3, 'k'] : [count / 1e6, 'M'];
  return `${value < 10 ? Math.floor(value * 10) / 10 : Math.floor(value)}${unit}`;
}

/** A bubble's diameter, px: logarithmic in the count, so 10 million still fits a tile's 64 px. */
function bubbleSize(count) {
  return Math.round(clamp(20 + 6 * Math.log10(count), 24, 64));
}

function areaStatus(text, isError = false) {
  setStatus($('#area-status'), text, isError);
}

function initArea() {
  area.layer = L.layerGroup().addTo(map);
  const button = L.control({ position: 'topright' });
  button.onAdd = () => {
    const node = element('button', {
      type: 'button',
      id: 'search-area',
      className: 'search-area',
      textContent: 'Search this area',
      hidden: true,
      onclick: () => searchArea(),
    });
    L.DomEvent.disableClickPropagation(node);
    return node;
  };
  button.addTo(map);
  $('#area-more').addEventListener('click', morePlaces);
  const applyCategory = (event) => {
    event.preventDefault();
    // The API's categories are lowercase; a typed "Cafe " means "cafe".
    const category = $('#area-category').value.trim().toLowerCase();
    if (category === area.category) return;
    area.category = category;
    refreshArea({ again: true });
  };
  $('#area-category').addEventListener('change', applyCategory);
  $('#area-form').addEventListener('submit', applyCategory);
  map.on('moveend', scheduleArea);
  map.on('zoomend', placeLabels);
  refreshArea();
}

function scheduleArea() {
  clearTimeout(area.timer);
  area.timer = setTimeout(refreshArea, AREA_DEBOUNCE_MS);
}

/** After a move: clusters are fetched again; places only on entering that zoom or on request. */
function refreshArea({ again = false } = {}) {
  clearTimeout(area.timer);
  const bbox = bboxParam(apiBox(map.getBounds()));
  const container = map.getContainer();
  container.dataset.viewBbox = bbox;
  const mode = map.getZoom() >= PLACES_ZOOM ? 'places' : 'clusters';
  const entering = mode !== area.mode;
  area.mode = mode;
  container.dataset.mode = mode;
  $('#search-area').hidden = true;
  if (mode === 'clusters') {
    loadClusters();
  } else if (entering || again || !area.query) {
    searchArea();
  } else {
    $('#search-area').hidden = area.query.bbox === bbox;
  }
}

/** One request for the places layer at a time: a newer one aborts the one in flight. */
async function areaRequest(path) {
  area.controller?.abort();
  const controller = new AbortController();
  area.controller = controller;
  map.getContainer().dataset.areaState = 'loading';
  try {
    const body = await request('GET', path, { signal: controller.signal });
    return area.controller === controller ? body : null;
  } catch (err) {
    if (area.controller !== controller) return null; // aborted by a newer request
    map.getContainer().dataset.areaState = 'error';
    areaStatus(`Could not load the places in view: ${describe(err)}`, true);
    return null;
  }
}

function areaDone(bbox, category) {
  const container = map.getContainer();
  container.dataset.areaBbox = bbox;
  container.dataset.areaCategory = category;
  container.dataset.areaState = 'done';
  placeLabels();
}

async function loadClusters() {
  const box = apiBox(map.getBounds());
  // Coarser clusters rather than a refused request on a very large screen.
  let zoom = Math.min(Math.floor(map.getZoom()), MAX_CLUSTER_ZOOM);
  while (zoom > 0 && tileBudget(box, zoom + 2) > MAX_CLUSTER_TILES) zoom -= 1;
  const bbox = bboxParam(box);
  const params = new URLSearchParams({ bbox, zoom: String(zoom) });
  const category = area.category;
  if (category) params.set('category', category);
  const body = await areaRequest(`/v1/search/clusters?${params}`);
  if (!body) return;
  clearPlaces();
  drawClusters(body.clusters);
  const container = map.getContainer();
  container.dataset.areaZoom = String(zoom);
  container.dataset.areaTotal = String(body.total);
  const total = body.total.toLocaleString('en');
  areaStatus(
    body.total === 0
      ? 'No places in view.'
      : `${total} place${body.total === 1 ? '' : 's'} in view, in ${body.clusters.length} cluster${
          body.clusters.length === 1 ? '' : 's'
        }. Click a bubble or zoom in to ${PLACES_ZOOM} to see places one by one.`,
  );
  areaDone(bbox, category);
}

/**
 * Draws an answer's clusters, keeping the markers of tiles whose cluster did not change (a pan
 * redraws only what came into view, with no flicker).
 */
function drawClusters(clusters) {
  const centre = map.getCenter().lng;
  const next = new Map();
  for (const cluster of clusters) {
    const lng = nearLng(cluster.longitude, centre);
    const shift = lng - cluster.longitude;
    const key = `${cluster.tile.join('/')}@${shift}`;
    const single = cluster.count === 1 && cluster.business;
    const signature = JSON.stringify([
      cluster.count,
      cluster.latitude,
      cluster.longitude,
      cluster.business ?? null,
    ]);
    let entry = area.clusters.get(key);
    if (entry && entry.signature === signature) {
      area.clusters.delete(key);
    } else {
      const latlng = [cluster.latitude, lng];
      const marker = single
        ? placeMarker({ ...cluster.business, longitude: lng }, 'cluster-single')
        : clusterBubble(cluster, latlng, shift);
      entry = { marker, signature, single, business: cluster.business };
      area.layer.addLayer(marker);
    }
    next.set(key, entry);
  }
  clearClusters();
  area.clusters = next;
}

function clearClusters() {
  for (const { marker } of area.clusters.values()) area.layer.removeLayer(marker);
  area.clusters.clear();
}

/** A numbered bubble; a click zooms to its tile (where it splits into smaller clusters). */
function clusterBubble(cluster, latlng, shift) {
  const size = bubbleSize(cluster.count);
  const count = element('span', { className: 'count', textContent: shortCount(cluster.count) });
  count.dataset.count = String(cluster.count);
  count.style.fontSize = `${Math.round(9 + size / 6)}px`;
  const tier = cluster.count < 10 ? 'few' : cluster.count < 1000 ? 'some' : 'many';
  const marker = L.marker(latlng, {
    pane: 'area',
    icon: L.divIcon({ className: `cluster-bubble ${tier}`, html: count, iconSize: [size, size] }),
    title: `${cluster.count.toLocaleString('en')} places: click to zoom in`,
    riseOnHover: true,
  });
  marker.on('click', () => map.fitBounds(tileBounds(cluster.tile, shift)));
  return marker;
}

/** A place as a labelled dot with a popup; `business.longitude` already on the copy in view. */
function placeMarker(business, className) {
  const label = element('span', { className: 'label', textContent: business.name });
  const lines = [
    element('strong', { textContent: business.name }),
    element('br'),
    business.category ?? 'no category',
  ];
  if (business.distance_m !== undefined) {
    lines.push(` · ${formatDistance(business.distance_m)} from the area's centre`);
  }
  return L.marker([business.latitude, business.longitude], {
    pane: 'area',
    icon: L.divIcon({ className: `area-marker ${className}`, html: label, iconSize: [12, 12] }),
    title: business.name,
    riseOnHover: true,
  }).bindPopup(element('div', {}, ...lines));
}

/**
 * Shows each place's name unless it would overlap a name already shown, a bubble or another
 * place's dot: cities first, then towns, villages, others, each in the answer's order (nearest
 * the centre first). Run after each answer and zoom; a pan moves everything together.
 */
function placeLabels() {
  const labelled = [];
  const bubbles = [];
  for (const { marker, single, business } of area.clusters.values()) {
    if (single) labelled.push({ marker, business });
    else if (marker.getElement()) bubbles.push(marker.getElement());
  }
  for (const entry of area.places.values()) labelled.push(entry);
  const rank = (business) => LABEL_RANK[business.category] ?? 3;
  labelled.sort((a, b) => rank(a.business) - rank(b.business));
  const icons = labelled.map(({ marker }) => marker.getElement()).filter(Boolean);
  for (const icon of icons) icon.classList.remove('label-hidden');
  // All reads after all writes: one layout, however many places.
  const rects = icons.map((icon) => icon.querySelector('.label').getBoundingClientRect());
  const taken = new RectIndex();
  for (const element of [...bubbles, ...icons]) taken.add(element.getBoundingClientRect());
  icons.forEach((icon, i) => {
    if (taken.overlaps(rects[i])) icon.classList.add('label-hidden');
    else taken.add(rects[i]);
  });
}

/**
 * Rectangles on screen, bucketed in 64 px cells: a clusters answer may hold thousands of places,
 * and each label is checked against its neighbours only.
 */
class RectIndex {
  static CELL = 64;

  constructor() {
    this.cells = new Map();
  }

  *keys(rect) {
    const cell = RectIndex.CELL;
    for (let x = Math.floor(rect.left / cell); x <= Math.floor(rect.right / cell); x += 1) {
      for (let y = Math.floor(rect.top / cell); y <= Math.floor(rect.bottom / cell); y += 1) {
        yield `${x},${y}`;
      }
    }
  }

  add(rect) {
    for (const key of this.keys(rect)) {
      if (!this.cells.has(key)) this.cells.set(key, []);
      this.cells.get(key).push(rect);
    }
  }

  overlaps(rect) {
    for (const key of this.keys(rect)) {
      for (const other of this.cells.get(key) ?? []) {
        const apart =
          rect.right <= other.left ||
          other.right <= rect.left ||
          rect.bottom <= other.top ||
          other.bottom <= rect.top;
        if (!apart) return true;
      }
    }
    return false;
  }
}

function withinPath(query, cursor) {
  const params = new URLSearchParams({ bbox: query.bbox, limit: String(AREA_LIMIT) });
  if (query.category) params.set('category', query.category);
  if (cursor) params.set('cursor', cursor);
  return `/v1/search/within?${params}`;
}

/** The places in view, nearest its centre first: the first page of a new search. */
async function searchArea() {
  const query = { bbox: bboxParam(apiBox(map.getBounds())), category: area.category };
  $('#search-area').hidden = true;
  const body = await areaRequest(withinPath(query, null));
  if (!body) return;
  clearClusters();
  clearPlaces();
  area.query = query;
  showPlaces(body);
}

/** The next page of the search shown: its markers and list entries are added. */
async function morePlaces() {
  const query = area.query;
  if (!query || !area.cursor) return;
  const body = await areaRequest(withinPath(query, area.cursor));
  if (!body || query !== area.query) return;
  showPlaces(body);
}

function showPlaces(body) {
  const centre = map.getCenter().lng;
  const list = $('#area-results');
  for (const business of body.businesses) {
    if (area.places.has(business.id)) continue;
    const marker = placeMarker(
      { ...business, longitude: nearLng(business.longitude, centre) },
      'area-place',
    );
    area.layer.addLayer(marker);
    area.places.set(business.id, { marker, business });
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
  area.cursor = body.next_cursor;
  $('#area-more').hidden = !body.next_cursor;
  const shown = area.places.size;
  map.getContainer().dataset.areaCount = String(shown);
  areaStatus(
    shown === 0
      ? 'No places in this area.'
      : body.next_cursor
        ? `The ${shown} places nearest the centre of this area; there are more.`
        : `${shown} place${shown === 1 ? '' : 's'} in this area.`,
  );
  areaDone(area.query.bbox, area.query.category);
}

function clearPlaces() {
  for (const { marker } of area.places.values()) area.layer.removeLayer(marker);
  area.places.clear();
  area.query = null;
  area.cursor = null;
  $('#area-results').replaceChildren();
  $('#area-more').hidden = true;
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
  initArea();
  initSearch();
  initFriends(config);
  document.body.dataset.ready = 'true';
}

main();
