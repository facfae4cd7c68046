//! The three systems under test and one connection to each: the same query (the 20 places
//! nearest a centre within a radius, nearest first, with their distances) asked three ways.

use super::http::HttpConnection;
use geo_index::LatLng;
use serde::Deserialize;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

/// Results per query: the REST API's default page size.
pub const LIMIT: usize = 20;

/// One result: a place id and the distance the system reported, metres.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Place id.
    pub id: String,
    /// Distance from the centre as the system computed it, metres.
    pub distance_m: f64,
}

/// How the PostGIS query orders its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PostgisOrder {
    /// `ORDER BY location <-> centre`: a KNN scan of the GiST index that stops after 20 rows.
    Knn,
    /// `ORDER BY ST_Distance(location, centre, false)`: every row within the radius is
    /// fetched through the index, then the top 20 are sorted out.
    Distance,
}

/// The KNN form. `use_spheroid = false` everywhere so PostGIS measures on a sphere like
/// Nearby; `<->` on geography is the sphere distance too. `ST_DWithin` goes first so the
/// index scan is bounded by the radius box as well as ordered by distance.
const POSTGIS_KNN_SQL: &str = "\
SELECT id, ST_Distance(location, q.centre, false) AS d
FROM places, (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS centre) AS q
WHERE ST_DWithin(location, q.centre, $3, false)
ORDER BY location <-> q.centre
LIMIT 20";

/// The sort-by-distance form.
const POSTGIS_DISTANCE_SQL: &str = "\
SELECT id, ST_Distance(location, q.centre, false) AS d
FROM places, (SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS centre) AS q
WHERE ST_DWithin(location, q.centre, $3, false)
ORDER BY d
LIMIT 20";

impl PostgisOrder {
    /// The SQL text, parameters `$1` longitude, `$2` latitude, `$3` radius in metres.
    pub fn sql(self) -> &'static str {
        match self {
            PostgisOrder::Knn => POSTGIS_KNN_SQL,
            PostgisOrder::Distance => POSTGIS_DISTANCE_SQL,
        }
    }
}

/// A system under test and how to reach it.
pub enum Target {
    /// `GET /v1/search/nearby` on the Nearby service.
    Nearby {
        /// `host:port`.
        authority: String,
    },
    /// `GEOSEARCH` on a Redis sorted set.
    Redis {
        /// The client (connection parameters).
        client: redis::Client,
        /// The sorted set holding the places.
        key: String,
    },
    /// A KNN/radius SQL query on a PostGIS `geography(Point, 4326)` column.
    Postgis {
        /// Connection parameters.
        options: PgConnectOptions,
        /// The query form.
        order: PostgisOrder,
    },
}

/// One open connection to a [`Target`].
pub enum Connection {
    /// HTTP/1.1 keep-alive.
    Nearby(Box<HttpConnection>),
    /// A multiplexed connection used by one worker only, so one command at a time is in
    /// flight on it: the same one-request-per-connection load the other targets see.
    Redis(redis::aio::MultiplexedConnection),
    /// A PostgreSQL session; sqlx prepares the statement once per session and caches it.
    Postgis(Box<PgConnection>),
}

/// The JSON the Nearby API answers with, reduced to the fields compared.
#[derive(Deserialize)]
struct NearbyPage {
    businesses: Vec<NearbyHit>,
}

#[derive(Deserialize)]
struct NearbyHit {
    id: String,
    distance_m: f64,
}

impl Target {
    /// A Nearby target from `http://host:port` (or `host:port`).
    ///
    /// # Errors
    /// A URL with a path, or not plain `http`.
    pub fn nearby(url: &str) -> Result<Self, String> {
        let authority = url.strip_prefix("http://").unwrap_or(url);
        let authority = authority.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains("://") {
            return Err(format!(
                "--nearby expects http://host:port with no path, got {url:?}"
            ));
        }
        Ok(Target::Nearby {
            authority: authority.to_owned(),
        })
    }

