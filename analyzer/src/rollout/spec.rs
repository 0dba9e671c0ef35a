//! The `rollout:` config section and its expansion into steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::router::kube::KubeRouterConfig;
use crate::config::Duration;

/// `rollout:`: how traffic moves from the baseline to the canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Where the weights are set.
    pub router: RouterConfig,
    /// Explicit steps (Argo Rollouts style). Either `steps` or `step_weight` (Flagger style).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Flagger style: raise the canary weight by this much per step, analysing after each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<u32>,
    /// Flagger style: the last weight before promotion (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<u32>,
    /// With `step_weight`: the length of the analysis after each weight (default
    /// `analysis.interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_analysis: Option<Duration>,
    /// How long a hold (an analysis that neither promotes nor aborts, or `pause: {}`) waits
    /// for a manual promote or abort before the rollout ends held (exit 3). Default 10m.
    #[serde(default = "default_hold_timeout")]
    pub hold_timeout: Duration,
    /// Flagger-style webhooks: gates, a pre-rollout check, a rollback trigger and a
    /// notification at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// How often a gate that said no is asked again, and how often the `rollback` hooks are
    /// polled. Default 5s.
    #[serde(default = "default_hook_interval")]
    pub hook_interval: Duration,
}

fn default_hold_timeout() -> Duration {
    Duration::from_mins(10)
}

pub(crate) fn default_hook_interval() -> Duration {
    Duration::from_secs(5)
}

/// One of `rollout.hooks`: an HTTP endpoint POSTed a JSON description of the rollout at a
/// given moment. Any 2xx answer is a yes; a timeout, a failed connection or another status is
/// retried `retries` times and then counts as a no.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Unique among the hooks; named in every log line and reason.
    pub name: String,
    /// When it is called and what its answer does.
    #[serde(rename = "type")]
    pub kind: HookType,
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Per attempt. Default 10s.
    #[serde(default = "default_hook_timeout")]
    pub timeout: Duration,
    /// Further attempts after a failed one. Default 2.
    #[serde(default = "default_hook_retries")]
    pub retries: u32,
    /// Sent as is in the payload's `metadata`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::config::scalar_map"
    )]
    pub metadata: BTreeMap<String, String>,
}

fn default_hook_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_hook_retries() -> u32 {
    2
}

/// When a hook is called (Flagger's hook types; the dashed spellings are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookType {
    /// A gate before the first weight change: the rollout waits until it answers 2xx.
    #[serde(alias = "confirm-rollout")]
    ConfirmRollout,
    /// Called once before the first traffic shift; a failure rolls back.
    #[serde(alias = "pre-rollout")]
    PreRollout,
    /// A gate before the canary gets 100%: the rollout waits until it answers 2xx.
    #[serde(alias = "confirm-promotion")]
    ConfirmPromotion,
    /// Called once when the rollout has ended; its answer is only recorded.
    #[serde(alias = "post-rollout")]
    PostRollout,
    /// Polled while the rollout runs: a 2xx answer rolls back.
    Rollback,
}

impl HookType {
    /// The config spelling: `confirm_rollout`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::ConfirmRollout => "confirm_rollout",
            HookType::PreRollout => "pre_rollout",
            HookType::ConfirmPromotion => "confirm_promotion",
            HookType::PostRollout => "post_rollout",
            HookType::Rollback => "rollback",
        }
    }

    /// A gate is asked again until it says yes.
    pub fn is_gate(self) -> bool {
        matches!(self, HookType::ConfirmRollout | HookType::ConfirmPromotion)
    }
}

impl std::fmt::Display for HookType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Route this percentage (0–100) of the traffic to the canary.
    SetWeight(u32),
    /// Judge the window since this step began, of this length.
    Analysis(Duration),
    /// Wait this long (`pause: 30s`), or for a manual promote (`pause: {}`).
    Pause(Pause),
}

/// `pause: 30s` or `pause: {}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pause {
    For(Duration),
    Manual(ManualPause),
}

