//! `fledge serve`: the REST API (axum, JSON, under `/v1`) over the [`Store`] and the
//! [`Supervisor`]. The OpenAPI document is `openapi.yaml` next to this file, served at
//! `/v1/openapi.yaml`.
//!
//! Mutating endpoints need `Authorization: Bearer <token>` (401 otherwise); bodies are
//! limited to [`BODY_LIMIT`] bytes (413). The token is compared in constant time and never
//! logged or echoed.

pub mod metrics;
pub mod notify;
pub mod rollouts;
pub mod supervisor;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub use metrics::Metrics;
pub use notify::{Notifier, WebhookFormat};
pub use rollouts::{GateRefusal, ROLLOUT};
pub use supervisor::{ANALYSIS, AnalysisRequest, Supervisor, SupervisorError, blocking};

use crate::rollout::Command;

use crate::engine::{AnalysisReport, IntervalReport, parse_time};
use crate::store::{Run, RunStatus, Store};

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
    /// Whether a rollout may use an `exec` router (it runs a command on this host).
    allow_exec_router: bool,
}

impl AppState {
    pub fn new(supervisor: Supervisor, metrics: Arc<Metrics>, token: String) -> AppState {
        AppState {
            supervisor,
            metrics,
            token: token.into(),
            ready: Arc::new(AtomicBool::new(false)),
            allow_exec_router: false,
        }
    }

    /// Lets rollouts use `type: exec` routers (off by default: they run commands on this
    /// host as fledge's user).
    pub fn allow_exec_router(mut self, yes: bool) -> AppState {
        self.allow_exec_router = yes;
        self
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

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }
}

/// One route of the API.
pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
    /// Needs the bearer token (every method but GET).
    pub mutating: bool,
    pub handler: MethodRouter<AppState>,
}

fn route<H: Handler<T, AppState>, T: 'static>(verb: Verb, path: &'static str, h: H) -> Route {
    let handler = match verb {
        Verb::Get => get(h),
        Verb::Post => post(h),
    };
    Route {
        verb,
        path,
        mutating: verb != Verb::Get,
        handler,
    }
}

fn cancel_route(path: &'static str, kind: &'static str) -> Route {
    let h = move |s: State<AppState>, p: Path<String>| cancel_run(s, p, kind);
    route(Verb::Post, path, h)
}

fn gate_route(path: &'static str, command: Command) -> Route {
    let h = move |s: State<AppState>, p: Path<String>| gate(s, p, command);
    route(Verb::Post, path, h)
}

