//! Evaluations: create, list, read, phases, end times, access lists, join, submit, participants,
//! unblock and the audit log.

use super::{ApiJson, Routes, openapi};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::{self, new_id};
use crate::error::{Error, Result};
use crate::files::AuditFilter;
use crate::store::{EvaluationEdit, EvaluationRecord, NewEvaluation, rules};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use invigil_protocol::{
    AccessList, AuditEntry, CreateEvaluation, EditEvaluation, EndsAtChange, Evaluation,
    EvaluationDetail, Participant, Participation, Phase, PhaseChange, Proctoring, Role, Unblock,
    User,
};

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .post("/api/evaluations", create)
        .get("/api/evaluations", list)
        .get("/api/evaluations/{id}", read)
        .patch("/api/evaluations/{id}", edit)
        .post("/api/evaluations/{id}/phase", set_phase)
        .put("/api/evaluations/{id}/ends_at", set_ends_at)
        .put("/api/evaluations/{id}/access", set_access)
        .get("/api/evaluations/{id}/access", read_access)
        .post("/api/evaluations/{id}/join", join)
        .post("/api/evaluations/{id}/submit", submit)
        .get("/api/evaluations/{id}/participants", participants)
        .post(
            "/api/evaluations/{id}/participants/{username}/unblock",
            unblock,
        )
        .get("/api/evaluations/{id}/audit", audit)
}

fn require_staff(caller: &Caller) -> Result<()> {
    if caller.user().role == Role::Student {
        Err(Error::forbidden("Only professors and admins may do this."))
    } else {
        Ok(())
    }
}

fn require_student(caller: &Caller) -> Result<()> {
    if caller.user().role == Role::Student {
        Ok(())
    } else {
        Err(Error::forbidden("Only students sit evaluations."))
    }
}

/// Loads an evaluation the caller owns or administers: 404 if missing, 403 if not theirs, and for
/// a student 404 (it is not theirs to see this way).
pub async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<EvaluationRecord> {
    let record = state
        .store
        .evaluation(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("There is no evaluation `{id}`.")))?;
    match caller.user().role {
        Role::Admin => Ok(record),
        Role::Professor if record.owner_id == caller.user().id => Ok(record),
        Role::Professor => Err(Error::forbidden(
            "Only the owner of this evaluation or an admin may do this.",
        )),
        Role::Student => Err(Error::forbidden(
            "Only the owner of this evaluation or an admin may do this.",
        )),
    }
}

/// The student an owner or admin names, who must be a student account: 404 otherwise.
pub async fn student(state: &AppState, username: &str) -> Result<User> {
    state
        .store
        .account(username)
        .await?
        .map(|account| account.user)
        .filter(|user| user.role == Role::Student)
        .ok_or_else(|| {
            Error::not_found(format!(
                "There is no student `{}`.",
                domain::loggable(username)
            ))
        })
}

/// A student's participation in an evaluation they are eligible for; 404 otherwise.
pub async fn eligible(state: &AppState, caller: &Caller, id: &str) -> Result<Participation> {
    match state.store.participation(id, caller.user()).await? {
        Some(p) if p.access => Ok(p),
        _ => Err(Error::not_found(format!("There is no evaluation `{id}`."))),
    }
}

#[utoipa::path(
    post,
    path = "/api/evaluations",
    tag = "evaluations",
    request_body = CreateEvaluation,
    responses(
        (status = 201, description = "The evaluation, a draft", body = Evaluation),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(user = %caller.user().username))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateEvaluation>,
) -> Result<(StatusCode, Json<Evaluation>)> {
    require_staff(&caller)?;
    let new = NewEvaluation {
        id: new_id(),
        title: domain::title(&body.title)?,
        questions: domain::questions(body.questions)?,
        ends_at: body.ends_at,
        access: body.access.unwrap_or_default(),
        proctoring: body
            .proctoring
            .map(domain::proctoring_change)
            .transpose()?
            .map_or_else(Proctoring::default, |change| {
                Proctoring::default().apply(change)
            }),
    };
    let evaluation = state.store.create_evaluation(caller.user(), new).await?;
    tracing::info!(evaluation_id = %evaluation.id, "evaluation created");
    Ok((StatusCode::CREATED, Json(evaluation)))
}

