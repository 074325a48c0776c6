//! `GET /api/events`: the same messages as the socket, as server-sent events, for clients that only
//! listen. A stream counts as connected while it is open and never replaces a socket.

use super::conn::{Out, hold, run_writer};
use super::hub::ConnKind;
use crate::app::AppState;
use crate::auth::Caller;
use axum::extract::{Query, State};
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use std::convert::Infallible;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Opens an event stream.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<super::LiveQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = mpsc::channel(16);
    let tasks = state.tasks.clone();
    tasks.spawn(async move {
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
    Sse::new(ReceiverStream::new(rx))
}
