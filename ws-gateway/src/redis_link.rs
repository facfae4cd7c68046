//! One handle for either Redis deployment: a single server (through a `ConnectionManager`,
//! which reconnects by itself) or a Redis Cluster (through the redis crate's async cluster
//! connection, which follows slot moves and failovers). The cache, the membership and the
//! bus's publisher run their commands through it without caring which.
//!
//! The two differ in one place the callers see: on a cluster, pub/sub is *sharded*
//! (`SPUBLISH`/`SSUBSCRIBE`, each channel living on the shard of its slot) so a message
//! crosses one shard instead of being broadcast to every node of the cluster.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection to a Redis server or cluster; cheap to clone (clones share the connections).
#[derive(Clone)]
pub enum RedisLink {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl RedisLink {
    /// Whether this is a cluster (sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisLink::Cluster(_))
    }

    /// The publish command for this deployment: `SPUBLISH` on a cluster, `PUBLISH` otherwise.
    pub fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }
}

impl ConnectionLike for RedisLink {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisLink::Single(connection) => connection.req_packed_command(cmd),
            RedisLink::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisLink::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            RedisLink::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisLink::Single(connection) => connection.get_db(),
            RedisLink::Cluster(connection) => connection.get_db(),
        }
    }
}