#[utoipa::path(
    get,
    path = "/api/evaluations",
    tag = "evaluations",
    responses(
        (status = 200, description = "The evaluations the caller may see", body = Vec<Evaluation>),
        openapi::NoSession
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Evaluation>>> {
    if caller.user().role == Role::Student {
        let views = state.store.student_views(caller.user()).await?;
        Ok(Json(views.into_iter().map(|v| v.evaluation).collect()))
    } else {
        Ok(Json(state.store.evaluations().await?))
    }
}

#[utoipa::path(
    get,
    path = "/api/evaluations/{id}",
    tag = "evaluations",
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The evaluation, with the student's participation for a student", body = EvaluationDetail),
        openapi::NoSession,
        openapi::NoEvaluation
    )
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EvaluationDetail>> {
    let record = state
        .store
        .evaluation(&id)
        .await?
        .ok_or_else(|| Error::not_found(format!("There is no evaluation `{id}`.")))?;
    if caller.user().role != Role::Student {
        return Ok(Json(EvaluationDetail {
            evaluation: record.evaluation,
            participation: None,
        }));
    }
    let participation = eligible(&state, &caller, &id).await?;
    Ok(Json(EvaluationDetail {
        evaluation: rules::student_view(record.evaluation),
        participation: Some(participation),
    }))
}

#[utoipa::path(
    post,
    path = "/api/evaluations/{id}/phase",
    tag = "evaluations",
    request_body = PhaseChange,
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The evaluation in its new phase", body = Evaluation),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation,
        openapi::PhaseConflict,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id), phase = %body.phase))]
pub(crate) async fn set_phase(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PhaseChange>,
) -> Result<Json<Evaluation>> {
    owned(&state, &caller, &id).await?;
    let phase = Phase::parse(&body.phase).ok_or_else(|| {
        Error::bad_request(format!(
            "`{}` is not a phase: use draft, in_progress, grading or finished.",
            body.phase
        ))
    })?;
    let evaluation = state.store.set_phase(&id, phase, caller.user()).await?;
    tracing::info!("phase changed");
    Ok(Json(evaluation))
}

#[utoipa::path(
    put,
    path = "/api/evaluations/{id}/ends_at",
    tag = "evaluations",
    request_body = EndsAtChange,
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The evaluation with its new end", body = Evaluation),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation,
        openapi::PhaseConflict,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id)))]
pub(crate) async fn set_ends_at(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndsAtChange>,
) -> Result<Json<Evaluation>> {
    owned(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .set_ends_at(&id, body.ends_at, caller.user())
            .await?,
    ))
}

#[utoipa::path(
    put,
    path = "/api/evaluations/{id}/access",
    tag = "evaluations",
    request_body = AccessList,
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The access list as stored", body = AccessList),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id), students = body.students.len()))]
pub(crate) async fn set_access(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccessList>,
) -> Result<Json<AccessList>> {
    owned(&state, &caller, &id).await?;
    if body.students.len() > domain::MAX_ACCESS_LIST {
        return Err(Error::bad_request(format!(
            "An access list may hold at most {} names; this one has {}. Nothing was changed.",
            domain::MAX_ACCESS_LIST,
            body.students.len()
        )));
    }
    let mut wanted: Vec<String> = body.students.iter().map(|s| s.trim().to_owned()).collect();
    wanted.sort();
    wanted.dedup();
    let users = state.store.users_named(&wanted).await?;
    let bad: Vec<&str> = wanted
        .iter()
        .filter(|name| {
            !users
                .iter()
                .any(|u| &u.username == *name && u.role == Role::Student)
        })
        .map(String::as_str)
        .collect();
    if !bad.is_empty() {
        // Name them all, but no name longer than a username can be.
        let named: Vec<_> = bad.iter().map(|n| domain::loggable(n)).collect();
        return Err(Error::bad_request(format!(
            "These are not students of this server: {}. Nothing was changed.",
            named.join(", ")
        )));
    }
    let students = state
        .store
        .set_access_list(&id, &users, caller.user())
        .await?;
    Ok(Json(AccessList { students }))
}

#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/access",
    tag = "evaluations",
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The access list", body = AccessList),
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation
    )
)]
pub(crate) async fn read_access(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccessList>> {
    owned(&state, &caller, &id).await?;
    Ok(Json(AccessList {
        students: state.store.access_list(&id).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/api/evaluations/{id}/join",
    tag = "participation",
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The student's participation", body = Participation),
        openapi::NoSession,
        (status = 403, description = "`forbidden` (not a student) or `not_on_access_list`", body = invigil_protocol::ErrorBody),
        openapi::NoEvaluation,
        openapi::PhaseConflict,
        openapi::Blocked
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id), user = %caller.user().username))]
pub(crate) async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Participation>> {
    require_student(&caller)?;
    eligible_or_refused(&state, &caller, &id).await?;
    Ok(Json(state.store.join(&id, caller.user()).await?))
}

#[utoipa::path(
    post,
    path = "/api/evaluations/{id}/submit",
    tag = "participation",
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The participation, submitted", body = Participation),
        openapi::NoSession,
        (status = 403, description = "`forbidden` (not a student) or `not_on_access_list`", body = invigil_protocol::ErrorBody),
        openapi::NoEvaluation,
        openapi::PhaseConflict,
        openapi::Blocked
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id), user = %caller.user().username))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Participation>> {
    require_student(&caller)?;
    eligible_or_refused(&state, &caller, &id).await?;
    Ok(Json(state.store.submit(&id, caller.user()).await?))
}

