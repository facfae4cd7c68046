//! A TCP proxy for one test, to put between the nodes and Redis and cut the network:
//! listens on 127.0.0.1 on a free port and pipes each accepted connection to the target.
//! [`TcpProxy::cut`] drops every live connection at once and refuses new ones for a while,
//! as if the link went down; then it accepts again.
//!
//! It runs on its own thread and current-thread runtime, so it keeps piping whatever the test
//! does with its own runtime (awaiting, or even blocking a worker). Dropping the proxy stops
//! that runtime, which drops every task and so closes every socket: nothing outlives it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// A running proxy; stopped on drop.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the test's thread and the proxy's thread share.
struct Shared {
    gate: Mutex<Gate>,
    /// Proxied connections whose task has not ended yet.
    live: AtomicU64,
    /// Connections accepted and closed at once because a cut was in force.
    refused: AtomicU64,
    /// Connections piped to the target.
    accepted: AtomicU64,
}

/// Whether connections are let through. One lock for the check at accept and the cut, so a
/// connection accepted while a cut begins is either refused or dropped by it, never missed.
struct Gate {
    /// New connections are refused until then.
    refuse_until: Option<Instant>,
    /// Bumped by every cut; each connection's task ends when it changes.
    cuts: watch::Sender<u64>,
}

fn lock(mutex: &Mutex<Gate>) -> MutexGuard<'_, Gate> {
    // The critical sections only read and assign fields: a panic cannot leave them torn.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Decrements the live count when a connection's task ends, however it ends (including
/// being dropped with the runtime).
struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[allow(dead_code)] // each test file uses part of it
impl TcpProxy {
    /// Starts a proxy to `target`.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot be built.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = std_listener.local_addr().expect("the listener's address");
        std_listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let (cuts, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            gate: Mutex::new(Gate {
                refuse_until: None,
                cuts,
            }),
            live: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the proxy's runtime");
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        TcpListener::from_std(std_listener).expect("register the listener");
                    tokio::select! {
                        () = accept_loop(listener, target, thread_shared) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here drops every connection task, closing its sockets.
                drop(runtime);
            })
            .expect("spawn the proxy thread");
        TcpProxy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT`: the proxy as a Redis URL.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Drops every live proxied connection at once (both sides are closed), and refuses new
    /// connections (accepted and closed at once, so clients fail fast rather than hang) for
    /// `duration` from now; then connections are proxied again. Returns once the dropped
    /// connections' sockets are closed (within a second), so the cut has happened when it
    /// returns. A cut during a cut extends the refusal if it ends later.
    pub fn cut(&self, duration: Duration) {
        let until = Instant::now() + duration;
        {
            let mut gate = lock(&self.shared.gate);
            gate.refuse_until = Some(gate.refuse_until.map_or(until, |old| old.max(until)));
            gate.cuts.send_modify(|cuts| *cuts += 1);
        }
        // The tasks run on the proxy's thread: wait (briefly, bounded) until they have ended,
        // so the caller can rely on the connections being gone.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.live.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Connections accepted and closed at once because a cut was in force.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Connections piped to the target so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections being piped now.
    pub fn live(&self) -> u64 {
        self.shared.live.load(Ordering::Acquire)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors or the like: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let cut = {
            let mut gate = lock(&shared.gate);
            if gate
                .refuse_until
                .is_some_and(|until| Instant::now() < until)
            {
                None
            } else {
                gate.refuse_until = None;
                // Counted under the lock, so a cut that follows waits for this one too.
                shared.live.fetch_add(1, Ordering::AcqRel);
                Some(gate.cuts.subscribe())
            }
        };
        match cut {
            // Dropping the socket closes it: the client sees the connection end at once.
            None => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                drop(client);
            }
            Some(cut) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let guard = LiveGuard(Arc::clone(&shared));
                tokio::spawn(pipe(client, target, cut, guard));
            }
        }
    }
}

/// Pipes one connection until either side closes it or a cut drops it.
async fn pipe(
    mut client: TcpStream,
    target: SocketAddr,
    mut cut: watch::Receiver<u64>,
    guard: LiveGuard,
) {
    let _guard = guard;
    let piped = async {
        let Ok(mut server) = TcpStream::connect(target).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    };
    tokio::select! {
        () = piped => {}
        // Returning drops both sockets (the server's inside `piped`): both sides see the
        // connection end, as after a network failure.
        _ = cut.changed() => {}
    }
}