    /// A Redis target from `redis://host:port`.
    ///
    /// # Errors
    /// An invalid URL.
    pub fn redis(url: &str, key: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis {url:?}: {e}"))?;
        Ok(Target::Redis {
            client,
            key: key.to_owned(),
        })
    }

    /// A PostGIS target from `postgres://user@host:port/db`.
    ///
    /// # Errors
    /// An invalid URL.
    pub fn postgis(url: &str, order: PostgisOrder) -> Result<Self, String> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| format!("--postgres {url:?}: {e}"))?
            // Plain TCP on loopback, as the other two targets.
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        Ok(Target::Postgis { options, order })
    }

    /// A short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Nearby { .. } => "Nearby REST",
            Target::Redis { .. } => "Redis GEOSEARCH",
            Target::Postgis { .. } => "PostGIS",
        }
    }

    /// Opens a connection.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn connect(&self) -> Result<Connection, String> {
        match self {
            Target::Nearby { authority } => HttpConnection::connect(authority)
                .await
                .map(|c| Connection::Nearby(Box::new(c)))
                .map_err(|e| format!("cannot connect to Nearby at {authority}: {e}")),
            Target::Redis { client, .. } => {
                // The default 500 ms response timeout would turn a scheduling hiccup on
                // the shared 2-core machine into an error; latency is measured instead.
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(10)))
                    .set_response_timeout(Some(Duration::from_secs(30)));
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Connection::Redis)
                    .map_err(|e| format!("cannot connect to Redis: {e}"))
            }
            Target::Postgis { options, .. } => PgConnection::connect_with(options)
                .await
                .map(|c| Connection::Postgis(Box::new(c)))
                .map_err(|e| format!("cannot connect to PostgreSQL: {e}")),
        }
    }
}

impl Connection {
    /// Asks `target` for the [`LIMIT`] places nearest `centre` within `radius_m`, nearest
    /// first, into `hits` (cleared first). `path` is scratch space for the request line.
    ///
    /// # Errors
    /// Transport or protocol errors, or an answer that is not a result list.
    pub async fn search(
        &mut self,
        target: &Target,
        centre: LatLng,
        radius_m: f64,
        hits: &mut Vec<Hit>,
        path: &mut String,
    ) -> Result<(), String> {
        hits.clear();
        let (lat, lng) = (centre.lat(), centre.lng());
        match (self, target) {
            (Connection::Nearby(connection), Target::Nearby { .. }) => {
                path.clear();
                // `{}` prints the shortest text that parses back to the same f64, and never
                // an exponent, so every target sees bit-identical coordinates.
                let _ = write!(
                    path,
                    "/v1/search/nearby?latitude={lat}&longitude={lng}&radius={radius_m}&limit={LIMIT}"
                );
                let response = connection.get(path).await?;
                if response.status != 200 {
                    let body = String::from_utf8_lossy(response.body);
                    return Err(format!("HTTP {}: {}", response.status, body.trim()));
                }
                let page: NearbyPage = serde_json::from_slice(response.body)
                    .map_err(|e| format!("bad JSON from Nearby: {e}"))?;
                hits.extend(page.businesses.into_iter().map(|h| Hit {
                    id: h.id,
                    distance_m: h.distance_m,
                }));
            }
            (Connection::Redis(connection), Target::Redis { key, .. }) => {
                let reply: Vec<(String, f64)> = redis::cmd("GEOSEARCH")
                    .arg(key)
                    .arg("FROMLONLAT")
                    .arg(lng)
                    .arg(lat)
                    .arg("BYRADIUS")
                    .arg(radius_m)
                    .arg("m")
                    .arg("ASC")
                    .arg("COUNT")
                    .arg(LIMIT)
                    .arg("WITHDIST")
                    .query_async(connection)
                    .await
                    .map_err(|e| format!("GEOSEARCH: {e}"))?;
                hits.extend(
                    reply
                        .into_iter()
                        .map(|(id, distance_m)| Hit { id, distance_m }),
                );
            }
            (Connection::Postgis(connection), Target::Postgis { order, .. }) => {
                let rows: Vec<(String, f64)> = sqlx::query_as(order.sql())
                    .bind(lng)
                    .bind(lat)
                    .bind(radius_m)
                    .fetch_all(connection.as_mut())
                    .await
                    .map_err(|e| format!("PostGIS query: {e}"))?;
                hits.extend(
                    rows.into_iter()
                        .map(|(id, distance_m)| Hit { id, distance_m }),
                );
            }
            _ => return Err("a connection was used with another target".into()),
        }
        Ok(())
    }
}

