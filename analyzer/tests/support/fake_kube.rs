//! A fake Kubernetes API server for the router tests (no real one can run on this machine).
//! It keeps objects in memory, checks what matters to us as the real one does (the bearer
//! token, `application/merge-patch+json`, the `resourceVersion` precondition, errors as
//! `Status` objects), applies merge patches by RFC 7386, and records every request.
//!
//! Included by path from analyzer/tests/kube_router.rs and tests/kube_rollout.rs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub auth: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

#[derive(Default)]
pub struct Fake {
    pub objects: HashMap<String, Value>,
    pub requests: Vec<Recorded>,
    pub token: Option<String>,
    /// Before the next PATCH, change the object as another writer would (a 409 follows).
    pub race_next_patch: bool,
}

pub type Shared = Arc<Mutex<Fake>>;

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

/// RFC 7386: objects merge key by key, null deletes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn handle(
    State(fake): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut f = fake.lock().unwrap();
    let path = uri.path().to_owned();
    f.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        auth: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).ok(),
    });
    if let Some(t) = &f.token
        && header("authorization") != Some(format!("Bearer {t}"))
    {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let race = f.race_next_patch && method == Method::PATCH;
    let Some(object) = f.objects.get_mut(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{path} not found"),
        );
    };
    match method {
        Method::GET => axum::Json(object.clone()).into_response(),
        Method::PATCH => {
            if header("content-type").as_deref() != Some("application/merge-patch+json") {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    "wrong patch type",
                );
            }
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON");
            };
            let bump = |o: &mut Value| {
                let rv: u64 = o["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                o["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
            };
            if race {
                bump(object);
            }
            if let Some(rv) = patch.pointer("/metadata/resourceVersion")
                && Some(rv) != object.pointer("/metadata/resourceVersion")
            {
                let r = status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
                f.race_next_patch = false;
                return r;
            }
            merge(object, &patch);
            bump(object);
            axum::Json(object.clone()).into_response()
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not here",
        ),
    }
}

pub struct Server {
    pub url: String,
    pub fake: Shared,
}

impl Server {
    pub async fn start(objects: &[(&str, Value)], token: Option<&str>) -> Server {
        let fake: Shared = Arc::new(Mutex::new(Fake {
            objects: objects
                .iter()
                .map(|(p, o)| ((*p).to_owned(), o.clone()))
                .collect(),
            token: token.map(str::to_owned),
            ..Fake::default()
        }));
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { url, fake }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.fake.lock().unwrap().requests)
    }

    pub fn object(&self, path: &str) -> Value {
        self.fake.lock().unwrap().objects[path].clone()
    }

    pub fn edit(&self, path: &str, f: impl FnOnce(&mut Value)) {
        f(self.fake.lock().unwrap().objects.get_mut(path).unwrap())
    }
}
