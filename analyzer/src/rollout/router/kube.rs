//! Kubernetes routers: weights kept in a custom resource, set through the API server.
//!
//! Three resource kinds are supported, each one object named in the config:
//!
//! - Gateway API `HTTPRoute` (`gateway.networking.k8s.io`): `spec.rules[].backendRefs[].weight`;
//! - SMI `TrafficSplit` (`split.smi-spec.io`): `spec.backends[].weight`;
//! - Istio `VirtualService` (`networking.istio.io`): `spec.http[].route[].weight`.
//!
//! Every rule (route) that refers to both the baseline and the canary is managed: the canary
//! gets weight w and the baseline 100 − w. Rules that refer to only one of them (say a
//! header-matched route to the canary) are left alone. A read is a GET of the object; a write
//! is a GET and then a JSON merge patch (RFC 7386, `application/merge-patch+json`) of the
//! managed array with the object's `resourceVersion`, so a concurrent change by someone else
//! is a 409 and is retried on the fresh object rather than overwritten.
//!
//! Credentials: a bearer token read from a file (again on every request, as projected
//! service-account tokens rotate) or an environment variable, or the pod's service account
//! (`/var/run/secrets/kubernetes.io/serviceaccount/`) when running in a cluster. The token is
//! never logged or put in an error.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{BoxFuture, RouterError, TrafficRouter};
use crate::source::error_chain as chain;

/// The directory a pod's service account is mounted at.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Which resource holds the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeKind {
    /// Gateway API `HTTPRoute`.
    GatewayApi,
    /// SMI `TrafficSplit`.
    Smi,
    /// Istio `VirtualService`.
    Istio,
}

impl KubeKind {
    /// The resource's kind, as Kubernetes spells it.
    pub fn kind(self) -> &'static str {
        match self {
            KubeKind::GatewayApi => "HTTPRoute",
            KubeKind::Smi => "TrafficSplit",
            KubeKind::Istio => "VirtualService",
        }
    }

    fn group(self) -> &'static str {
        match self {
            KubeKind::GatewayApi => "gateway.networking.k8s.io",
            KubeKind::Smi => "split.smi-spec.io",
            KubeKind::Istio => "networking.istio.io",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            KubeKind::GatewayApi => "httproutes",
            KubeKind::Smi => "trafficsplits",
            KubeKind::Istio => "virtualservices",
        }
    }

    /// The API version used when the config gives none.
    pub fn default_version(self) -> &'static str {
        match self {
            KubeKind::GatewayApi => "v1",
            KubeKind::Smi => "v1alpha2",
            KubeKind::Istio => "v1beta1",
        }
    }

    /// The array under `spec` whose entries are rules, and the field of a rule listing its
    /// weighted destinations (`None`: the array itself is the list of destinations).
    fn layout(self) -> (&'static str, Option<&'static str>) {
        match self {
            KubeKind::GatewayApi => ("rules", Some("backendRefs")),
            KubeKind::Smi => ("backends", None),
            KubeKind::Istio => ("http", Some("route")),
        }
    }
}

/// Where the bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenSource {
    /// A file holding the token, read on every request.
    File(PathBuf),
    /// An environment variable holding the token.
    Env(String),
}

/// The part of a Kubernetes router's config shared by the three kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeRouterConfig {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The baseline's backend: a Service name (HTTPRoute, TrafficSplit) or destination host
    /// (VirtualService).
    pub baseline: String,
    /// The canary's backend, as `baseline`.
    pub canary: String,
    /// VirtualService only: the destination subsets, when baseline and canary are subsets of
    /// one host (`baseline` and `canary` then both name that host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_subset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_subset: Option<String>,
    /// The API server, `https://host:port`. Default: the cluster's own
    /// (`KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<String>,
    /// The resource's API version (default v1 for HTTPRoute, v1alpha2 for TrafficSplit,
    /// v1beta1 for VirtualService).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `{file: PATH}` or `{env: NAME}`. Default: the service account's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenSource>,
    /// A PEM file of the CA that signed the API server's certificate. Default: the service
    /// account's `ca.crt` when in a cluster, else the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Per request (default 10s).
    #[serde(default = "default_timeout")]
    pub timeout: crate::config::Duration,
}

fn default_timeout() -> crate::config::Duration {
    crate::config::Duration::from_secs(10)
}

