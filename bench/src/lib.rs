//! What the load generators share: latency histograms and the `/proc` readings of a server
//! under load.
//!
//! The binaries are `search-bench` (`src/bin/search-bench/`: Nearby REST vs Redis
//! `GEOSEARCH` vs PostGIS) and `friends-bench` (`src/bin/friends-bench/`: the nearby-friends
//! WebSocket gateway); `scripts/bench-search` and `scripts/bench-friends` run them. They live
//! in their own crate so that the service does not depend on their Redis and WebSocket
//! clients. Randomness comes from the data crate's [`nearby_data::SplitMix64`].

pub mod latency;
pub mod procfs;
