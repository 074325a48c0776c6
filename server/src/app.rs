//! The application state shared by every handler, and the router built from it (separately from
//! serving, so that tests can drive it).

use crate::auth::hashing::Hashing;
use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::http::Routes;
use crate::live::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::{console, http, live};
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
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
    /// The one pool that hashes and verifies passwords.
    pub hashing: Hashing,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Live connections and background writes, awaited at shutdown.
    pub tasks: TaskTracker,
}

/// The whole HTTP surface. Reached over https (an https `--public-url`, or TLS served by the server
/// itself without one), every answer tells browsers to keep to https (HSTS).
pub fn app(state: AppState) -> Router {
    let https = state.config.https();
    let router = live_routes()
        .merge(console::routes())
        .into_router()
        .merge(http::router())
        .with_state(state);
    if https {
        router.layer(axum::middleware::map_response(strict_transport_security))
    } else {
        router
    }
}

/// The live connections' routes.
fn live_routes() -> Routes {
    Routes::new()
        .get("/api/ws", live::ws::upgrade)
        .get("/api/events", live::sse::events)
}

/// Every route [`app`] serves, method and path: what the authorization matrix test walks.
pub fn routes() -> Vec<(axum::http::Method, &'static str)> {
    live_routes()
        .merge(console::routes())
        .merge(http::routes())
        .table()
        .to_vec()
}

/// A year: browsers that saw the server over https keep to https for that long.
const HSTS: &str = "max-age=31536000";

async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    response
}

/// `GET /metrics` alone, without authentication, for `--metrics-listen`.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(http::render_metrics))
        .with_state(state)
}