impl KubeRouterConfig {
    /// Semantic problems as (field, message), for the config validator.
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (field, value) in [
            ("namespace", &self.namespace),
            ("name", &self.name),
            ("baseline", &self.baseline),
            ("canary", &self.canary),
        ] {
            if !is_name(value) {
                out.push((
                    field,
                    format!(
                        "{value:?} is not a Kubernetes name (lower-case letters, digits, '-', '.')"
                    ),
                ));
            }
        }
        if self.baseline == self.canary
            && self.baseline_subset == self.canary_subset
            && is_name(&self.baseline)
        {
            out.push((
                "canary",
                "must differ from baseline (or give baseline_subset and canary_subset)".to_owned(),
            ));
        }
        if let Some(url) = &self.api_server
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            out.push(("api_server", format!("{url:?} is not an http(s) URL")));
        }
        if let Some(v) = &self.api_version
            && !is_name(v)
        {
            out.push(("api_version", format!("{v:?} is not an API version")));
        }
        if self.timeout.is_zero() {
            out.push(("timeout", "must be longer than 0".to_owned()));
        }
        out
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[derive(Debug, Clone)]
enum Token {
    None,
    File(PathBuf),
    Env(String),
}

/// A router over one Kubernetes object.
#[derive(Debug, Clone)]
pub struct KubeRouter {
    kind: KubeKind,
    url: String,
    namespace: String,
    name: String,
    baseline: Backend,
    canary: Backend,
    token: Token,
    client: reqwest::Client,
}

#[derive(Debug, Clone)]
struct Backend {
    name: String,
    subset: Option<String>,
}

