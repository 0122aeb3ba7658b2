//! The HTTP server under the API's router, with its limits: hyper-util's connection builder with
//! a header-read timeout (a client that sends half a header is cut off), a cap on open
//! connections, per-client rate limits for `/health` and for failed authentication, the
//! client's address on every request, and a graceful stop.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The limits `recon serve` can be given on its command line.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A client must send a request's whole header within this (`--header-timeout`).
    pub header_read_timeout: Duration,
    /// A request must be read, done and answered within this (`--request-timeout`).
    pub request_timeout: Duration,
    /// Open connections at most; more wait in the listen queue (`--max-connections`).
    pub max_connections: usize,
}

/// The defaults of [`Limits`], which `recon serve --help` shows.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a write waits for a nightly run unless `--wait` (or `wait` in recon.toml) says.
pub const DEFAULT_WRITE_WAIT_SECS: u64 = 10;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Requests being handled at once at most; more wait for their turn (inside the request
/// timeout).
pub const MAX_IN_FLIGHT: usize = 256;
/// `/health` per client address: this many a second, in bursts of [`HEALTH_BURST`].
pub const HEALTH_PER_SECOND: u32 = 10;
pub const HEALTH_BURST: u32 = 20;
/// Requests with a missing or wrong token per client address: this many a second, in bursts
/// of [`FAILED_AUTH_BURST`]; past that they get 429 instead of 401.
pub const FAILED_AUTH_PER_SECOND: u32 = 2;
pub const FAILED_AUTH_BURST: u32 = 20;
/// How long a stop waits for the requests in flight before it closes their connections.
const GRACE: Duration = Duration::from_secs(10);

/// The per-client rate limits, keyed by the client's IP address.
pub struct RateLimits {
    health: DefaultKeyedRateLimiter<IpAddr>,
    failed_auth: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Default for RateLimits {
    fn default() -> Self {
        let quota = |per_second: u32, burst: u32| {
            Quota::per_second(NonZeroU32::new(per_second).expect("a positive rate"))
                .allow_burst(NonZeroU32::new(burst).expect("a positive burst"))
        };
        RateLimits {
            health: RateLimiter::keyed(quota(HEALTH_PER_SECOND, HEALTH_BURST)),
            failed_auth: RateLimiter::keyed(quota(FAILED_AUTH_PER_SECOND, FAILED_AUTH_BURST)),
            clock: DefaultClock::default(),
        }
    }
}

impl RateLimits {
    /// Counts a `/health` request; `Err` says how long the client must wait.
    pub fn health(&self, client: IpAddr) -> Result<(), Duration> {
        self.health
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Counts a failed authentication; `Err` says how long the client must wait.
    pub fn failed_auth(&self, client: IpAddr) -> Result<(), Duration> {
        self.failed_auth
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets the clients that are back to a full burst, so the tables stay small.
    fn forget_idle(&self) {
        for limiter in [&self.health, &self.failed_auth] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The client's address as the connection gives it, for the rate limits and the access log.
pub fn client(request: &Request<axum::body::Body>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| *address)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (up to a grace period).
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    rate_limits: Arc<RateLimits>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let sweeper = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            rate_limits.forget_idle();
        }
    });
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(client = %peer, "connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    sweeper.abort();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(GRACE) => {
            tracing::warn!("requests still in flight after {} s; closing their connections", GRACE.as_secs());
        }
    }
}
