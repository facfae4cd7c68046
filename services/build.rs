//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the files it sees at compile
//! time, and Cargo would not otherwise notice a new file in `migrations/`.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
