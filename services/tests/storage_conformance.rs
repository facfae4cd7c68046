//! The shared storage suites, run against PostgreSQL (a throwaway server, see
//! `support/postgres.rs`): the friends suite (`nearby_ws_gateway::friends::conformance`) and
//! the business write path (`nearby_services::store::conformance`). The memory backends run
//! the same suites in the crates' unit tests.

// Only the PostgreSQL helper is used here.
#[allow(dead_code)]
mod support;

use nearby_services::auth::Secret;
use nearby_services::catalog::Catalog;
use nearby_services::state::AppState;
use nearby_services::store::{PgStore, Store};
use nearby_ws_gateway::friends::{FriendStore, PgFriends, conformance};
use support::postgres::TestPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_both_shared_suites() {
    let db = TestPostgres::start();
    let store = PgStore::connect(&db.url())
        .await
        .unwrap_or_else(|err| panic!("{err}"));

    // A control pool apart from the main one, as the service runs it.
    let control = store
        .another_pool(2)
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let friends =
        FriendStore::Postgres(PgFriends::new(store.pool().clone()).with_control_pool(control));
    conformance::run(&friends, 0).await;
    // Again at other users of the same database: the suite does not lean on a fresh one.
    conformance::run(&friends, 1 << 40).await;

    let secret = Secret::new(vec![7; 32]).unwrap_or_else(|err| panic!("{err}"));
    let state = AppState::new(Store::Postgres(store), secret, Default::default());
    state.install_catalog(Catalog::default());
    nearby_services::store::conformance::write_path(&state, "a").await;
    nearby_services::store::conformance::write_path(&state, "b").await;
}
