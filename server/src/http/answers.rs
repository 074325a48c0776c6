//! Answers over HTTP: save one, read them back.

use super::evaluations::{eligible, owned, student};
use super::{ApiJson, Routes, openapi};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::{Revision, check_content, loggable};
use crate::error::{Error, Result};
use crate::store::NewAnswer;
use axum::Json;
use axum::extract::{Path, Query, State};
use invigil_protocol::{Answer, Role, SaveAck, SaveAnswer, StaffAnswer};
use serde::Deserialize;
use std::time::Instant;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/api/evaluations/{id}/answers", list)
        .put("/api/evaluations/{id}/answers/{question_id}", save)
        .get(
            "/api/evaluations/{id}/students/{username}/answers",
            with_sources,
        )
}

#[utoipa::path(
    put,
    path = "/api/evaluations/{id}/answers/{question_id}",
    tag = "answers",
    request_body = SaveAnswer,
    params(("id" = String, Path, description = "The evaluation"), ("question_id" = String, Path, description = "The question")),
    responses(
        (status = 200, description = "Stored (or already newer)", body = SaveAck),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation,
        openapi::PhaseConflict,
        openapi::TooLarge,
        openapi::Blocked
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %loggable(&id), question_id = %loggable(&question_id), user = %caller.user().username))]
pub(crate) async fn save(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, question_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SaveAnswer>,
) -> Result<Json<SaveAck>> {
    if caller.user().role != Role::Student {
        return Err(Error::forbidden("Only students save answers."));
    }
    let revision = Revision::new(body.revision)?;
    check_content(&body.content)?;
    let started = Instant::now();
    let ack = state
        .store
        .save_answer(
            caller.user(),
            NewAnswer {
                evaluation_id: id,
                question_id,
                revision,
                content: body.content,
            },
        )
        .await?;
    state
        .metrics
        .ack_latency
        .observe(started.elapsed().as_secs_f64());
    Ok(Json(ack))
}

/// The query of `GET /api/evaluations/{id}/answers`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Whose {
    /// Staff: the student whose answers to read (a student reads only their own).
    username: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/answers",
    tag = "answers",
    params(("id" = String, Path, description = "The evaluation"), Whose),
    responses(
        (status = 200, description = "The answers held", body = Vec<Answer>),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(whose): Query<Whose>,
) -> Result<Json<Vec<Answer>>> {
    if caller.user().role == Role::Student {
        // A student reads only their own answers; naming someone else must not quietly answer
        // with the caller's own list as if it were theirs.
        if whose
            .username
            .as_deref()
            .is_some_and(|name| name != caller.user().username)
        {
            return Err(Error::forbidden(
                "A student may read only their own answers.",
            ));
        }
        eligible(&state, &caller, &id).await?;
        return Ok(Json(state.store.answers(&id, &caller.user().id).await?));
    }
    owned(&state, &caller, &id).await?;
    let username = whose
        .username
        .ok_or_else(|| Error::bad_request("Name the student: `?username=...`."))?;
    let student = student(&state, &username).await?;
    Ok(Json(state.store.answers(&id, &student.id).await?))
}

/// `GET /api/evaluations/{id}/students/{username}/answers` (owner, admin; an addition to the
/// contract): a student's answers with where each came from (`source`). Kept apart from
/// `GET .../answers?username=`, which answers exactly what the contract lists.
#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/students/{username}/answers",
    tag = "answers",
    params(("id" = String, Path, description = "The evaluation"), ("username" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "A student's answers with where each came from", body = Vec<StaffAnswer>),
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation
    )
)]
pub(crate) async fn with_sources(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
) -> Result<Json<Vec<StaffAnswer>>> {
    owned(&state, &caller, &id).await?;
    let student = student(&state, &username).await?;
    let records = state.store.answer_records(&id, Some(&student.id)).await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| StaffAnswer {
                answer: r.answer,
                source: r.source,
            })
            .collect(),
    ))
}
