//! Serving: bind with a deep listen queue, start the store, the hub and the router, and shut down
//! in order: stop accepting, let every connection finish the saves it started and close with
//! 1001, then let the store commit every pending write.

use crate::app::{AppState, Services, app};
use crate::auth::Throttle;
use crate::config::Config;
use crate::http::accounts::create_account;
use crate::live::event::Bus;
use crate::live::hub::Hub;
use crate::metrics::Metrics;
use crate::{demo, store};
use anyhow::Context as _;
use axum::serve::ListenerExt;
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

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let (bus, events) = Bus::new();
    let store = store::open(&config.database, bus, config.heartbeat()).await?;
    let hub = Hub::new(metrics.clone());
    let dispatcher = tokio::spawn(hub.clone().dispatch(events));
    let state = AppState::new(Services {
        store: store.clone(),
        hub,
        config: Arc::new(config),
        throttle: Arc::new(Throttle::new()),
        metrics,
        shutdown: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    bootstrap_admin(&state).await?;
    if state.config.demo {
        demo::seed(&state, listener.local_addr()?).await?;
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
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(token.clone().cancelled_owned())
        .await
        .context("while serving")?;

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