impl KubeRouter {
    pub fn new(kind: KubeKind, config: &KubeRouterConfig) -> Result<Self, RouterError> {
        let describe = format!("{} {}/{}", kind.kind(), config.namespace, config.name);
        let fail = |message: String| RouterError::Failed {
            router: describe.clone(),
            message,
        };
        if let Some((field, message)) = config.problems().into_iter().next() {
            return Err(fail(format!("{field}: {message}")));
        }
        let sa = PathBuf::from(SERVICE_ACCOUNT_DIR);
        let (server, in_cluster) = match &config.api_server {
            Some(s) => (s.trim_end_matches('/').to_owned(), false),
            None => {
                let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                    fail("no `api_server` given and not running in a cluster (KUBERNETES_SERVICE_HOST is unset)".into())
                })?;
                let port =
                    std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                (format!("https://{host}:{port}"), true)
            }
        };
        let token = match &config.token {
            Some(TokenSource::File(p)) => Token::File(p.clone()),
            Some(TokenSource::Env(v)) => Token::Env(v.clone()),
            None if in_cluster => Token::File(sa.join("token")),
            None => Token::None,
        };
        let ca = match &config.ca_file {
            Some(p) => Some(p.clone()),
            None if in_cluster => Some(sa.join("ca.crt")),
            None => None,
        };
        let mut builder = reqwest::Client::builder().timeout(config.timeout.to_std());
        if let Some(path) = ca {
            let pem = std::fs::read(&path)
                .map_err(|e| fail(format!("cannot read the CA file {}: {e}", path.display())))?;
            let not_pem =
                |why: String| fail(format!("{}: not a PEM certificate{why}", path.display()));
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| not_pem(format!(": {e}")))?;
            if certs.is_empty() {
                return Err(not_pem(String::new()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| fail(e.to_string()))?;
        let version = config
            .api_version
            .as_deref()
            .unwrap_or(kind.default_version());
        let url = format!(
            "{server}/apis/{}/{version}/namespaces/{}/{}/{}",
            kind.group(),
            config.namespace,
            kind.plural(),
            config.name
        );
        Ok(KubeRouter {
            kind,
            url,
            namespace: config.namespace.clone(),
            name: config.name.clone(),
            baseline: Backend {
                name: config.baseline.clone(),
                subset: config.baseline_subset.clone(),
            },
            canary: Backend {
                name: config.canary.clone(),
                subset: config.canary_subset.clone(),
            },
            token,
            client,
        })
    }

    fn fail(&self, message: String) -> RouterError {
        RouterError::Failed {
            router: self.describe(),
            message,
        }
    }

    fn token(&self) -> Result<Option<String>, RouterError> {
        let raw = match &self.token {
            Token::None => return Ok(None),
            Token::File(p) => std::fs::read_to_string(p).map_err(|e| {
                self.fail(format!("cannot read the token file {}: {e}", p.display()))
            })?,
            Token::Env(v) => std::env::var(v)
                .map_err(|_| self.fail(format!("the token variable {v} is not set")))?,
        };
        let t = raw.trim();
        if t.is_empty() {
            return Err(self.fail("the bearer token is empty".into()));
        }
        Ok(Some(t.to_owned()))
    }

    fn request(&self, method: reqwest::Method) -> Result<reqwest::RequestBuilder, RouterError> {
        let mut req = self
            .client
            .request(method, &self.url)
            .header("accept", "application/json");
        if let Some(t) = self.token()? {
            req = req.bearer_auth(t);
        }
        Ok(req)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, Value), RouterError> {
        let resp = req
            .send()
            .await
            .map_err(|e| self.fail(format!("the API server did not answer: {}", chain(&e))))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.fail(format!("reading the answer: {e}")))?;
        let value = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// An error for a non-success answer, with the Status object's message when there is one.
    fn refused(&self, what: &str, status: StatusCode, body: &Value) -> RouterError {
        let detail = body
            .get("message")
            .and_then(Value::as_str)
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let hint = match status {
            StatusCode::UNAUTHORIZED => " (the bearer token was not accepted)",
            StatusCode::FORBIDDEN => " (the service account lacks RBAC for this resource)",
            StatusCode::NOT_FOUND => " (no such object)",
            _ => "",
        };
        self.fail(format!("{what} answered {status}{hint}{detail}"))
    }

    async fn get(&self) -> Result<Value, RouterError> {
        let (status, body) = self.send(self.request(reqwest::Method::GET)?).await?;
        if !status.is_success() {
            return Err(self.refused("GET", status, &body));
        }
        if !body.is_object() {
            return Err(self.fail("GET answered something that is not a JSON object".into()));
        }
        Ok(body)
    }

    fn matches(&self, dest: &Value, backend: &Backend) -> bool {
        let (name, subset) = match self.kind {
            KubeKind::GatewayApi => (dest.get("name"), None),
            KubeKind::Smi => (dest.get("service"), None),
            KubeKind::Istio => {
                let d = dest.get("destination");
                (
                    d.and_then(|d| d.get("host")),
                    d.and_then(|d| d.get("subset")).and_then(Value::as_str),
                )
            }
        };
        name.and_then(Value::as_str) == Some(backend.name.as_str())
            && (backend.subset.is_none() || subset == backend.subset.as_deref())
    }

    /// The managed destination lists of `object`: for each, the indices of the baseline and
    /// canary entries. Errors when no rule refers to both.
    fn managed<'v>(&self, object: &'v Value) -> Result<Vec<Managed<'v>>, RouterError> {
        let (array, field) = self.kind.layout();
        let rules = object
            .get("spec")
            .and_then(|s| s.get(array))
            .and_then(Value::as_array)
            .ok_or_else(|| self.fail(format!("the object has no spec.{array} list")))?;
        let lists: Vec<(usize, &Vec<Value>)> = match field {
            None => vec![(0, rules)],
            Some(f) => rules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.get(f).and_then(Value::as_array).map(|l| (i, l)))
                .collect(),
        };
        let mut out = Vec::new();
        for (rule, list) in lists {
            let find = |b: &Backend| list.iter().position(|d| self.matches(d, b));
            if let (Some(baseline), Some(canary)) = (find(&self.baseline), find(&self.canary)) {
                out.push(Managed {
                    rule,
                    baseline,
                    canary,
                    list,
                });
            }
        }
        if out.is_empty() {
            let place = match field {
                Some(f) => format!("spec.{array}[].{f}"),
                None => format!("spec.{array}"),
            };
            return Err(self.fail(format!(
                "no {place} refers to both {} and {}",
                self.baseline.label(),
                self.canary.label()
            )));
        }
        Ok(out)
    }

    /// The canary weight in `object`, when every managed rule agrees.
    fn weight_in(&self, object: &Value) -> Result<Option<u32>, RouterError> {
        let mut seen: Option<u32> = None;
        for m in self.managed(object)? {
            // Gateway API's default weight is 1; the others' is 0 when there is more than one
            // destination.
            let default = if self.kind == KubeKind::GatewayApi {
                1
            } else {
                0
            };
            let w = |i: usize| {
                m.list[i]
                    .get("weight")
                    .and_then(Value::as_u64)
                    .unwrap_or(default)
            };
            let (b, c) = (w(m.baseline), w(m.canary));
            let share = (c * 100 + (b + c) / 2)
                .checked_div(b + c)
                .map_or(0, |s| s as u32);
            match seen {
                None => seen = Some(share),
                Some(s) if s != share => {
                    tracing::info!(router = %self.describe(), rule = m.rule, "managed rules disagree on the canary weight");
                    return Ok(None);
                }
                Some(_) => {}
            }
        }
        Ok(seen)
    }

    /// The merge patch that sets the canary weight to `canary` in every managed rule.
    fn patch_for(&self, object: &Value, canary: u32) -> Result<Value, RouterError> {
        let (array, field) = self.kind.layout();
        let managed: Vec<(usize, usize, usize)> = self
            .managed(object)?
            .iter()
            .map(|m| (m.rule, m.baseline, m.canary))
            .collect();
        let mut rules = object["spec"][array].clone();
        for (rule, baseline, canary_at) in managed {
            let list = match field {
                None => &mut rules,
                Some(f) => &mut rules[rule][f],
            };
            list[baseline]["weight"] = json!(100 - canary);
            list[canary_at]["weight"] = json!(canary);
        }
        let mut patch = json!({"spec": {array: rules}});
        if let Some(rv) = object.pointer("/metadata/resourceVersion") {
            patch["metadata"] = json!({"resourceVersion": rv});
        }
        Ok(patch)
    }
}

