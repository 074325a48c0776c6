//! Serving: bind with a deep listen queue, start the store, the hub, the hashing pool and the
//! router, serve them through [`crate::transport`] (and the metrics on their own address if
//! asked), and shut down in order: stop accepting, let every connection finish the saves it
//! started and close with 1001, then let the store commit every pending write.

use crate::app::{AppState, Services, app, metrics_app};
use crate::auth::hashing::Hashing;
use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::http::accounts::create_account;
use crate::live::event::Bus;
use crate::live::hub::Hub;
use crate::metrics::Metrics;
use crate::tls::{Certificates, Tls};
use crate::transport::{self, Limits, Plain};
use crate::{demo, store};
use anyhow::Context as _;
use invigil_protocol::Role;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The listen backlog: tokio's default of 1024 overflows when a room reconnects at once.
const BACKLOG: u32 = 4096;
/// How long shutdown waits for connections to finish their saves and close.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);
/// How often the sign-in throttle forgets what has left its window.
const THROTTLE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Binds the listening socket with a listen queue of [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves until `shutdown` resolves, then shuts down gracefully: over TLS with `certificates`
/// (read with [`Certificates::load`] before the address is announced, so that bad files stop the
/// server before anyone is told where it is), reloaded on SIGHUP.
pub async fn run(
    config: Config,
    listener: TcpListener,
    certificates: Option<Arc<Certificates>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = certificates
        .as_ref()
        .map(Certificates::server_config)
        .transpose()?;
    let metrics = Arc::new(Metrics::new());
    let (bus, events) = Bus::new();
    let store = store::open(&config.database, bus, config.heartbeat()).await?;
    let hub = Hub::new(metrics.clone());
    let dispatcher = tokio::spawn(hub.clone().dispatch(events));
    let hashing = Hashing::new(
        config.hashing_workers(),
        Duration::from_millis(config.sign_in_wait_limit_ms),
    );
    // The mean time of a hash is known before the first sign-in is judged by it.
    hashing.warm_up().await?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => {
            Some(bind(addr).with_context(|| format!("while binding --metrics-listen {addr}"))?)
        }
        None => None,
    };
    let limits = Limits::of(&config);
    let state = AppState::new(Services {
        store: store.clone(),
        hub,
        config: Arc::new(config),
        throttle: Arc::new(Throttle::new()),
        hashing,
        metrics,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    bootstrap_admin(&state).await?;
    if state.config.demo {
        demo::seed(&state, scheme(&state.config), listener.local_addr()?).await?;
    }

    let token = state.shutdown.clone();
    tokio::spawn({
        let (token, hub) = (token.clone(), state.hub.clone());
        async move {
            shutdown.await;
            tracing::info!("shutting down: closing connections after their pending saves");
            token.cancel();
            hub.stop_all();
        }
    });
    tokio::spawn({
        let (throttle, token) = (state.throttle.clone(), token.clone());
        async move {
            let mut every = tokio::time::interval(THROTTLE_SWEEP_EVERY);
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = every.tick() => throttle.sweep(std::time::Instant::now()),
                }
            }
        }
    });
    tokio::spawn(crate::memory::give_back_freed(token.clone()));
    let scraped = metrics_listener.map(|listener| {
        tracing::info!(address = ?listener.local_addr().ok(), "serving /metrics without authentication");
        tokio::spawn(transport::serve(
            Plain(listener),
            metrics_app(state.clone()),
            limits.clone(),
            None,
            token.clone(),
            DRAIN_LIMIT,
        ))
    });
    let (router, metrics) = (app(state.clone()), Some(state.metrics.clone()));
    match (tls, certificates) {
        (Some(tls), Some(certificates)) => {
            tokio::spawn(certificates.reload_on_hangup(token.clone()));
            let listener = Tls::new(listener, tls);
            transport::serve(
                listener,
                router,
                limits,
                metrics,
                token.clone(),
                DRAIN_LIMIT,
            )
            .await;
        }
        _ => {
            let listener = Plain(listener);
            transport::serve(
                listener,
                router,
                limits,
                metrics,
                token.clone(),
                DRAIN_LIMIT,
            )
            .await;
        }
    }
    if let Some(scraped) = scraped {
        let _ = scraped.await;
    }

    state.tasks.close();
    if tokio::time::timeout(DRAIN_LIMIT, state.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    store.close().await;
    dispatcher.abort();
    tracing::info!("stopped");
    Ok(())
}

/// `https` when the server serves TLS itself, else `http`: how to reach the address it listens on.
pub fn scheme(config: &Config) -> &'static str {
    if config.tls().is_some() {
        "https"
    } else {
        "http"
    }
}

async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    let Some(secret) = &state.config.bootstrap_admin else {
        return Ok(());
    };
    let (username, password) = secret
        .expose()
        .split_once(':')
        .context("INVIGIL_BOOTSTRAP_ADMIN must be username:password")?;
    if state.store.account(username).await?.is_some() {
        return Ok(());
    }
    match create_account(state, username, password.to_owned(), Role::Admin, None).await {
        Ok(_) => tracing::info!(username, "bootstrap admin created"),
        // Another node on the same database created it a moment before.
        Err(e) if e.code() == invigil_protocol::ErrorCode::Conflict => {}
        Err(e) => anyhow::bail!("could not create the bootstrap admin: {e}"),
    }
    Ok(())
}
