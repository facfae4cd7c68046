//! Serving: the API on a listener until shutdown, and the shutdown signal.

use crate::api;
use crate::state::AppState;
use std::future::Future;
use tokio::net::TcpListener;

/// How long WebSocket sessions get to close after shutdown starts.
const DRAIN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish and closes WebSocket sessions (1001) within a deadline.
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
    let gateway = state.gateway().cloned();
    let closing = gateway.clone();
    let shutdown = async move {
        shutdown.await;
        // Upgraded connections are not tracked by the HTTP server's graceful shutdown:
        // the gateway closes its sessions itself.
        if let Some(gateway) = closing {
            gateway.begin_shutdown();
        }
    };
    axum::serve(listener, api::app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    if let Some(gateway) = gateway
        && !gateway.drained(DRAIN_DEADLINE).await
    {
        tracing::warn!("websocket sessions still open after the drain deadline");
    }
    Ok(())
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
