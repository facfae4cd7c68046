//! Serving: the API on a listener until shutdown, and the shutdown signal.

use crate::api;
use crate::state::AppState;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long WebSocket sessions get to close after shutdown starts.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long the location history queue gets to be written after the sessions end.
const HISTORY_DEADLINE: Duration = Duration::from_secs(10);
/// How long in-flight HTTP requests get to finish after shutdown starts.
const HTTP_DRAIN_DEADLINE: Duration = Duration::from_secs(15);

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish, leaves the gateway membership and closes WebSocket sessions
/// (1012 with the user's next node, or 1001 when alone) within a deadline.
///
/// Each connection is served by hyper's HTTP/1 server with a header read timeout (slow or
/// idle clients are closed, see [`crate::state::Limits`]), a cap on the request head, and
/// upgrades (WebSockets).
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
    let limits = state.limits();
    let gateway = state.gateway().cloned();
    let service = TowerToHyperService::new(api::app(state));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .keep_alive(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = http
            .serve_connection(TokioIo::new(stream), service.clone())
            .with_upgrades();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    // Upgraded connections are not HTTP connections any more: the gateway closes its
    // sessions itself, after leaving the membership so its users are taken by other nodes.
    if let Some(gateway) = &gateway {
        gateway.drain().await;
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(HTTP_DRAIN_DEADLINE, drain)
        .await
        .is_err()
    {
        tracing::warn!("http connections still open after the drain deadline");
    }
    if let Some(gateway) = gateway {
        if !gateway.drained(DRAIN_DEADLINE).await {
            tracing::warn!("websocket sessions still open after the drain deadline");
        }
        if !gateway.history_flushed(HISTORY_DEADLINE).await {
            let left = gateway
                .metrics()
                .history_queued
                .load(std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                rows = left,
                "location history not written before the deadline"
            );
        }
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
