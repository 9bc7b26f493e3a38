//! `/api/v1/imports`: submit a CSV file (the body itself, or the multipart field `file`),
//! follow the job, download its report and the template.
//!
//! The file is streamed into the store as it arrives, never held whole: its size is checked
//! against `USHER_IMPORT_MAX_BYTES` as it goes (this route has no fixed body limit, since the
//! configured one is only known at run time), and a file-level problem answers 422 (413 for
//! the size) with nothing kept.

use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Serialize;
use usher_core::import::{template_csv, ImportJob};
use usher_core::service::{Actor, ImportUpload, UploadError, UploadOptions};

use crate::http::auth::ApiCaller;
use crate::http::error::ApiError;
use crate::http::forms::{self, Pairs};
use crate::http::user_json::rfc3339;
use crate::http::AppState;
use crate::imports::{report_line, REPORT_HEADER};

use super::csv_line;

/// A job as `GET /imports/{id}` shows it.
#[derive(Serialize)]
pub struct ImportJson {
    pub id: i64,
    pub state: &'static str,
    pub dry_run: bool,
    pub file_name: Option<String>,
    pub rows: u64,
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub warnings: u64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub submitted_by: Option<String>,
    pub error: Option<String>,
    pub report_url: String,
}

fn time(t: Option<time::OffsetDateTime>) -> Option<String> {
    t.map(|t| rfc3339(Some(t)))
}

impl From<ImportJob> for ImportJson {
    fn from(j: ImportJob) -> Self {
        let c = j.counts;
        Self {
            id: j.id,
            state: j.state.as_str(),
            dry_run: j.dry_run,
            file_name: j.file_name,
            rows: c.rows,
            processed: c.processed,
            created: c.created,
            updated: c.updated,
            unchanged: c.unchanged,
            failed: c.failed,
            warnings: c.warnings,
            created_at: rfc3339(Some(j.created_at)),
            started_at: time(j.started_at),
            finished_at: time(j.finished_at),
            submitted_by: j.actor,
            error: j.error,
            report_url: format!("/api/v1/imports/{}/report.csv", j.id),
        }
    }
}

/// How a file-level refusal answers.
pub fn upload_error(e: UploadError) -> ApiError {
    match e {
        UploadError::File(f) => ApiError::new(
            if f.is_too_large() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            },
            f.code,
            f.message,
        ),
        UploadError::Service(e) => e.into(),
    }
}

/// Receives a file from a request: the multipart field `file`, or the body itself. Shared
/// with the upload page, which reads its other fields first (`before_file`).
pub async fn receive(
    state: &AppState,
    actor: &Actor,
    dry_run: bool,
    request: Request,
) -> Result<ImportJob, ApiError> {
    let max_bytes = state.config.import_max_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes.saturating_add(64 * 1024)) {
        return Err(upload_error(UploadError::File(
            usher_core::import::scan::too_large(max_bytes),
        )));
    }
    let content_type = content_type(request.headers());
    if content_type == "multipart/form-data" {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            if field.name() != Some("file") {
                continue;
            }
            return receive_field(state, actor, dry_run, field).await;
        }
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_file",
            "Send the CSV file in the multipart field `file`.",
        ));
    }
    if !matches!(
        content_type.as_str(),
        "" | "text/csv"
            | "application/csv"
            | "text/plain"
            | "application/vnd.ms-excel"
            | "application/octet-stream"
    ) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the file as text/csv, or as the field `file` of multipart/form-data.",
        ));
    }
    let upload = begin(state, actor, dry_run, None).await?;
    let body = request.into_body().into_data_stream().map(|chunk| {
        chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))
    });
    stream_into(upload, body).await
}

/// Receives the file of a multipart field.
pub async fn receive_field(
    state: &AppState,
    actor: &Actor,
    dry_run: bool,
    mut field: Field<'_>,
) -> Result<ImportJob, ApiError> {
    let file_name = field.file_name().map(str::to_owned);
    let mut upload = begin(state, actor, dry_run, file_name).await?;
    loop {
        match field.chunk().await {
            Ok(Some(bytes)) => upload.write(&bytes).await.map_err(upload_error)?,
            Ok(None) => break,
            Err(e) => {
                upload.discard().await;
                return Err(multipart_error(e));
            }
        }
    }
    let (job, _) = upload.finish().await.map_err(upload_error)?;
    Ok(job)
}