/// `{}`: wait for a manual promote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ManualPause {}

/// `router:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RouterConfig {
    /// HAProxy's runtime API: `set weight backend/server`.
    Haproxy {
        /// A unix socket path, or `tcp://127.0.0.1:PORT`.
        admin: String,
        backend: String,
        baseline: String,
        canary: String,
    },
    /// Runs a command; `{weight}` and `{baseline_weight}` in its arguments are replaced.
    Exec { command: Vec<String> },
    /// POSTs `{"canary_weight": w, "baseline_weight": 100 - w}` to `url`.
    Webhook {
        url: String,
        #[serde(default = "default_timeout")]
        timeout: Duration,
    },
    /// A Gateway API `HTTPRoute`'s backendRefs weights, through the Kubernetes API server.
    GatewayApi(KubeRouterConfig),
    /// An SMI `TrafficSplit`'s backend weights, through the Kubernetes API server.
    Smi(KubeRouterConfig),
    /// An Istio `VirtualService`'s route weights, through the Kubernetes API server.
    Istio(KubeRouterConfig),
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl RolloutConfig {
    /// The steps to run: `steps` as written, or `step_weight`/`max_weight` expanded to
    /// `set_weight: s, analysis: d, set_weight: 2s, analysis: d, …` up to `max_weight`.
    /// Promotion (100%) follows the last step.
    pub fn expand(&self, interval: Duration) -> Vec<Step> {
        if let Some(step) = self.step_weight.filter(|s| *s > 0) {
            let max = self.max_weight.unwrap_or(100).min(100);
            let every = self.step_analysis.unwrap_or(interval);
            let mut steps = Vec::new();
            let mut w = step;
            while w <= max {
                steps.push(Step::SetWeight(w));
                steps.push(Step::Analysis(every));
                if w == max {
                    break;
                }
                w = (w + step).min(max);
            }
            return steps;
        }
        self.steps.clone()
    }

    /// Semantic problems as (field path below `rollout`, message).
    pub(crate) fn problems(&self, interval: Duration) -> Vec<(Vec<PathPart>, String)> {
        let mut out = Vec::new();
        let key = |k: &str| vec![PathPart::Key(k.to_owned())];
        match (self.steps.is_empty(), self.step_weight) {
            (true, None) => out.push((key("steps"), "give `steps` or `step_weight`".to_owned())),
            (false, Some(_)) => out.push((
                key("step_weight"),
                "give either `steps` or `step_weight`, not both".to_owned(),
            )),
            _ => {}
        }
        if let Some(s) = self.step_weight
            && !(1..=100).contains(&s)
        {
            out.push((key("step_weight"), format!("{s} is outside 1..=100")));
        }
        if let Some(m) = self.max_weight {
            if self.step_weight.is_none() {
                out.push((key("max_weight"), "needs `step_weight`".to_owned()));
            } else if !(1..=100).contains(&m) {
                out.push((key("max_weight"), format!("{m} is outside 1..=100")));
            } else if self.step_weight.is_some_and(|s| s > m) {
                out.push((key("max_weight"), format!("{m} is below step_weight")));
            }
        }
        if self.step_analysis.is_some_and(|d| d.is_zero()) {
            out.push((key("step_analysis"), "must be longer than 0".to_owned()));
        }
        if self.step_weight.is_some() && interval.is_zero() && self.step_analysis.is_none() {
            out.push((
                key("step_analysis"),
                "needs `analysis.interval` or `step_analysis`".to_owned(),
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = |k: &str| item_field("steps", i, k);
            match step {
                Step::SetWeight(w) if *w > 100 => {
                    out.push((at("set_weight"), format!("{w} is outside 0..=100")))
                }
                Step::Analysis(d) if d.is_zero() => {
                    out.push((at("analysis"), "must be longer than 0".to_owned()))
                }
                _ => {}
            }
        }
        match &self.router {
            RouterConfig::Haproxy {
                admin,
                backend,
                baseline,
                canary,
            } => {
                for (k, v) in [
                    ("admin", admin),
                    ("backend", backend),
                    ("baseline", baseline),
                    ("canary", canary),
                ] {
                    if v.trim().is_empty() {
                        out.push((
                            vec![PathPart::Key("router".into()), PathPart::Key(k.into())],
                            "must not be empty".to_owned(),
                        ));
                    }
                }
            }
            RouterConfig::Exec { command } if command.is_empty() => out.push((
                vec![
                    PathPart::Key("router".into()),
                    PathPart::Key("command".into()),
                ],
                "must name a program".to_owned(),
            )),
            RouterConfig::Webhook { url, .. } if !is_http_url(url) => {
                out.push((
                    vec![PathPart::Key("router".into()), PathPart::Key("url".into())],
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
            RouterConfig::GatewayApi(k) | RouterConfig::Smi(k) | RouterConfig::Istio(k) => {
                for (field, message) in k.problems() {
                    out.push((
                        vec![PathPart::Key("router".into()), PathPart::Key(field.into())],
                        message,
                    ));
                }
            }
            _ => {}
        }
        if self.hook_interval.is_zero() {
            out.push((key("hook_interval"), "must be longer than 0".to_owned()));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, hook) in self.hooks.iter().enumerate() {
            let at = |k: &str| item_field("hooks", i, k);
            if hook.name.trim().is_empty() {
                out.push((at("name"), "must not be empty".to_owned()));
            } else if !names.insert(hook.name.as_str()) {
                out.push((at("name"), format!("hook `{}` is named twice", hook.name)));
            }
            if !is_http_url(&hook.url) {
                out.push((at("url"), format!("{:?} is not an http(s) URL", hook.url)));
            }
            if hook.timeout.is_zero() {
                out.push((at("timeout"), "must be longer than 0".to_owned()));
            }
            if hook.retries > 10 {
                out.push((at("retries"), format!("{} is more than 10", hook.retries)));
            }
        }
        out
    }
}

/// `list[i].field`.
fn item_field(list: &str, i: usize, field: &str) -> Vec<PathPart> {
    vec![
        PathPart::Key(list.to_owned()),
        PathPart::Index(i),
        PathPart::Key(field.to_owned()),
    ]
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// A field path component (converted to the config's `FieldPath` by the validator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathPart {
    Key(String),
    Index(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn haproxy() -> RouterConfig {
        RouterConfig::Haproxy {
            admin: "/run/haproxy/admin.sock".into(),
            backend: "be".into(),
            baseline: "baseline".into(),
            canary: "canary".into(),
        }
    }

    #[test]
    fn step_weight_expands_to_set_weight_and_analysis_pairs() {
        let c = RolloutConfig {
            router: haproxy(),
            steps: vec![],
            step_weight: Some(30),
            max_weight: Some(80),
            step_analysis: None,
            hold_timeout: default_hold_timeout(),
            hooks: vec![],
            hook_interval: default_hook_interval(),
        };
        let d = Duration::from_secs(10);
        assert_eq!(
            c.expand(d),
            vec![
                Step::SetWeight(30),
                Step::Analysis(d),
                Step::SetWeight(60),
                Step::Analysis(d),
                Step::SetWeight(80),
                Step::Analysis(d),
            ]
        );
        assert!(c.problems(d).is_empty());
    }

    #[test]
    fn bad_weights_and_both_styles_are_problems() {
        let c = RolloutConfig {
            router: haproxy(),
            steps: vec![Step::SetWeight(120), Step::Analysis(Duration::ZERO)],
            step_weight: Some(10),
            max_weight: None,
            step_analysis: None,
            hold_timeout: default_hold_timeout(),
            hooks: vec![],
            hook_interval: default_hook_interval(),
        };
        let p = c.problems(Duration::from_secs(10));
        let msgs: Vec<&str> = p.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(p.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("not both"));
        assert!(msgs[1].contains("120"));
        assert!(msgs[2].contains("longer than 0"));
    }
}
