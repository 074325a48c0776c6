//! Proctoring's integrity events over HTTP (`POST /api/evaluations/{id}/integrity`), the form of
//! the socket's `INTEGRITY_EVENT` for clients without a socket; both go through [`report`].

use super::{ApiJson, Routes, openapi};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain;
use crate::error::{Error, Result};
use axum::Json;
use axum::extract::{Path, State};
use invigil_protocol::{IntegrityAck, IntegrityEvent, Role, User};

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new().post("/api/evaluations/{id}/integrity", record)
}

/// Checks an integrity event from `user` and stores it; answers once it is durable (or was
/// already stored). A bad event is `bad_request`, a caller who is no student `forbidden`, and a
/// refusal `not_found`, `not_on_access_list` or `not_participating`.
pub async fn report(state: &AppState, user: &User, event: IntegrityEvent) -> Result<IntegrityAck> {
    if user.role != Role::Student {
        return Err(Error::forbidden(
            "Only students report integrity events, from the exam they are sitting.",
        ));
    }
    let event = domain::integrity_event(event)?;
    let event_id = event.event_id.clone();
    state.store.record_integrity(user, event).await?;
    Ok(IntegrityAck { event_id })
}

/// `POST /api/evaluations/{id}/integrity` (the student sitting the evaluation): stores one
/// integrity event, once per `event_id`.
#[utoipa::path(
    post,
    path = "/api/evaluations/{id}/integrity",
    tag = "proctoring",
    request_body = IntegrityEvent,
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "Stored (or stored before, with the same `event_id`)", body = IntegrityAck),
        openapi::BadRequest,
        openapi::NoSession,
        (status = 403, description = "`forbidden` (not a student, or a cookie request from a foreign Origin) or `not_on_access_list`", body = invigil_protocol::ErrorBody),
        openapi::NoEvaluation,
        (status = 409, description = "`not_participating`: the student has not joined this evaluation", body = invigil_protocol::ErrorBody),
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %id, user = %caller.user().username))]
pub(crate) async fn record(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IntegrityEvent>,
) -> Result<Json<IntegrityAck>> {
    if body.evaluation_id != id {
        return Err(Error::bad_request(format!(
            "The event names the evaluation `{}` but was sent to `{id}`.",
            domain::loggable(&body.evaluation_id)
        )));
    }
    Ok(Json(report(&state, caller.user(), body).await?))
}
