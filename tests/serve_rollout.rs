//! `/v1/rollouts` of a real `fledge serve` process on a loopback port, driving a real HAProxy
//! (its weights are read back through its runtime API) in front of two `fledge demo`
//! instances scraped by a real Prometheus (the stack of `tests/rollout.rs`): the API cycle
//! with a manual pause, notifications to a local webhook receiver and metrics; and kill -9
//! of the server mid-rollout, restarted on the same `--data`. Neither the token nor any
//! secret may appear in a response or in the server's log.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, Stack, TOKEN, api, haproxy_cmd, stack, wait_for, weight};
use serde_json::{Value, json};

/// The value of the Prometheus bearer token the config names by reference.
const PROM_SECRET: &str = "prom-secret-value-9f8e7d";
/// The secret part of a Slack-style webhook URL.
const SLACK_SECRET: &str = "XOXB-hook-secret-4c3b2a";

/// Calls the API and keeps every response body (to check no secret is ever shown).
struct Api {
    addr: String,
    seen: Vec<String>,
}

impl Api {
    fn new(s: &Server) -> Api {
        Api {
            addr: s.addr.clone(),
            seen: Vec::new(),
        }
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (code, text) = api(&self.addr, method, path, token, body);
        self.seen.push(text.clone());
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&mut self, path: &str) -> Value {
        let (code, v) = self.call("GET", path, None, None);
        assert_eq!(code, 200, "{path}: {v}");
        v
    }

    fn rollout(&mut self, id: &str) -> Value {
        self.get(&format!("/v1/rollouts/{id}"))
    }

    fn post_config(&mut self, config: &Value) -> (u16, Value) {
        let body = json!({ "config": config }).to_string();
        self.call("POST", "/v1/rollouts", Some(TOKEN), Some(&body))
    }

