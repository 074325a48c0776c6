//! The application state shared by every handler, and the router built from it (separately from
//! serving, so that tests can drive it).

use crate::auth::Throttle;
use crate::config::Config;
use crate::live::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::{console, http, live};
use axum::Router;
use axum::routing::get;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything a handler may need, behind one `Arc`: every request and every live connection holds
/// a copy, and one pointer is cheaper to clone and to keep than seven.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every handler.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Services {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// This node's live connections.
    pub hub: Hub,
    /// Configuration.
    pub config: Arc<Config>,
    /// Sign-in throttling.
    pub throttle: Arc<Throttle>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Live connections and background writes, awaited at shutdown.
    pub tasks: TaskTracker,
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/ws", get(live::ws::upgrade))
        .route("/api/events", get(live::sse::events))
        .merge(console::router())
        .merge(http::router())
        .with_state(state)
}