struct Managed<'v> {
    rule: usize,
    baseline: usize,
    canary: usize,
    list: &'v Vec<Value>,
}

impl Backend {
    fn label(&self) -> String {
        match &self.subset {
            Some(s) => format!("{} (subset {s})", self.name),
            None => self.name.clone(),
        }
    }
}

/// Conflicts (someone else changed the object between our GET and PATCH) retried this often.
const CONFLICT_RETRIES: usize = 3;

impl TrafficRouter for KubeRouter {
    fn describe(&self) -> String {
        format!("{} {}/{}", self.kind.kind(), self.namespace, self.name)
    }

    fn current_weight(&self) -> BoxFuture<'_, Result<Option<u32>, RouterError>> {
        Box::pin(async move {
            let object = self.get().await?;
            self.weight_in(&object)
        })
    }

    fn set_weight(&self, canary: u32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(async move {
            let canary = canary.min(100);
            let mut attempt = 0;
            loop {
                let object = self.get().await?;
                if self.weight_in(&object)? == Some(canary) {
                    return Ok(());
                }
                let patch = self.patch_for(&object, canary)?;
                let req = self
                    .request(reqwest::Method::PATCH)?
                    .header("content-type", "application/merge-patch+json")
                    .body(patch.to_string());
                let (status, body) = self.send(req).await?;
                if status.is_success() {
                    tracing::debug!(router = %self.describe(), canary, "patched");
                    return Ok(());
                }
                if status == StatusCode::CONFLICT && attempt < CONFLICT_RETRIES {
                    attempt += 1;
                    tracing::info!(router = %self.describe(), attempt, "the object changed under the patch; retrying");
                    continue;
                }
                return Err(self.refused("PATCH", status, &body));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(kind: KubeKind) -> KubeRouter {
        let cfg = KubeRouterConfig {
            namespace: "shop".into(),
            name: "checkout".into(),
            baseline: "checkout-stable".into(),
            canary: "checkout-canary".into(),
            baseline_subset: None,
            canary_subset: None,
            api_server: Some("http://127.0.0.1:1".into()),
            api_version: None,
            token: None,
            ca_file: None,
            timeout: default_timeout(),
        };
        KubeRouter::new(kind, &cfg).unwrap()
    }

    #[test]
    fn urls_name_the_group_version_and_plural() {
        assert_eq!(
            router(KubeKind::GatewayApi).url,
            "http://127.0.0.1:1/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout"
        );
        assert_eq!(
            router(KubeKind::Smi).url,
            "http://127.0.0.1:1/apis/split.smi-spec.io/v1alpha2/namespaces/shop/trafficsplits/checkout"
        );
        assert_eq!(
            router(KubeKind::Istio).url,
            "http://127.0.0.1:1/apis/networking.istio.io/v1beta1/namespaces/shop/virtualservices/checkout"
        );
    }

    #[test]
    fn httproute_weights_read_and_patch_only_rules_with_both_backends() {
        let r = router(KubeKind::GatewayApi);
        let obj = json!({
            "metadata": {"name": "checkout", "resourceVersion": "41"},
            "spec": {"rules": [
                {"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}],
                 "backendRefs": [{"name": "checkout-canary", "port": 80}]},
                {"backendRefs": [
                    {"name": "checkout-stable", "port": 80, "weight": 80},
                    {"name": "checkout-canary", "port": 80, "weight": 20}]}
            ]}
        });
        assert_eq!(r.weight_in(&obj).unwrap(), Some(20));
        let patch = r.patch_for(&obj, 60).unwrap();
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "41"},
                "spec": {"rules": [
                    {"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}],
                     "backendRefs": [{"name": "checkout-canary", "port": 80}]},
                    {"backendRefs": [
                        {"name": "checkout-stable", "port": 80, "weight": 40},
                        {"name": "checkout-canary", "port": 80, "weight": 60}]}
                ]}
            })
        );
    }

    #[test]
    fn httproute_weights_default_to_one_and_are_read_as_a_share() {
        let r = router(KubeKind::GatewayApi);
        let obj = json!({"spec": {"rules": [{"backendRefs": [
            {"name": "checkout-stable"}, {"name": "checkout-canary"}]}]}});
        assert_eq!(r.weight_in(&obj).unwrap(), Some(50));
        let obj = json!({"spec": {"rules": [{"backendRefs": [
            {"name": "checkout-stable", "weight": 3}, {"name": "checkout-canary", "weight": 1}]}]}});
        assert_eq!(r.weight_in(&obj).unwrap(), Some(25));
    }

    #[test]
    fn rules_that_disagree_read_as_unknown() {
        let r = router(KubeKind::Istio);
        let route = |c: u32| {
            json!({"route": [
                {"destination": {"host": "checkout-stable"}, "weight": 100 - c},
                {"destination": {"host": "checkout-canary"}, "weight": c}]})
        };
        let obj = json!({"spec": {"http": [route(10), route(30)]}});
        assert_eq!(r.weight_in(&obj).unwrap(), None);
        let patch = r.patch_for(&obj, 30).unwrap();
        assert_eq!(patch["spec"]["http"][0], route(30));
        assert_eq!(patch["spec"]["http"][1], route(30));
        assert!(patch.get("metadata").is_none());
    }

    #[test]
    fn istio_subsets_pick_destinations_of_one_host() {
        let cfg = KubeRouterConfig {
            namespace: "shop".into(),
            name: "checkout".into(),
            baseline: "checkout".into(),
            canary: "checkout".into(),
            baseline_subset: Some("stable".into()),
            canary_subset: Some("canary".into()),
            api_server: Some("http://127.0.0.1:1".into()),
            api_version: Some("v1".into()),
            token: None,
            ca_file: None,
            timeout: default_timeout(),
        };
        let r = KubeRouter::new(KubeKind::Istio, &cfg).unwrap();
        let obj = json!({"spec": {"http": [{"route": [
            {"destination": {"host": "checkout", "subset": "stable"}, "weight": 90},
            {"destination": {"host": "checkout", "subset": "canary"}, "weight": 10}]}]}});
        assert_eq!(r.weight_in(&obj).unwrap(), Some(10));
        assert_eq!(
            r.patch_for(&obj, 100).unwrap()["spec"]["http"][0]["route"][1]["weight"],
            json!(100)
        );
    }

    #[test]
    fn a_route_without_both_backends_is_an_error_naming_them() {
        let r = router(KubeKind::Smi);
        let obj = json!({"spec": {"service": "checkout", "backends": [
            {"service": "checkout-stable", "weight": 100}]}});
        let e = r.weight_in(&obj).unwrap_err().to_string();
        assert!(e.contains("TrafficSplit shop/checkout"), "{e}");
        assert!(
            e.contains("no spec.backends refers to both checkout-stable and checkout-canary"),
            "{e}"
        );
    }

    #[test]
    fn bad_names_and_urls_are_problems() {
        let cfg = KubeRouterConfig {
            namespace: "Shop".into(),
            name: "checkout".into(),
            baseline: "a".into(),
            canary: "a".into(),
            baseline_subset: None,
            canary_subset: None,
            api_server: Some("ftp://x".into()),
            api_version: None,
            token: None,
            ca_file: None,
            timeout: crate::config::Duration::ZERO,
        };
        let fields: Vec<&str> = cfg.problems().iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["namespace", "canary", "api_server", "timeout"]);
    }
}
