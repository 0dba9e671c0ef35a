//! Webhook notifications: one POST per interval verdict, final verdict and run transition,
//! and for rollouts per step transition and step verdict, as generic JSON or in Slack's
//! incoming-webhook form (`{"text": …}`). Delivery is best effort and never delays a run: a
//! failed POST is logged (with the URL's scheme, host and port only: a Slack URL's path and
//! a query may hold a key) and dropped. Rollout notifications are sent after the state they
//! report is committed.

use serde::Serialize;

/// The body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    Generic,
    Slack,
}

/// What happened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Notification {
    /// `interval`, `verdict` (final) or `transition` (a run's status, or a rollout's step
    /// transition with `phase`, `step` and `weight`), or `step` (a rollout step's verdict).
    pub event: &'static str,
    pub run_id: String,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A rollout's phase after the transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// A rollout's step index (0-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// A rollout's canary weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

impl Notification {
    /// One line for people (Slack).
    pub fn text(&self) -> String {
        let mut s = format!("fledge {} `{}` ({})", self.kind, self.name, self.run_id);
        if let Some(i) = self.interval {
            s.push_str(&format!(" interval {i}"));
        }
        if let Some(i) = self.step {
            s.push_str(&format!(" step {}", i + 1));
        }
        if let Some(w) = self.weight {
            s.push_str(&format!(" weight {w}"));
        }
        if let Some(p) = &self.phase {
            s.push_str(&format!(" {p}"));
        }
        if let Some(v) = &self.verdict {
            s.push_str(&format!(": *{v}*"));
        }
        if let Some(score) = self.score {
            s.push_str(&format!(" score {score:.1}"));
        }
        if let Some(st) = &self.status {
            s.push_str(&format!(" [{st}]"));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(": {r}"));
        }
        s
    }

    /// The body in `format`.
    pub fn body(&self, format: WebhookFormat) -> serde_json::Value {
        match format {
            WebhookFormat::Generic => serde_json::to_value(self).unwrap_or_default(),
            WebhookFormat::Slack => serde_json::json!({ "text": self.text() }),
        }
    }
}

/// Sends notifications to the configured webhooks (none: does nothing).
#[derive(Clone, Default)]
pub struct Notifier {
    hooks: Vec<(reqwest::Url, WebhookFormat)>,
    client: Option<reqwest::Client>,
}

impl Notifier {
    pub fn new(hooks: Vec<(reqwest::Url, WebhookFormat)>) -> Notifier {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .ok();
        Notifier { hooks, client }
    }

    /// Posts `n` to every webhook in the background.
    pub fn send(&self, n: Notification) {
        let Some(client) = &self.client else { return };
        for (url, format) in &self.hooks {
            let (client, url, body) = (client.clone(), url.clone(), n.body(*format));
            tokio::spawn(async move {
                let shown = format!(
                    "{}://{}{}",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    url.port().map(|p| format!(":{p}")).unwrap_or_default()
                );
                match client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => {
                        tracing::warn!(webhook = %shown, status = %r.status(), "webhook refused")
                    }
                    Err(e) => {
                        tracing::warn!(webhook = %shown, error = %e.without_url(), "webhook failed")
                    }
                }
            });
        }
    }
}
