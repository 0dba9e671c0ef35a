//! A router that POSTs the desired weight as JSON: `{"canary_weight": w, "baseline_weight":
//! 100 - w}`. Any 2xx is success. It cannot read weights back, so every reconcile posts.

use std::time::Duration;

use super::{BoxFuture, RouterError, TrafficRouter, redact_url, refusal, send_error};

#[derive(Debug, Clone)]
pub struct WebhookRouter {
    url: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl WebhookRouter {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RouterError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| RouterError::Failed {
                router: format!("webhook {}", redact_url(url)),
                message: e.to_string(),
            })?;
        Ok(WebhookRouter {
            url: url.to_owned(),
            timeout,
            client,
        })
    }
}

impl TrafficRouter for WebhookRouter {
    /// Without the URL's path and query, which may hold a token.
    fn describe(&self) -> String {
        format!("webhook {}", redact_url(&self.url))
    }
    fn current_weight(&self) -> BoxFuture<'_, Result<Option<u32>, RouterError>> {
        Box::pin(async { Ok(None) })
    }
    fn set_weight(&self, canary: u32) -> BoxFuture<'_, Result<(), RouterError>> {
        Box::pin(async move {
            let canary = canary.min(100);
            let body =
                serde_json::json!({"canary_weight": canary, "baseline_weight": 100 - canary});
            let fail = |message: String| RouterError::Failed {
                router: self.describe(),
                message,
            };
            let resp = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| fail(send_error(&e, self.timeout)))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(fail(refusal(resp).await))
            }
        })
    }
}
