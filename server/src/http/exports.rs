//! Files in and out of an evaluation (owner and admins): the answers and the audit log as CSV, and
//! imports of the answers-export file the desktop app writes when a session ended before its
//! answers reached the server.

use super::evaluations::owned;
use super::{ApiBytes, Routes, openapi};
use crate::app::AppState;
use crate::auth::Caller;
use crate::domain::{OverrideReason, loggable};
use crate::error::{Error, Result};
use crate::files::{self, AuditFilter};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use invigil_protocol::ImportReport;
use serde::Deserialize;

/// The routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/api/evaluations/{id}/exports/answers.csv", answers_csv)
        .get("/api/evaluations/{id}/exports/audit.csv", audit_csv)
        .post("/api/evaluations/{id}/imports/answers", import_answers)
}

/// The audit filters of a query string, or a contract error naming what is wrong.
pub fn audit_filter(
    query: std::result::Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Query<AuditFilter>> {
    query.map_err(|e| {
        Error::bad_request(format!(
            "The filters are not valid ({}): use kind, username, actor, since and until (times as \
             2026-11-22T09:00:00.000Z).",
            e.body_text()
        ))
    })
}

/// A CSV download.
fn csv_download(name: &str, body: String) -> Result<Response> {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(Error::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/exports/answers.csv",
    tag = "files",
    params(("id" = String, Path, description = "The evaluation")),
    responses(
        (status = 200, description = "Every stored answer, one row each", content_type = "text/csv", body = String),
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %loggable(&id)))]
pub(crate) async fn answers_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let record = owned(&state, &caller, &id).await?;
    let participants = state.store.participants(&id).await?;
    let records = state.store.answer_records(&id, None).await?;
    let body = files::answers_csv(&record.evaluation, &participants, &records)?;
    csv_download(
        &files::download_name(&record.evaluation.title, "answers.csv"),
        body,
    )
}

#[utoipa::path(
    get,
    path = "/api/evaluations/{id}/exports/audit.csv",
    tag = "files",
    params(("id" = String, Path, description = "The evaluation"), AuditFilter),
    responses(
        (status = 200, description = "The audit log, filtered", content_type = "text/csv", body = String),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %loggable(&id)))]
pub(crate) async fn audit_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    filter: std::result::Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Response> {
    let Query(filter) = audit_filter(filter)?;
    let record = owned(&state, &caller, &id).await?;
    let entries: Vec<_> = state
        .store
        .audit(&id)
        .await?
        .into_iter()
        .filter(|e| filter.keeps(e))
        .collect();
    csv_download(
        &files::download_name(&record.evaluation.title, "audit.csv"),
        files::audit_csv(&entries)?,
    )
}

/// The query of an import: `override`, the reason for importing although the student is blocked
/// or has handed in.
#[derive(Debug, Deserialize)]
pub(crate) struct ImportQuery {
    #[serde(rename = "override")]
    overriding: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/evaluations/{id}/imports/answers",
    tag = "files",
    request_body(content = String, content_type = "application/json", description = "The desktop app's answers-export file"),
    params(
        ("id" = String, Path, description = "The evaluation"),
        ("override" = Option<String>, Query, description = "Why the file is imported although the student is blocked or has handed in (audited as `import_overridden`)")
    ),
    responses(
        (status = 200, description = "What was stored and what was skipped, and why", body = ImportReport),
        openapi::BadRequest,
        openapi::NoSession,
        openapi::Forbidden,
        openapi::NoEvaluation,
        (status = 409, description = "`not_participating`: the student has handed in (without `override`)", body = invigil_protocol::ErrorBody),
        (status = 423, description = "`blocked`: the student is blocked (without `override`)", body = invigil_protocol::ErrorBody),
        openapi::TooLarge
    )
)]
#[tracing::instrument(skip_all, fields(evaluation_id = %loggable(&id), bytes = body.len()))]
pub(crate) async fn import_answers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: std::result::Result<Query<ImportQuery>, QueryRejection>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ImportReport>> {
    owned(&state, &caller, &id).await?;
    let Query(query) = query.map_err(|e| {
        Error::bad_request(format!(
            "The query is not valid ({}): the only parameter is `override`, a reason.",
            e.body_text()
        ))
    })?;
    let overriding = query
        .overriding
        .as_deref()
        .map(OverrideReason::parse)
        .transpose()?;
    let (mut import, mut skipped) = files::parse_device_export(&body, &id)?;
    import.overriding = overriding;
    let mut report = state
        .store
        .import_answers(&id, import, caller.user())
        .await?;
    skipped.append(&mut report.skipped);
    report.skipped = skipped;
    tracing::info!(
        stored = report.stored.len(),
        skipped = report.skipped.len(),
        username = %report.username,
        "answers imported"
    );
    Ok(Json(report))
}
