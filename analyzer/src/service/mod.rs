//! `fledge serve`: the REST API (axum, JSON, under `/v1`) over the [`Store`] and the
//! [`Supervisor`]. The OpenAPI document is `openapi.yaml` next to this file, served at
//! `/v1/openapi.yaml`.
//!
//! Mutating endpoints need `Authorization: Bearer <token>` (401 otherwise); bodies are
//! limited to [`BODY_LIMIT`] bytes (413). The token is compared in constant time and never
//! logged or echoed.

pub mod metrics;
pub mod notify;
pub mod supervisor;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub use metrics::Metrics;
pub use notify::{Notifier, WebhookFormat};
pub use supervisor::{ANALYSIS, AnalysisRequest, Supervisor, SupervisorError, blocking};

use crate::engine::{AnalysisReport, IntervalReport, parse_time};
use crate::store::{Run, Store};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1 << 20;

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub supervisor: Supervisor,
    pub metrics: Arc<Metrics>,
    token: Arc<str>,
    ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(supervisor: Supervisor, metrics: Arc<Metrics>, token: String) -> AppState {
        AppState {
            supervisor,
            metrics,
            token: token.into(),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Marks the service ready (`/readyz` answers 200), after resuming runs.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }
}

/// An error answer: a status and `{"error": …}` (plus `problems` for invalid configs).
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    Invalid(Vec<crate::config::Problem>),
    NotFound,
    Conflict(String),
    Unauthorized,
    TooLarge,
    Internal(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({ "error": m })),
            AppError::Invalid(p) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": "invalid config", "problems": problems_json(&p) }),
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, json!({ "error": "not found" })),
            AppError::Conflict(m) => (StatusCode::CONFLICT, json!({ "error": m })),
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({ "error": "a valid bearer token is required" }),
            ),
            AppError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("the body is larger than {BODY_LIMIT} bytes") }),
            ),
            AppError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error" }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

impl From<SupervisorError> for AppError {
    fn from(e: SupervisorError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge
        } else {
            AppError::BadRequest(r.body_text())
        }
    }
}

fn problems_json(p: &[crate::config::Problem]) -> Value {
    Value::Array(
        p.iter()
            .map(|p| json!({ "field": p.path, "line": p.line, "message": p.message }))
            .collect(),
    )
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let mutating = Router::new()
        .route("/v1/analyses", post(create_analysis))
        .route("/v1/analyses/{id}/cancel", post(cancel_analysis))
        .route("/v1/configs/validate", post(validate))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/v1/analyses", get(list_analyses))
        .route("/v1/analyses/{id}", get(get_analysis))
        .route("/v1/openapi.yaml", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .merge(mutating)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: Next,
) -> Result<Response, AppError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() || !constant_time_eq(given.as_bytes(), state.token.as_bytes()) {
        return Err(AppError::Unauthorized);
    }
    Ok(next.run(req).await)
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "resuming").into_response()
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAnalysis {
    config: Value,
    start: Option<String>,
    end: Option<String>,
}

fn time(field: &str, s: &Option<String>) -> Result<Option<i64>, AppError> {
    s.as_ref()
        .map(|s| {
            parse_time(s).ok_or_else(|| {
                AppError::BadRequest(format!("{field}: {s:?} is not an RFC 3339 time"))
            })
        })
        .transpose()
}

async fn create_analysis(
    State(state): State<AppState>,
    body: Result<Json<CreateAnalysis>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(body) = body?;
    let config = crate::config::from_json_value(body.config)
        .map_err(|e| AppError::Invalid(e.problems().to_vec()))?;
    let (start, end) = (time("start", &body.start)?, time("end", &body.end)?);
    let request = match (start, end) {
        (Some(start), Some(end)) => {
            if end <= start {
                return Err(AppError::BadRequest("end is not after start".into()));
            }
            if end > crate::source::now_ms() {
                return Err(AppError::BadRequest(
                    "end is in the future; leave it out to analyse in real time".into(),
                ));
            }
            AnalysisRequest::Retrospective { start, end }
        }
        (None, Some(_)) => return Err(AppError::BadRequest("end needs start".into())),
        (start, None) => AnalysisRequest::RealTime {
            start: start.unwrap_or_else(crate::source::now_ms),
        },
    };
    if config.source.is_none() {
        return Err(AppError::BadRequest("the config has no `source:`".into()));
    }
    let id = state.supervisor.create_analysis(&config, request).await?;
    tracing::info!(%id, name = %config.name, "analysis created");
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

fn run_view(run: &Run, intervals: Option<Vec<IntervalReport>>) -> Value {
    let report: Option<AnalysisReport> = run
        .result_json
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let request: Value = serde_json::from_str(&run.request_json).unwrap_or(Value::Null);
    let mut v = json!({
        "id": run.id,
        "kind": run.kind,
        "status": run.status,
        "request": request,
        "verdict": report.as_ref().map(|r| r.verdict),
        "score": report.as_ref().map(|r| r.score),
        "reason": report.as_ref().map(|r| r.reason.clone()),
        "error": run.error,
        "created_at": crate::engine::format_time(run.created_at),
        "updated_at": crate::engine::format_time(run.updated_at),
    });
    if let Some(intervals) = intervals {
        v["intervals"] = serde_json::to_value(intervals).unwrap_or_default();
        v["report"] = serde_json::to_value(&report).unwrap_or_default();
    }
    v
}

async fn list_analyses(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let runs = blocking(state.supervisor.store(), |s: &Store| s.runs(ANALYSIS, &[])).await?;
    Ok(Json(
        json!({ "analyses": runs.iter().map(|r| run_view(r, None)).collect::<Vec<_>>() }),
    ))
}

async fn get_analysis(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let key = id.clone();
    let found = blocking(state.supervisor.store(), move |s: &Store| {
        Ok(match s.run(&key)? {
            Some(run) if run.kind == ANALYSIS => Some((run, s.events(&key)?)),
            _ => None,
        })
    })
    .await?;
    let (run, events) = found.ok_or(AppError::NotFound)?;
    let intervals: Vec<IntervalReport> = events
        .iter()
        .filter(|e| e.kind == "interval")
        .filter_map(|e| serde_json::from_str(&e.payload_json).ok())
        .collect();
    Ok(Json(run_view(&run, Some(intervals))))
}

async fn cancel_analysis(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let key = id.clone();
    let run = blocking(state.supervisor.store(), move |s: &Store| s.run(&key)).await?;
    match run {
        Some(r) if r.kind == ANALYSIS => {}
        _ => return Err(AppError::NotFound),
    }
    if state.supervisor.cancel(&id).await? {
        tracing::info!(%id, "analysis cancelled");
        Ok(Json(json!({ "id": id, "status": "cancelled" })))
    } else {
        Err(AppError::Conflict("the analysis has already ended".into()))
    }
}

async fn validate(body: Result<Json<Value>, JsonRejection>) -> Result<Json<Value>, AppError> {
    let Json(body) = body?;
    let config = body.get("config").cloned().unwrap_or(body);
    match crate::config::from_json_value(config) {
        Ok(c) => Ok(Json(json!({ "valid": true, "name": c.name }))),
        Err(e) => Err(AppError::Invalid(e.problems().to_vec())),
    }
}
