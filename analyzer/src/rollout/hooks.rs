//! Calls a rollout's hooks (Flagger-style webhooks): one JSON POST per attempt, a timeout per
//! attempt, `retries` further attempts after a timeout, a failed connection or a non-2xx
//! answer. What an answer means is decided by the state machine
//! ([`Event::Hook`](super::Event::Hook)); this module only makes the calls.
//!
//! The body is `{"name", "hook", "type", "phase", "weight", "step", "metadata"}`: the
//! rollout's (config's) name, the hook's name and type, the rollout's phase, the canary
//! weight, the index of the current step (0-based) and the hook's `metadata`.

use std::time::Duration;

use serde_json::{Value, json};

use super::machine::{HookOutcome, RolloutState};
use super::router::{refusal, send_error};
use super::spec::Hook;
use crate::source::error_chain;

/// What a hook is sent about `state`.
pub fn payload(state: &RolloutState, hook: &Hook) -> Value {
    json!({
        "name": state.name,
        "hook": hook.name,
        "type": hook.kind,
        "phase": state.phase,
        "weight": state.weight,
        "step": state.step,
        "metadata": hook.metadata,
    })
}

/// An HTTP client for hooks (reqwest with rustls).
#[derive(Debug, Clone)]
pub struct HookClient {
    client: reqwest::Client,
}

impl HookClient {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| error_chain(&e))?;
        Ok(HookClient { client })
    }

    /// POSTs `payload` to the hook, retrying as it says; never fails, the outcome says how it
    /// went (`answered 200 OK`, `no answer within 2s (3 attempts)`, …).
    pub async fn call(&self, hook: &Hook, payload: &Value) -> HookOutcome {
        let body = payload.to_string();
        let attempts = hook.retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let sent = self
                .client
                .post(&hook.url)
                .header("content-type", "application/json")
                .timeout(hook.timeout.to_std())
                .body(body.clone())
                .send()
                .await;
            let tries = if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            last = match sent {
                Ok(resp) if resp.status().is_success() => {
                    return HookOutcome {
                        ok: true,
                        detail: format!("answered {}{tries}", resp.status()),
                    };
                }
                Ok(resp) => refusal(resp).await,
                Err(e) => send_error(&e, hook.timeout.to_std()),
            };
            tracing::debug!(hook = %hook.name, attempt, "{last}");
        }
        if attempts > 1 {
            last.push_str(&format!(" ({attempts} attempts)"));
        }
        HookOutcome {
            ok: false,
            detail: last,
        }
    }
}

/// The pause before attempt `n` (2, 3, …): 250 ms doubling, at most 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.saturating_sub(2).min(3))
}