/// For join and submit: a missing evaluation is 404, one the student is not eligible for 403.
async fn eligible_or_refused(state: &AppState, caller: &Caller, id: &str) -> Result<()> {
    match state.store.participation(id, caller.user()).await? {
        None => Err(Error::not_found(format!("There is no evaluation `{id}`."))),
        Some(p) if !p.access => Err(rules::reject_error(
            invigil_protocol::RejectCode::NotOnAccessList,
        )),
        Some(_) => Ok(()),
    }
}

#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/participants",
    tag = "participation",
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "One row per student on the list or who joined", body = Vec<Participant>),
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation
    )
)]
pub(crate) async fn participants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Participant>>> {
    owned(&state, &caller, &id).await?;
    let rows = state.store.participants(&id).await?;
    Ok(Json(
        rows.iter().map(|row| state.hub.participant(row)).collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/api/evaluations/{id}/participants/{username}/unblock",
    tag = "participation",
    request_body = Unblock,
    params(("id" = String, Path, description = "The evaluation"), ("username" = String, Path, description = "The user")),
    responses(
        (status = 200, description = "The participation, unblocked", body = Participation),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation,
        openapi::PhaseConflict,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id), username = %domain::loggable(&username)))]
pub(crate) async fn unblock(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, username)): Path<(String, String)>,
    ApiJson(body): ApiJson<Unblock>,
) -> Result<Json<Participation>> {
    owned(&state, &caller, &id).await?;
    // A name no account can have takes part in nothing. Answered here, so that the store's
    // message never echoes a path of any length, and a byte PostgreSQL cannot take (NUL) is
    // not a 500.
    if domain::Username::parse(&username).is_err() {
        return Err(Error::not_found(format!(
            "No student `{}` takes part in this evaluation.",
            domain::loggable(&username)
        )));
    }
    let note = body.note.map(|n| n.chars().take(1000).collect());
    let participation = state
        .store
        .unblock(&id, &username, note, caller.user())
        .await?;
    tracing::info!("student unblocked");
    Ok(Json(participation))
}

/// The audit log, oldest first; `?kind=&username=&actor=&since=&until=` keep only the matching
/// entries (an addition to the contract).
#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/audit",
    tag = "participation",
    params(("id" = String, Path, description = "The evaluation"), AuditFilter),
    responses(
        (status = 200, description = "The audit log, oldest first", body = Vec<AuditEntry>),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation
    )
)]
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    filter: std::result::Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>> {
    let Query(filter) = super::exports::audit_filter(filter)?;
    owned(&state, &caller, &id).await?;
    let mut entries = state.store.audit(&id).await?;
    entries.retain(|e| filter.keeps(e));
    Ok(Json(entries))
}

/// `PATCH /api/evaluations/{id}` (owner, admin; an addition to the contract, and the contract's
/// way to change `proctoring`): changes the title, the questions (only while a draft: 409
/// `conflict` otherwise), the end time, the access mode or the proctoring settings.
#[utoipa::path(
    patch,
    path = "/api/evaluations/{id}",
    tag = "evaluations",
    request_body = EditEvaluation,
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "The evaluation as changed", body = Evaluation),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation,
        openapi::PhaseConflict,
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %domain::loggable(&id)))]
pub(crate) async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EditEvaluation>,
) -> Result<Json<Evaluation>> {
    owned(&state, &caller, &id).await?;
    let edit = EvaluationEdit {
        title: body.title.as_deref().map(domain::title).transpose()?,
        questions: body.questions.map(domain::questions).transpose()?,
        ends_at: body.ends_at,
        access: body.access,
        proctoring: body.proctoring.map(domain::proctoring_change).transpose()?,
    };
    let evaluation = state
        .store
        .edit_evaluation(&id, edit, caller.user())
        .await?;
    tracing::info!("evaluation edited");
    Ok(Json(evaluation))
}
