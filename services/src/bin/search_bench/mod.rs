//! The parts of `search-bench`: one module per concern.
//!
//! - `places`: the dataset (loaded once, exported as the CSV every target loads) and the
//!   seeded query centres.
//! - `targets`: Nearby over HTTP, Redis `GEOSEARCH`, PostGIS over sqlx; one connection
//!   type per target and the query each is asked.
//! - `http`: the minimal keep-alive HTTP/1.1 client.
//! - `verify`: result-set comparison with each system's geometric tolerance.
//! - `load`: closed-loop workers, one connection and one request in flight each.
//! - `histogram`: fixed-size latency histogram.
//! - `report`: markdown tables.

pub mod histogram;
pub mod http;
pub mod load;
pub mod places;
pub mod report;
pub mod targets;
pub mod verify;
