//! The service as the binary assembles it ([`App::from_config`]), in process: the tests start
//! from the same derived configuration as `nearby serve` and change only what they test.

use nearby_services::app::{App, Config, Settings};
use nearby_services::auth::Secret;
use nearby_services::catalog::Catalog;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The configuration `nearby serve --secret …` derives on a loopback port, signing with
/// `secret` and serving `catalog` as it is (ready at once).
///
/// # Panics
/// Never for the defaults.
#[allow(dead_code)] // each test file uses part of this module
pub fn config(secret: Secret, catalog: Catalog) -> Config {
    // A secret is given so the development secret file is never created by a test.
    let settings = Settings {
        secret: Some("replaced-below-0123456789".to_owned()),
        ..Settings::default()
    };
    let bound = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config::from_settings(&settings, bound).expect("the default settings");
    config.secret = secret;
    config.catalog = Some(catalog);
    config
}

/// The app wired from `config`.
///
/// # Panics
/// When it cannot start (a test's configuration error).
#[allow(dead_code)]
pub async fn start(config: Config) -> App {
    App::from_config(config).await.expect("the app starts")
}

/// An app served on a free loopback port until [`Served::stop`] (or drop of the sender).
#[allow(dead_code)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Resolves the server's shutdown future.
    pub stop: oneshot::Sender<()>,
    /// The server task: the result of [`App::run`].
    pub task: JoinHandle<Result<(), nearby_services::app::AppError>>,
}

/// Serves `app` on `127.0.0.1:0`.
///
/// # Panics
/// When no loopback port can be bound.
#[allow(dead_code)]
pub async fn serve(app: App) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(listener, async move {
        let _ = stopped.await;
    }));
    Served { addr, stop, task }
}
