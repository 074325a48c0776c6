//! Proctoring over HTTP: integrity events (`POST /api/evaluations/{id}/integrity`, the form of
//! the socket's `INTEGRITY_EVENT` for clients without a socket; both go through [`report`]), a
//! student's timeline of them for staff (`GET` on the same path), and accommodations (the
//! settings one student is exempt from).

use super::evaluations::{owned, student};
use super::{ApiJson, Routes, openapi};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain;
use crate::error::{Error, Result};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use invigil_protocol::{
    Accommodation, IntegrityAck, IntegrityEvent, IntegrityRecord, Role, SetAccommodation, User,
};
use serde::Deserialize;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/api/evaluations/{id}/integrity", record)
        .get("/api/evaluations/{id}/integrity", timeline)
        .put(
            "/api/evaluations/{id}/participants/{username}/accommodation",
            set_accommodation,
        )
        .get("/api/evaluations/{id}/accommodations", accommodations)
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
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id), user = %caller.user().username))]
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

/// The query of `GET /api/evaluations/{id}/integrity`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Whose {
    /// The student whose events to read.
    username: Option<String>,
}

/// `GET /api/evaluations/{id}/integrity?username=` (owner, admin; an addition to the contract):
/// one student's integrity events in the order the server stored them, each with the device's
/// time (`at`) and the server's receipt time (`received_at`).
#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/integrity",
    tag = "proctoring",
    params(("id" = String, Path, description = "The evaluation"), Whose),
    responses(
        (status = 200, description = "The student's events, oldest first", body = Vec<IntegrityRecord>),
        (status = 400, description = "`bad_request`: no `username` given", body = invigil_protocol::ErrorBody),
        openapi::NoSession,
        (status = 403, description = "`forbidden`: the caller may not do this", body = invigil_protocol::ErrorBody),
        (status = 404, description = "`not_found`: no such evaluation, or no such student", body = invigil_protocol::ErrorBody)
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id)))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    whose: std::result::Result<Query<Whose>, QueryRejection>,
) -> Result<Json<Vec<IntegrityRecord>>> {
    let Query(whose) = whose.map_err(|e| Error::bad_request(e.body_text()))?;
    owned(&state, &caller, &id).await?;
    let username = whose
        .username
        .ok_or_else(|| Error::bad_request("Name the student: `?username=...`."))?;
    let student = student(&state, &username).await?;
    Ok(Json(
        state.store.integrity_timeline(&id, &student.id).await?,
    ))
}

/// `PUT /api/evaluations/{id}/participants/{username}/accommodation` (owner, admin; an addition
/// to the contract): exempts one student from the settings named in `exempt` (an empty list
/// removes the accommodation), before or during the exam, with a reason kept for staff. The
/// student hears of it as `EVALUATION_UPDATE` `accommodation_changed`, whose participation's
/// `proctoring_exempt` lists the settings; the board's row lists them too, never the reason.
#[utoipa::path(
    put,
    path = "/api/evaluations/{id}/participants/{username}/accommodation",
    tag = "proctoring",
    request_body = SetAccommodation,
    params(("id" = String, Path, description = "The evaluation"), ("username" = String, Path, description = "The student")),
    responses(
        (status = 200, description = "The accommodation as stored (an empty `exempt`: removed)", body = Accommodation),
        (status = 400, description = "`bad_request`: an unknown setting, or a reason empty or over 500 characters", body = invigil_protocol::ErrorBody),
        openapi::NoSession,
        openapi::Forbidden,
        (status = 404, description = "`not_found`: no such evaluation, or no such student", body = invigil_protocol::ErrorBody),
        (status = 409, description = "`conflict`: the evaluation is finished", body = invigil_protocol::ErrorBody),
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id), username = %domain::loggable(&username)))]
pub(crate) async fn set_accommodation(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetAccommodation>,
) -> Result<Json<Accommodation>> {
    owned(&state, &caller, &id).await?;
    let (exempt, reason) = domain::accommodation(body)?;
    let student = student(&state, &username).await?;
    let accommodation = state
        .store
        .set_accommodation(&id, &student, exempt, reason, caller.user())
        .await?;
    tracing::info!(exempt = ?accommodation.exempt, "accommodation set");
    Ok(Json(accommodation))
}

/// `GET /api/evaluations/{id}/accommodations` (owner, admin; an addition to the contract): every
/// student's accommodation, with its reason, by username.
#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/accommodations",
    tag = "proctoring",
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The accommodations, by username", body = Vec<Accommodation>),
        openapi::NoSession,
        (status = 403, description = "`forbidden`: the caller may not do this", body = invigil_protocol::ErrorBody),
        (status = 404, description = "`not_found`: no such evaluation", body = invigil_protocol::ErrorBody)
    )
)]
pub(crate) async fn accommodations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Accommodation>>> {
    owned(&state, &caller, &id).await?;
    Ok(Json(state.store.accommodations(&id).await?))
}