/// What a target says about itself before the run.
pub struct Description {
    /// Server software and version.
    pub version: String,
    /// Places it holds.
    pub places: u64,
    /// For PostGIS: the plan of one query (`EXPLAIN ANALYZE`, costs and timings off).
    pub plan: Option<String>,
}

impl Target {
    /// Asks the target for its version and the number of places it holds.
    ///
    /// # Errors
    /// The target cannot be reached or queried.
    pub async fn describe(&self, sample: LatLng, radius_m: f64) -> Result<Description, String> {
        match self {
            Target::Nearby { authority } => {
                let mut connection = HttpConnection::connect(authority)
                    .await
                    .map_err(|e| format!("cannot connect to Nearby at {authority}: {e}"))?;
                let response = connection.get("/readyz").await?;
                if response.status != 200 {
                    return Err(format!("Nearby /readyz answered HTTP {}", response.status));
                }
                let metrics = connection.get("/metrics").await?;
                let text = String::from_utf8_lossy(metrics.body);
                // The catalog size gauge; absent from older servers, hence optional.
                let places = text
                    .lines()
                    .find(|l| l.starts_with("nearby_businesses "))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
                    .map_or(0, |v| v as u64);
                Ok(Description {
                    version: format!("nearby-services {}", env!("CARGO_PKG_VERSION")),
                    places,
                    plan: None,
                })
            }
            Target::Redis { key, .. } => {
                let Connection::Redis(mut connection) = self.connect().await? else {
                    return Err("unexpected connection type".into());
                };
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| format!("INFO: {e}"))?;
                let version = info
                    .lines()
                    .find_map(|l| l.strip_prefix("redis_version:"))
                    .unwrap_or("unknown")
                    .trim();
                let places: u64 = redis::cmd("ZCARD")
                    .arg(key)
                    .query_async(&mut connection)
                    .await
                    .map_err(|e| format!("ZCARD: {e}"))?;
                Ok(Description {
                    version: format!("Redis {version}"),
                    places,
                    plan: None,
                })
            }
            Target::Postgis { order, .. } => {
                let Connection::Postgis(mut connection) = self.connect().await? else {
                    return Err("unexpected connection type".into());
                };
                let (pg, postgis): (String, String) = sqlx::query_as(
                    "SELECT current_setting('server_version'), postgis_lib_version()",
                )
                .fetch_one(connection.as_mut())
                .await
                .map_err(|e| format!("version query: {e}"))?;
                let places: i64 = sqlx::query_scalar("SELECT count(*) FROM places")
                    .fetch_one(connection.as_mut())
                    .await
                    .map_err(|e| format!("count query: {e}"))?;
                let explain = format!(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {}",
                    order.sql()
                );
                let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
                    .bind(sample.lng())
                    .bind(sample.lat())
                    .bind(radius_m)
                    .fetch_all(connection.as_mut())
                    .await
                    .map_err(|e| format!("EXPLAIN: {e}"))?;
                Ok(Description {
                    version: format!("PostgreSQL {pg}, PostGIS {postgis}"),
                    places: u64::try_from(places).unwrap_or(0),
                    plan: Some(plan.join("\n")),
                })
            }
        }
    }
}