async fn begin(
    state: &AppState,
    actor: &Actor,
    dry_run: bool,
    file_name: Option<String>,
) -> Result<ImportUpload, ApiError> {
    Ok(state
        .usher
        .begin_import(
            Some(actor),
            UploadOptions {
                dry_run,
                file_name,
                max_bytes: state.config.import_max_bytes,
                ..UploadOptions::default()
            },
        )
        .await?)
}

async fn stream_into<S, B>(mut upload: ImportUpload, mut chunks: S) -> Result<ImportJob, ApiError>
where
    S: futures_util::Stream<Item = Result<B, ApiError>> + Unpin,
    B: AsRef<[u8]>,
{
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                upload.discard().await;
                return Err(e);
            }
        };
        upload.write(chunk.as_ref()).await.map_err(upload_error)?;
    }
    let (job, _) = upload.finish().await.map_err(upload_error)?;
    Ok(job)
}

pub fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::new(e.status(), "bad_request", e.body_text())
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn dry_run_param(pairs: &Pairs) -> Result<bool, ApiError> {
    match forms::get(pairs, "dry_run") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_value",
            "dry_run is true or false.",
        )),
    }
}

/// `POST /imports` → 202 with the job.
pub async fn submit(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Query(pairs): Query<Pairs>,
    request: Request,
) -> Result<Response, ApiError> {
    auth.actor.require_admin()?;
    let dry_run = dry_run_param(&pairs)?;
    let job = receive(&state, &auth.actor, dry_run, request).await?;
    let location = format!("/api/v1/imports/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(ImportJson::from(job)),
    )
        .into_response())
}

fn job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such import."))
}

/// `GET /imports/{id}`.
pub async fn get(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<ImportJson>, ApiError> {
    let job = state.usher.import_job(&auth.actor, job_id(&id)?).await?;
    Ok(Json(job.into()))
}

/// `GET /imports`: newest first; `limit` 1–100 (20), `offset`.
pub async fn list(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Query(pairs): Query<Pairs>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut errors = usher_core::FieldErrors::default();
    let limit = forms::number(&pairs, &mut errors, "limit", 1, 100).unwrap_or(20) as u32;
    let offset = forms::number(&pairs, &mut errors, "offset", 0, i64::MAX as u64).unwrap_or(0);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let page = state.usher.import_jobs(&auth.actor, limit, offset).await?;
    let imports: Vec<ImportJson> = page.items.into_iter().map(ImportJson::from).collect();
    Ok(Json(serde_json::json!({
        "imports": imports, "total": page.total, "limit": limit, "offset": offset,
    })))
}

fn csv_response(file_name: &str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /imports/{id}/report.csv`: `line,username,field,severity,code,message`, streamed.
pub async fn report(
    State(state): State<AppState>,
    ApiCaller(auth): ApiCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = state.usher.import_job(&auth.actor, job_id(&id)?).await?;
    let usher = state.usher.clone();
    let actor = auth.actor.clone();
    let header_line = csv_line(&REPORT_HEADER);
    // (header still to send, id of the last line sent, more to come)
    let stream = futures_util::stream::unfold(
        (Some(header_line), 0i64, true),
        move |(header, after, more)| {
            let usher = usher.clone();
            let actor = actor.clone();
            async move {
                if let Some(h) = header {
                    return Some((Ok::<_, std::io::Error>(h), (None, after, more)));
                }
                if !more {
                    return None;
                }
                let page = match usher.import_issues(&actor, job.id, after, 1000).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!("import report stopped: {e}");
                        return Some((
                            Err(std::io::Error::other("report failed")),
                            (None, 0, false),
                        ));
                    }
                };
                let last = page.last()?.0;
                let chunk: String = page.iter().map(|(_, i)| report_line(i)).collect();
                Some((Ok(chunk), (None, last, page.len() == 1000)))
            }
        },
    );
    Ok(csv_response(
        &format!("import-{}-report.csv", job.id),
        Body::from_stream(stream),
    ))
}

/// `GET /imports/template.csv`.
pub async fn template(ApiCaller(auth): ApiCaller) -> Result<Response, ApiError> {
    auth.actor.require_admin()?;
    Ok(csv_response(
        "usher-import-template.csv",
        Body::from(template_csv()),
    ))
}