/// Every route the API serves: the router is built from this list, and a test checks it
/// against `openapi.yaml`.
pub fn routes() -> Vec<Route> {
    use Verb::{Get, Post};
    vec![
        route(Get, "/v1/analyses", list_analyses),
        route(Post, "/v1/analyses", create_analysis),
        route(Get, "/v1/analyses/{id}", get_analysis),
        cancel_route("/v1/analyses/{id}/cancel", ANALYSIS),
        route(Post, "/v1/configs/validate", validate),
        route(Get, "/v1/rollouts", list_rollouts),
        route(Post, "/v1/rollouts", create_rollout),
        route(Get, "/v1/rollouts/{id}", get_rollout),
        cancel_route("/v1/rollouts/{id}/cancel", ROLLOUT),
        gate_route("/v1/rollouts/{id}/promote", Command::Promote),
        gate_route("/v1/rollouts/{id}/abort", Command::Abort),
        gate_route("/v1/rollouts/{id}/resume", Command::Resume),
        route(Get, "/v1/openapi.yaml", openapi),
        route(Get, "/healthz", || async { "ok" }),
        route(Get, "/readyz", readyz),
        route(Get, "/metrics", render_metrics),
    ]
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let (mut public, mut mutating) = (Router::new(), Router::new());
    for r in routes() {
        if r.mutating {
            mutating = mutating.route(r.path, r.handler);
        } else {
            public = public.route(r.path, r.handler);
        }
    }
    let mutating =
        mutating.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    public
        .merge(mutating)
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Counts every routed request and its latency, by method and route (the route's pattern,
/// never the ids in it).
async fn track(
    State(state): State<AppState>,
    path: MatchedPath,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_owned();
    let t0 = std::time::Instant::now();
    let resp = next.run(req).await;
    let route = path.as_str();
    state
        .metrics
        .http_seconds
        .get_or_create(&metrics::labels(&[("method", &method), ("route", route)]))
        .observe(t0.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .get_or_create(&metrics::labels(&[
            ("method", &method),
            ("route", route),
            ("status", resp.status().as_str()),
        ]))
        .inc();
    resp
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

async fn render_metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let counts = blocking(state.supervisor.store(), |s: &Store| {
        s.count_by_status(ROLLOUT)
    })
    .await?;
    for status in [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        let n = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        state
            .metrics
            .rollouts
            .get_or_create(&metrics::labels(&[("status", status.as_str())]))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response())
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

async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    kind: &'static str,
) -> Result<Json<Value>, AppError> {
    let key = id.clone();
    let run = blocking(state.supervisor.store(), move |s: &Store| s.run(&key)).await?;
    match run {
        Some(r) if r.kind == kind => {}
        _ => return Err(AppError::NotFound),
    }
    if state.supervisor.cancel(&id, kind).await? {
        tracing::info!(%id, kind, "cancelled");
        Ok(Json(json!({ "id": id, "status": "cancelled" })))
    } else {
        Err(AppError::Conflict(format!("the {kind} has already ended")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRollout {
    config: Value,
}

async fn create_rollout(
    State(state): State<AppState>,
    body: Result<Json<CreateRollout>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(body) = body?;
    let no_rollout = || {
        AppError::BadRequest(
            "config.rollout: the config has no `rollout:` section (the router and the steps)"
                .into(),
        )
    };
    // Before validating: without `rollout:` other fields (a lifetime) would be named first.
    if body.config.get("rollout").is_none_or(Value::is_null) {
        return Err(no_rollout());
    }
    let config = crate::config::from_json_value(body.config)
        .map_err(|e| AppError::Invalid(e.problems().to_vec()))?;
    let Some(rollout) = &config.rollout else {
        return Err(no_rollout());
    };
    if config.source.is_none() {
        return Err(AppError::BadRequest(
            "config.source: a rollout's analyses need a `source:`".into(),
        ));
    }
    if matches!(rollout.router, crate::rollout::RouterConfig::Exec { .. })
        && !state.allow_exec_router
    {
        return Err(AppError::BadRequest(
            "config.rollout.router: an exec router runs a command on the server; start fledge \
             serve with --allow-exec-router to accept one"
                .into(),
        ));
    }
    crate::rollout::router::build(&rollout.router)
        .map_err(|e| AppError::BadRequest(format!("config.rollout.router: {e}")))?;
    crate::source::build(&config)
        .map_err(|e| AppError::BadRequest(format!("config.source: {e}")))?;
    let id = state.supervisor.create_rollout(&config).await?;
    tracing::info!(%id, name = %config.name, "rollout created");
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn list_rollouts(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let runs = blocking(state.supervisor.store(), |s: &Store| s.runs(ROLLOUT, &[])).await?;
    Ok(Json(json!({
        "rollouts": runs.iter().map(rollouts::summary_view).collect::<Vec<_>>()
    })))
}

async fn get_rollout(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let found = blocking(state.supervisor.store(), move |s: &Store| {
        Ok(match s.run(&id)? {
            Some(run) if run.kind == ROLLOUT => Some((s.events(&id)?, run)),
            _ => None,
        })
    })
    .await?;
    let (events, run) = found.ok_or(AppError::NotFound)?;
    Ok(Json(rollouts::full_view(&run, &events)))
}

/// A manual gate: 202 once the command is committed (it is applied by the rollout's driver
/// within moments), 409 when it cannot apply, 404 for an unknown id.
async fn gate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    command: Command,
) -> Result<Response, AppError> {
    let word = rollouts::command_word(command);
    match state.supervisor.gate(&id, command).await? {
        Ok(seq) => {
            tracing::info!(%id, command = word, "manual command accepted");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "id": id, "command": word, "accepted": true, "seq": seq })),
            )
                .into_response())
        }
        Err(GateRefusal::NotFound) => Err(AppError::NotFound),
        Err(GateRefusal::Conflict(m)) => Err(AppError::Conflict(m)),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_served_route_is_in_openapi_yaml_and_every_documented_one_is_served() {
        let doc: Value = serde_saphyr::from_str(OPENAPI).expect("openapi.yaml parses");
        let paths = doc["paths"].as_object().expect("paths");
        let documented: BTreeSet<(String, String)> = paths
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .filter(|m| ["get", "post", "put", "patch", "delete"].contains(&m.as_str()))
                    .map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = routes()
            .iter()
            .map(|r| (r.verb.as_str().to_owned(), r.path.to_owned()))
            .collect();
        assert_eq!(served, documented);
        for r in routes() {
            let op = &doc["paths"][r.path][r.verb.as_str().to_lowercase()];
            assert_eq!(
                op.get("security").is_some(),
                r.mutating,
                "{} {}: security",
                r.verb.as_str(),
                r.path
            );
            if r.mutating {
                assert!(op["responses"].get("401").is_some(), "{}: 401", r.path);
            }
            if r.path.contains("{id}") {
                assert!(op["responses"].get("404").is_some(), "{}: 404", r.path);
            }
        }
    }
}
