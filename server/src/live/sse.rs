//! `GET /api/events`: the same messages as the socket, as server-sent events, for clients that only
//! listen. A stream counts as connected while it is open and never replaces a socket.

use super::conn::{Out, hold, run_writer};
use super::hub::{ConnKind, STREAMS_PER_SESSION};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::Error;
use axum::extract::{Query, State};
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use std::convert::Infallible;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Opens an event stream: 429 `too_many_streams` when the session holds as many as it may.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "live",
    params(super::LiveQuery),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "`unauthenticated`, `session_invalidated` or `session_expired`: no valid session", body = invigil_protocol::ErrorBody),
        (status = 403, description = "`forbidden`: the caller may not do this (or a cookie request from a foreign Origin)", body = invigil_protocol::ErrorBody),
        (status = 429, description = "`too_many_attempts` (sign-ins) or `too_many_streams`; see `Retry-After`", body = invigil_protocol::ErrorBody)
    )
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<super::LiveQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let Some(slot) = state.hub.open_stream(&caller.session.id) else {
        // A stream whose client went away is noticed at its next heartbeat at the latest.
        let retry = state.config.heartbeat().as_secs().max(1)
            + u64::from(state.config.heartbeat().subsec_nanos() > 0);
        return Err(Error::too_many_streams(STREAMS_PER_SESSION, retry));
    };
    let (tx, rx) = mpsc::channel(16);
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
        let _slot = slot;
        hold(
            &state,
            &caller,
            ConnKind::Stream,
            query.additions(),
            |mut reg| {
                let (state, session) = (&state, &caller.session);
                async move {
                    let mut out = Out::Stream(tx);
                    run_writer(state, session, &mut out, &mut reg.rx, &reg.kill, None).await
                }
            },
        )
        .await;
    });
    Ok(Sse::new(ReceiverStream::new(rx)))
}
