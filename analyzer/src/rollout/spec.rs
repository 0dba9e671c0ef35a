//! The `rollout:` config section and its expansion into steps.

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
}

fn default_hold_timeout() -> Duration {
    Duration::from_mins(10)
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
            let at = |k: &str| {
                vec![
                    PathPart::Key("steps".to_owned()),
                    PathPart::Index(i),
                    PathPart::Key(k.to_owned()),
                ]
            };
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
            RouterConfig::Webhook { url, .. }
                if !(url.starts_with("http://") || url.starts_with("https://")) =>
            {
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
        out
    }
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
        };
        let p = c.problems(Duration::from_secs(10));
        let msgs: Vec<&str> = p.iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(p.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("not both"));
        assert!(msgs[1].contains("120"));
        assert!(msgs[2].contains("longer than 0"));
    }
}
