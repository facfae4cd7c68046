//! Serving: the API on a listener until shutdown, and the shutdown signal.

use crate::api;
use crate::state::AppState;
use std::future::Future;
use tokio::net::TcpListener;

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish.
///
/// # Errors
/// An I/O error from the listener.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use nearby_services::{auth::Secret, server, state::AppState, store::Store};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let secret = Secret::new(vec![1; 32]).expect("long enough");
/// let state = AppState::new(Store::memory(), secret, Default::default());
/// server::run(listener, state, std::future::pending()).await
/// # }
/// ```
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, api::app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or SIGTERM.
///
/// ```no_run
/// # async fn demo() {
/// nearby_services::server::shutdown_signal().await;
/// # }
/// ```
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupt received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