    fn create(&mut self, config: &Value) -> String {
        let (code, v) = self.post_config(config);
        assert_eq!(code, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Polls rollout `id` until `ok` holds for it.
    fn wait(
        &mut self,
        id: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.rollout(id);
            if ok(&v) {
                return v;
            }
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what}: {v:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn config(s: &Stack, hold_timeout: &str, steps: &str) -> Value {
    let yaml = common::config_with_steps(
        s.prometheus,
        s.admin,
        hold_timeout,
        Some("PROM_TOKEN"),
        steps,
    );
    fledge_analyzer::config::from_yaml_str(&yaml, "rollout.yaml")
        .unwrap()
        .to_json()
        .unwrap()
}

fn haproxy_weights(s: &Stack) -> (u32, u32) {
    (weight(s.admin, "canary"), weight(s.admin, "baseline"))
}

fn messages(v: &Value) -> Vec<String> {
    v["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["message"].as_str().unwrap().to_owned())
        .collect()
}

/// The transition log as committed: one entry per transition, indexed 0, 1, 2, …
fn assert_log_is_contiguous(v: &Value) {
    let idx: Vec<u64> = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, (0..idx.len() as u64).collect::<Vec<_>>(), "{v:#}");
}

fn assert_no_secret(texts: &[String], logs: &Path) {
    let log = std::fs::read_to_string(logs).unwrap();
    assert!(
        log.contains("rollout created"),
        "the log was captured: {log}"
    );
    for secret in [TOKEN, PROM_SECRET, SLACK_SECRET] {
        assert!(
            !log.contains(secret),
            "{secret} in the server's log:\n{log}"
        );
        for t in texts {
            assert!(!t.contains(secret), "{secret} in a response: {t}");
        }
    }
}

fn data_dir(s: &Stack) -> PathBuf {
    s.env.dir.join("serve-data")
}

#[test]
fn a_rollout_through_the_api_pauses_is_promoted_notifies_and_is_counted() {
    let s = stack("serve-api", 0.0);
    let hooks = common::notifications();
    let generic = format!("http://127.0.0.1:{}/generic", hooks.port);
    let slack_path = format!("/services/T0/B0/{SLACK_SECRET}");
    let slack = format!("http://127.0.0.1:{}{slack_path}", hooks.port);
    let logs = s.env.dir.join("serve.log");
    let srv = common::serve(
        &data_dir(&s),
        &["--webhook", &generic, "--slack-webhook", &slack],
        &[("PROM_TOKEN", PROM_SECRET)],
        Some(&logs),
    );
    let mut a = Api::new(&srv);
    let steps = "    - set_weight: 20\n    - analysis: 5s\n    - set_weight: 50\n    - pause: {}\n    - set_weight: 100\n";
    let cfg = config(&s, "60s", steps);

    // Without the token nothing is created; a config without `rollout:` is refused by name.
    let body = json!({ "config": cfg }).to_string();
    assert_eq!(a.call("POST", "/v1/rollouts", None, Some(&body)).0, 401);
    assert_eq!(
        a.call("POST", "/v1/rollouts", Some("wrong"), Some(&body)).0,
        401
    );
    let mut plain = cfg.clone();
    plain.as_object_mut().unwrap().remove("rollout");
    let (code, v) = a.post_config(&plain);
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("rollout"), "{v}");
    let mut bad = cfg.clone();
    bad["rollout"]["steps"][0]["set_weight"] = json!(120);
    let (code, v) = a.post_config(&bad);
    assert_eq!(code, 422, "{v}");
    assert!(v.to_string().contains("rollout.steps[0].set_weight"), "{v}");
    // An exec router would run a command on the server: refused unless allowed.
    let mut exec = cfg.clone();
    exec["rollout"]["router"] = json!({"type": "exec", "command": ["true"]});
    let (code, v) = a.post_config(&exec);
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--allow-exec-router"),
        "{v}"
    );
    assert_eq!(a.get("/v1/rollouts")["rollouts"], json!([]));

    let id = a.create(&cfg);
    // The analysis passes and the rollout stops at the manual pause, at 50 %.
    let v = a.wait(&id, "the manual pause", Duration::from_secs(30), |v| {
        v["held"] == true
    });
    assert_eq!(
        (
            v["status"].as_str(),
            v["step"].as_u64(),
            v["weight"].as_u64()
        ),
        (Some("running"), Some(3), Some(50)),
        "{v:#}"
    );
    assert_eq!(haproxy_weights(&s), (50, 50));
    std::thread::sleep(Duration::from_millis(1500));
    let v = a.rollout(&id);
    assert_eq!(
        (v["held"].as_bool(), v["weight"].as_u64()),
        (Some(true), Some(50)),
        "still held: {v:#}"
    );
    let an = &v["analyses"][0];
    assert_eq!(
        (an["step"].as_u64(), an["verdict"].as_str()),
        (Some(1), Some("promote")),
        "{v:#}"
    );
    // The step's verdict carries the interval reports with the numbers behind it.
    let metrics = an["report"]["intervals"][0]["metrics"].as_array().unwrap();
    assert!(
        metrics.iter().any(|m| m["name"] == "latency_p99"
            && m["n_baseline"].as_u64() > Some(0)
            && m["reason"].is_string()),
        "{an:#}"
    );

    let list = a.get("/v1/rollouts");
    assert_eq!(list["rollouts"][0]["id"], json!(id));
    assert_eq!(list["rollouts"][0]["weight"], json!(50));
    assert_eq!(list["rollouts"][0]["steps"], json!(5));

    // The manual gate: 401 without the token, 202 with it, then on to 100 %.
    let promote = format!("/v1/rollouts/{id}/promote");
    assert_eq!(a.call("POST", &promote, None, None).0, 401);
    assert_eq!(a.call("POST", &promote, Some("wrong"), None).0, 401);
    assert_eq!(
        haproxy_weights(&s),
        (50, 50),
        "a refused promote changes nothing"
    );
    let (code, v) = a.call("POST", &promote, Some(TOKEN), None);
    assert_eq!(code, 202, "{v}");
    let v = a.wait(&id, "the promotion", Duration::from_secs(15), |v| {
        v["status"] == "completed"
    });
    assert_eq!(
        (v["phase"].as_str(), v["weight"].as_u64()),
        (Some("promoted"), Some(100)),
        "{v:#}"
    );
    assert_eq!(haproxy_weights(&s), (100, 0));
    assert_log_is_contiguous(&v);
    let m = messages(&v);
    assert_eq!(m.len(), 7, "{m:#?}");
    assert_eq!(
        [&m[0], &m[1], &m[3], &m[4], &m[5], &m[6]].map(String::as_str),
        [
            "rollout started",
            "set canary weight 20",
            "set canary weight 50",
            "promoted by a manual command",
            "set canary weight 100",
            "promoted: all steps passed",
        ]
    );
    assert!(m[2].starts_with("analysis passed"), "{m:#?}");
    assert_eq!(v["commands"][0]["command"], "promote", "{v:#}");
    assert_eq!(v["commands"][0]["outcome"], "delivered", "{v:#}");

    // Gates on a finished rollout and on unknown ids.
    for gate in ["promote", "abort", "resume", "cancel"] {
        let (code, v) = a.call(
            "POST",
            &format!("/v1/rollouts/{id}/{gate}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(code, 409, "{gate}: {v}");
        assert!(v["error"].as_str().unwrap().contains("ended"), "{v}");
        assert_eq!(
            a.call(
                "POST",
                &format!("/v1/rollouts/nope/{gate}"),
                Some(TOKEN),
                None
            )
            .0,
            404
        );
    }
    assert_eq!(a.call("GET", "/v1/rollouts/nope", None, None).0, 404);

    // A router that cannot be reached: rolled back, then failed, and counted.
    let mut broken = cfg.clone();
    let closed = common::free_port();
    broken["rollout"]["router"]["admin"] = json!(format!("tcp://127.0.0.1:{closed}"));
    let bid = a.create(&broken);
    let v = a.wait(
        &bid,
        "the broken router to fail",
        Duration::from_secs(30),
        |v| v["status"] == "failed",
    );
    assert!(v["error"].as_str().unwrap().contains("haproxy"), "{v:#}");

    // Notifications: every transition and the step verdict, after they were committed.
    wait_for("the notifications", Duration::from_secs(10), || {
        hooks
            .bodies("/generic")
            .iter()
            .any(|b| b["run_id"] == json!(id) && b["status"] == "completed")
    });
    let ours: Vec<Value> = hooks
        .bodies("/generic")
        .into_iter()
        .filter(|b| b["run_id"] == json!(id))
        .collect();
    let transitions: Vec<&str> = ours
        .iter()
        .filter(|b| b["event"] == "transition" && b["phase"].is_string())
        .map(|b| b["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        transitions,
        m.iter().map(String::as_str).collect::<Vec<_>>(),
        "{ours:#?}"
    );
    let steps: Vec<&Value> = ours.iter().filter(|b| b["event"] == "step").collect();
    assert_eq!(steps.len(), 1, "{ours:#?}");
    assert_eq!(
        (steps[0]["verdict"].as_str(), steps[0]["step"].as_u64()),
        (Some("promote"), Some(1))
    );
    assert!(steps[0]["score"].as_f64().is_some(), "{:?}", steps[0]);
    let slack_texts: Vec<String> = hooks
        .bodies(&slack_path)
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        slack_texts
            .iter()
            .any(|t| t.contains("weight 100") && t.contains("promoted")),
        "{slack_texts:#?}"
    );

    // Metrics.
    let (code, metrics) = api(&srv.addr, "GET", "/metrics", None, None);
    assert_eq!(code, 200);
    for line in [
        "fledge_rollouts{status=\"completed\"} 1",
        "fledge_rollouts{status=\"failed\"} 1",
        "fledge_rollouts{status=\"running\"} 0",
        "fledge_runs_status_transitions_total{kind=\"rollout\",status=\"completed\"} 1",
        "fledge_verdicts_total{kind=\"step\",verdict=\"promote\"} 1",
        "fledge_http_requests_total{method=\"POST\",route=\"/v1/rollouts/{id}/promote\",status=\"202\"} 1",
        "fledge_http_requests_total{method=\"POST\",route=\"/v1/rollouts/{id}/promote\",status=\"401\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(
        metrics.contains("fledge_http_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    let router_errors = metrics
        .lines()
        .find_map(|l| l.strip_prefix("fledge_router_errors_total{router=\"haproxy\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(router_errors >= Some(1), "{metrics}");
    a.seen.push(metrics);

    drop(srv);
    assert_no_secret(&a.seen, &logs);
}

#[test]
fn kill_9_mid_rollout_then_restart_resumes_reconciles_and_repeats_no_step() {
    let s = stack("serve-kill", 0.0);
    let data = data_dir(&s);
    let logs = s.env.dir.join("serve.log");
    // Debug logs here: not even they may show a secret.
    let env = [("PROM_TOKEN", PROM_SECRET), ("FLEDGE_LOG", "debug")];
    let start = || common::serve(&data, &[], &env, Some(&logs));
    let steps = "    - set_weight: 20\n    - analysis: 8s\n    - set_weight: 60\n    - analysis: 6s\n    - set_weight: 100\n";
    let srv = start();
    let mut a = Api::new(&srv);
    let id = a.create(&config(&s, "30s", steps));

    // 1. Kill -9 two seconds into the first analysis, move HAProxy's weights behind the
    // service's back while it is down, and restart at once: the router is reconciled to the
    // committed weight while the same step goes on.
    let v = a.wait(&id, "the first analysis", Duration::from_secs(15), |v| {
        v["step"] == 1
    });
    assert_eq!(v["weight"], 20);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.rollout(&id)["step"], 1, "still in the first analysis");
    srv.kill9();
    haproxy_cmd(s.admin, "set weight be/canary 0");
    haproxy_cmd(s.admin, "set weight be/baseline 100");
    let srv = start();
    let mut b = Api::new(&srv);
    wait_for(
        "the weight to be reconciled",
        Duration::from_secs(3),
        || haproxy_weights(&s) == (20, 80),
    );
    let v = b.rollout(&id);
    assert_eq!(
        (v["status"].as_str(), v["step"].as_u64()),
        (Some("running"), Some(1)),
        "{v:#}"
    );

    // 2. Kill -9 one second into the second analysis and stay down until its window has
    // passed: the restarted service judges that window (no step skipped) and goes on.
    b.wait(&id, "the second analysis", Duration::from_secs(20), |v| {
        v["step"] == 3
    });
    std::thread::sleep(Duration::from_secs(1));
    srv.kill9();
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(haproxy_weights(&s), (60, 40), "the router kept its weight");
    let srv = start();
    let mut c = Api::new(&srv);
    let v = c.wait(&id, "the end", Duration::from_secs(30), |v| {
        v["status"] != "running"
    });
    assert_eq!(
        (
            v["status"].as_str(),
            v["phase"].as_str(),
            v["weight"].as_u64()
        ),
        (Some("completed"), Some("promoted"), Some(100)),
        "{v:#}"
    );
    assert_eq!(haproxy_weights(&s), (100, 0));

    // Each step's transition once, none missing; both verdicts kept with their reports.
    assert_log_is_contiguous(&v);
    let m = messages(&v);
    assert_eq!(m.len(), 7, "{m:#?}");
    assert_eq!(
        [&m[0], &m[1], &m[3], &m[5], &m[6]].map(String::as_str),
        [
            "rollout started",
            "set canary weight 20",
            "set canary weight 60",
            "set canary weight 100",
            "promoted: all steps passed",
        ],
        "{m:#?}"
    );
    assert!(
        m[2].starts_with("analysis passed") && m[4].starts_with("analysis passed"),
        "{m:#?}"
    );
    let steps: Vec<u64> = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5, 5]);
    let analyses = v["analyses"].as_array().unwrap();
    assert_eq!(analyses.len(), 2, "{v:#}");
    for (an, (step, weight)) in analyses.iter().zip([(1, 20), (3, 60)]) {
        assert_eq!(
            (
                an["step"].as_u64(),
                an["weight"].as_u64(),
                an["verdict"].as_str()
            ),
            (Some(step), Some(weight), Some("promote"))
        );
        assert_eq!(
            an["report"]["intervals"].as_array().map(Vec::len),
            Some(1),
            "{an:#}"
        );
    }
    // The resumed step judged its own window: 6 s from the step's start.
    let int = &analyses[1]["report"]["intervals"][0];
    let (from, to) = (int["start"].as_str().unwrap(), int["end"].as_str().unwrap());
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(ms(to) - ms(from), 6000, "{int:#}");
    // …from when the step began (right after the weight went to 60), not from the restart.
    assert_eq!(Some(ms(from)), v["log"][3]["at"].as_i64(), "{v:#}");

    let mut seen = a.seen;
    seen.extend(b.seen);
    seen.extend(c.seen);
    drop(srv);
    assert_no_secret(&seen, &logs);
    let log = std::fs::read_to_string(&logs).unwrap();
    assert!(log.contains("DEBUG"), "debug logs were on: {log}");
}
