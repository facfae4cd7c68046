//! The shared test suite of the business write path, run against every store: the memory
//! store in this crate's unit tests, PostgreSQL in `services/tests/storage_conformance.rs`
//! (a throwaway server).
//!
//! It drives [`AppState`]'s writes — what the HTTP handlers call — and checks what they
//! promise: create refuses an existing id, put creates or replaces, delete refuses a missing
//! id, a refusal changes nothing, every change takes a higher revision, and the next read on
//! this node sees the change. With PostgreSQL it also reads the table back: the catalog and
//! the durable rows agree, revisions included.
//!
//! Ids start with `prefix`, so one database can host several runs.

use crate::business::{Business, BusinessId, Category, Name, position};
use crate::state::{AppState, WriteError};
use crate::store::Store;

/// Runs every check against `state`'s store, panicking at the first difference.
///
/// # Panics
/// When the write path breaks a promise (that is what it is for).
pub async fn write_path(state: &AppState, prefix: &str) {
    let one = business(prefix, "one", "First", 48.85, 2.35, Some("cafe"));
    let renamed = Business {
        name: name("Renamed"),
        ..one.clone()
    };

    assert!(
        state.create(one.clone()).await.is_ok(),
        "a new id is created"
    );
    assert_eq!(state.catalog().get(&one.id), Some(one.clone()));
    let created_at = revision(state, &one.id);

    let refused = state.create(renamed.clone()).await;
    assert!(
        matches!(refused, Err(WriteError::Conflict)),
        "create refuses an existing id: {refused:?}"
    );
    assert_eq!(
        state.catalog().get(&one.id),
        Some(one.clone()),
        "refused: unchanged"
    );
    assert_eq!(revision(state, &one.id), created_at);

    assert!(
        matches!(state.put(renamed.clone()).await, Ok(false)),
        "put replaces"
    );
    assert_eq!(state.catalog().get(&one.id), Some(renamed.clone()));
    let replaced_at = revision(state, &one.id);
    assert!(replaced_at > created_at, "{replaced_at} > {created_at}");

    // Exact coordinates, no category, an id and a name at the edges of what is accepted.
    let two = business(
        prefix,
        "two",
        "Ünïcode \"quoted\" \\ name",
        -33.868_8,
        151.209_3,
        None,
    );
    let tiny = business(prefix, "tiny", "Tiny", 1e-300, 179.999_999_999_999_97, None);
    assert!(
        matches!(state.put(two.clone()).await, Ok(true)),
        "put creates"
    );
    assert!(matches!(state.put(tiny.clone()).await, Ok(true)));
    assert!(revision(state, &two.id) > replaced_at);
    assert!(revision(state, &tiny.id) > revision(state, &two.id));

    durable_rows_agree(state, prefix, &[&renamed, &two, &tiny]).await;

    assert!(state.delete(&two.id).await.is_ok());
    assert_eq!(state.catalog().get(&two.id), None, "deleted");
    let refused = state.delete(&two.id).await;
    assert!(
        matches!(refused, Err(WriteError::NotFound)),
        "a second delete finds nothing: {refused:?}"
    );
    let deleted_at = revision(state, &two.id);
    assert!(
        state.create(two.clone()).await.is_ok(),
        "a deleted id may return"
    );
    assert!(revision(state, &two.id) > deleted_at);
    assert!(state.delete(&tiny.id).await.is_ok());

    durable_rows_agree(state, prefix, &[&renamed, &two]).await;
}

/// With PostgreSQL: the rows under `prefix` are exactly `expected`, bit for bit, at the
/// revisions the catalog holds. The memory store has no rows apart from the catalog.
async fn durable_rows_agree(state: &AppState, prefix: &str, expected: &[&Business]) {
    let Store::Postgres(store) = state.store() else {
        return;
    };
    let mut rows: Vec<(Business, i64)> = store
        .load_all()
        .await
        .unwrap_or_else(|err| panic!("cannot read the rows back: {err}"))
        .into_iter()
        .filter(|(b, _)| b.id.as_str().starts_with(&format!("{prefix}-")))
        .collect();
    rows.sort_by(|a, b| a.0.id.as_str().cmp(b.0.id.as_str()));
    let mut wanted: Vec<(Business, i64)> = expected
        .iter()
        .map(|&b| (b.clone(), revision(state, &b.id)))
        .collect();
    wanted.sort_by(|a, b| a.0.id.as_str().cmp(b.0.id.as_str()));
    assert_eq!(rows, wanted);
    for ((row, _), (want, _)) in rows.iter().zip(&wanted) {
        assert_eq!(row.position.lat().to_bits(), want.position.lat().to_bits());
        assert_eq!(row.position.lng().to_bits(), want.position.lng().to_bits());
    }
}

fn revision(state: &AppState, id: &BusinessId) -> i64 {
    state
        .catalog()
        .revision(id)
        .unwrap_or_else(|| panic!("no revision held for {id:?}"))
}

fn name(text: &str) -> Name {
    Name::new(text).unwrap_or_else(|err| panic!("{err:?}"))
}

fn business(
    prefix: &str,
    suffix: &str,
    display: &str,
    latitude: f64,
    longitude: f64,
    category: Option<&str>,
) -> Business {
    let checked = || -> Result<Business, crate::business::FieldError> {
        Ok(Business {
            id: BusinessId::new(&format!("{prefix}-{suffix}"))?,
            name: Name::new(display)?,
            position: position(latitude, longitude)?,
            category: category.map(Category::new).transpose()?,
        })
    };
    checked().unwrap_or_else(|err| panic!("{err:?}"))
}

#[cfg(test)]
mod tests {
    use crate::auth::Secret;
    use crate::catalog::Catalog;
    use crate::state::AppState;
    use crate::store::Store;

    #[tokio::test]
    async fn the_memory_store_passes_the_shared_suite() {
        let secret = Secret::new(vec![1; 32]).expect("a valid secret");
        let state = AppState::new(Store::memory(), secret, Default::default());
        state.install_catalog(Catalog::default());
        super::write_path(&state, "a").await;
        super::write_path(&state, "b").await;
    }
}
