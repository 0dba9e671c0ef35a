//! Traffic routers: where a rollout sets the canary's share of the traffic.
//!
//! Routers are level-triggered, like kube-runtime reconcilers: [`reconcile`] reads the current
//! weight back, writes only when it differs (correcting drift made behind its back), and
//! checks the write took. Setting the same weight twice is a no-op, so re-running a step is
//! always safe.

use std::future::Future;
use std::pin::Pin;

pub mod exec;
pub mod haproxy;
pub mod kube;
pub mod webhook;

use super::spec::RouterConfig;

/// Why an HTTP request got no answer: `no answer within 2s`, or the connection error with its
/// causes.
pub(crate) fn send_error(e: &reqwest::Error, timeout: std::time::Duration) -> String {
    if e.is_timeout() {
        let t = crate::config::Duration::from_millis(timeout.as_millis() as u64);
        format!("no answer within {t}")
    } else {
        let mut chain = crate::source::error_chain(e);
        // reqwest names the whole URL; its path or query may hold a secret.
        if let Some(url) = e.url() {
            chain = chain.replace(url.as_str(), &redact_url(url.as_str()));
        }
        format!("could not be reached: {chain}")
    }
}

/// `url` as it may be shown in messages and logs: scheme, host and port, with `/…` for a
/// path or query (webhook URLs carry tokens there, as Slack's do). Userinfo is dropped.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() != "/" || u.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!(
                "{}://{}{port}{rest}",
                u.scheme(),
                u.host_str().unwrap_or("")
            )
        }
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// A non-2xx answer: `answered 503 Service Unavailable: <the body's first 200 characters>`.
pub(crate) async fn refusal(resp: reqwest::Response) -> String {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(200).collect();
    if text.is_empty() {
        format!("answered {status}")
    } else {
        format!("answered {status}: {text}")
    }
}

/// A boxed future, so that routers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a router could not read or set a weight.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    #[error("{router}: {message}")]
    Failed { router: String, message: String },
    #[error("{router}: set canary weight {wanted} but it reads back {got}")]
    NotApplied {
        router: String,
        wanted: u32,
        got: u32,
    },
}

/// Sets the canary's traffic weight, 0–100 (the baseline gets 100 − w).
pub trait TrafficRouter: Send + Sync {
    /// For messages: `haproxy be/canary via /run/haproxy/admin.sock`.
    fn describe(&self) -> String;
    /// The canary weight in force now, or `None` when this router cannot read it back (then
    /// every reconcile writes).
    fn current_weight(&self) -> BoxFuture<'_, Result<Option<u32>, RouterError>>;
    /// Sets the canary weight. Idempotent.
    fn set_weight(&self, canary: u32) -> BoxFuture<'_, Result<(), RouterError>>;
}

/// What a reconcile did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// The router already had the weight.
    InSync,
    /// It had `from` (or an unknown weight) and now has the wanted one.
    Corrected { from: Option<u32> },
}

/// Brings the router to canary weight `canary`: read, write if different, read back.
pub async fn reconcile(router: &dyn TrafficRouter, canary: u32) -> Result<Reconciled, RouterError> {
    let before = router.current_weight().await?;
    if before == Some(canary) {
        return Ok(Reconciled::InSync);
    }
    router.set_weight(canary).await?;
    if let Some(got) = router.current_weight().await?
        && got != canary
    {
        return Err(RouterError::NotApplied {
            router: router.describe(),
            wanted: canary,
            got,
        });
    }
    tracing::debug!(router = %router.describe(), from = ?before, to = canary, "set the canary weight");
    Ok(Reconciled::Corrected { from: before })
}

/// The router a config names.
pub fn build(config: &RouterConfig) -> Result<Box<dyn TrafficRouter>, RouterError> {
    Ok(match config {
        RouterConfig::Haproxy {
            admin,
            backend,
            baseline,
            canary,
        } => Box::new(haproxy::HaproxyRouter::new(
            admin, backend, baseline, canary,
        )?),
        RouterConfig::Exec { command } => Box::new(exec::ExecRouter::new(command.clone())),
        RouterConfig::Webhook { url, timeout } => {
            Box::new(webhook::WebhookRouter::new(url, timeout.to_std())?)
        }
        RouterConfig::GatewayApi(k) => {
            Box::new(kube::KubeRouter::new(kube::KubeKind::GatewayApi, k)?)
        }
        RouterConfig::Smi(k) => Box::new(kube::KubeRouter::new(kube::KubeKind::Smi, k)?),
        RouterConfig::Istio(k) => Box::new(kube::KubeRouter::new(kube::KubeKind::Istio, k)?),
    })
}

/// A router in memory, for tests and dry runs: it records every write.
#[derive(Debug, Default)]
pub struct MemoryRouter {
    pub weight: std::sync::Mutex<Option<u32>>,
    pub writes: std::sync::Mutex<Vec<u32>>,
}

impl TrafficRouter for MemoryRouter {
    fn describe(&self) -> String {
        "memory".to_owned()
    }
    fn current_weight(&self) -> BoxFuture<'_, Result<Option<u32>, RouterError>> {
        let w = *self.weight.lock().unwrap_or_else(|e| e.into_inner());
        Box::pin(async move { Ok(w) })
    }
    fn set_weight(&self, canary: u32) -> BoxFuture<'_, Result<(), RouterError>> {
        *self.weight.lock().unwrap_or_else(|e| e.into_inner()) = Some(canary);
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(canary);
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_in_messages_keep_only_scheme_host_and_port() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/s3cret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:8080/?token=x"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(redact_url("http://127.0.0.1:9/"), "http://127.0.0.1:9");
        assert_eq!(redact_url("not a url"), "(an invalid URL)");
    }
}
