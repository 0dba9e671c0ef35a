//! `fledge rollout` end to end on this machine: two `fledge demo` instances (baseline v1,
//! canary v2) behind a real HAProxy (Debian's `/usr/sbin/haproxy`) whose weights the rollout
//! sets through the runtime API over TCP, a real Prometheus scraping both demos every second,
//! and a load generator sending requests through HAProxy for the whole rollout. Every process
//! is on a free loopback port and killed when the test ends.
//!
//! Client requests are counted three ways: answered by a demo (the `x-fledge-demo-injected`
//! header says whether the demo injected an error) and failed by the proxy (a connection
//! error, or an answer without the demo's header, such as HAProxy's 502/503). Weight changes
//! must fail no request. Run with `--nocapture` to see the counts.
//!
//! The hooks are answered by a small std TcpListener server in the test
//! (analyzer/tests/support/receiver.rs): the hook endpoints are the user's own services.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{FLEDGE, Stack, haproxy_cmd, http, receiver, stack, wait_for, weight};
use serde_json::Value;

mod common;

/// The steps of the first tests: 20%, analysis, 60%, analysis, 100%.
const STEPS: &str = "  hold_timeout: 5s
  steps:
    - set_weight: 20
    - analysis: 5s
    - set_weight: 60
    - analysis: 5s
    - set_weight: 100
";

/// A rollout config for the stack; `rollout` is the `rollout:` section below its router
/// (indented by two spaces), `metrics` more metrics (indented list items).
fn rollout_config(s: &Stack, rollout: &str, metrics: &str) -> String {
    common::rollout_yaml(s.prometheus, s.admin, None, rollout, metrics)
}

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    ok: AtomicU64,
    app_errors: AtomicU64,
    proxy_failures: AtomicU64,
    to_canary: AtomicU64,
    /// What the first proxy failures were, with when (since the load began), for the message.
    failures: std::sync::Mutex<Vec<String>>,
}

/// Requests sent through HAProxy at a fixed rate (`threads` × 20/s) until stopped or 120 s.
struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let workers = (0..threads)
            .map(|_| {
                let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
                std::thread::spawn(move || send_load(port, &stop, &counts))
            })
            .collect();
        Load {
            stop,
            counts,
            workers,
        }
    }

    /// A little traffic after the last weight change, then stop; prints the counts.
    fn stop(self) -> Arc<Counts> {
        std::thread::sleep(Duration::from_millis(500));
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let c = &self.counts;
        println!(
            "sent {}, ok {}, app errors {}, proxy failures {}, answered by the canary {}",
            c.sent.load(Ordering::Relaxed),
            c.ok.load(Ordering::Relaxed),
            c.app_errors.load(Ordering::Relaxed),
            c.proxy_failures.load(Ordering::Relaxed),
            c.to_canary.load(Ordering::Relaxed),
        );
        self.counts
    }
}

fn send_load(port: u16, stop: &AtomicBool, counts: &Counts) {
    let started = Instant::now();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
        counts.sent.fetch_add(1, Ordering::Relaxed);
        match http(port, "GET", "/", "") {
            Ok((status, head, body)) if head.contains("x-fledge-demo-injected: ") => {
                if body.starts_with("v2") {
                    counts.to_canary.fetch_add(1, Ordering::Relaxed);
                }
                if status == 200 {
                    counts.ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.app_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            other => {
                counts.proxy_failures.fetch_add(1, Ordering::Relaxed);
                let mut seen = counts.failures.lock().unwrap();
                if seen.len() < 5 {
                    let what = match other {
                        Ok((status, head, _)) => {
                            format!("{status} without the demo's header: {head:?}")
                        }
                        Err(e) => e.to_string(),
                    };
                    seen.push(format!("at {:?}: {what}", started.elapsed()));
                }
            }
        }
        next += Duration::from_millis(50);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
    counts: Arc<Counts>,
}

/// A running `fledge rollout` with `--state-dir`.
struct Rollout {
    child: Child,
    state: PathBuf,
    started: Instant,
}

impl Rollout {
    fn start(s: &Stack, config: &str) -> Rollout {
        let cfg = s.env.dir.join("rollout.yaml");
        std::fs::write(&cfg, config).unwrap();
        let state = s.env.dir.join("state");
        let child = Command::new(FLEDGE)
            .args(["rollout", "--config", cfg.to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .env("FLEDGE_LOG", "fledge_analyzer::rollout=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fledge rollout");
        Rollout {
            child,
            state,
            started: Instant::now(),
        }
    }

    fn state(&self) -> Value {
        read_state(&self.state)
    }

    /// Waits until the persisted state satisfies `ok`; fails if the rollout ends first.
    fn wait_state(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let state = self.state();
            if ok(&state) {
                return state;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("fledge rollout ended ({status}) before {what}: {state:#}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}: {state:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `fledge rollout promote|abort|resume --state-dir D`.
    fn gate(&self, word: &str) {
        let out = Command::new(FLEDGE)
            .args(["rollout", word, "--state-dir", self.state.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn finish(self, load: Load) -> Outcome {
        let out = self.child.wait_with_output().unwrap();
        let took = self.started.elapsed();
        let counts = load.stop();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        println!("{stdout}{stderr}took {took:.1?}");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
            took,
            counts,
        }
    }
}

/// The state persisted in `dir` (`Null` before the first save).
fn read_state(dir: &Path) -> Value {
    std::fs::read_to_string(dir.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn run_rollout(s: &Stack, config: &str) -> Outcome {
    let load = Load::start(s.frontend, 4);
    Rollout::start(s, config).finish(load)
}

fn phase(state: &Value) -> &str {
    state["phase"].as_str().unwrap_or("")
}

/// The rollout exited with `code`, printed `said`, and left HAProxy at `canary` (and the
/// baseline at 100 − `canary`).
fn assert_ended(s: &Stack, o: &Outcome, code: i32, said: &str, canary: u32) {
    assert_eq!(o.code, code, "{}", o.stdout);
    assert!(o.stdout.contains(said), "{}", o.stdout);
    assert_eq!(weight(s.admin, "canary"), canary);
    assert_eq!(weight(s.admin, "baseline"), 100 - canary);
}

fn no_failed_requests(c: &Counts) {
    assert!(c.sent.load(Ordering::Relaxed) > 100, "the load ran: {c:?}");
    assert_eq!(c.proxy_failures.load(Ordering::Relaxed), 0, "{c:?}");
}

#[test]
fn a_healthy_canary_reaches_100_percent_without_failing_a_request() {
    let s = stack("healthy", 0.0);
    let o = run_rollout(&s, &rollout_config(&s, STEPS, ""));
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(weight(s.admin, "canary"), 100);
    assert_eq!(weight(s.admin, "baseline"), 0);
    for w in [20, 60, 100] {
        assert!(
            o.stdout.contains(&format!("set canary weight {w}")),
            "{}",
            o.stdout
        );
    }
    assert!(o.stdout.contains("promoted"), "{}", o.stdout);
    let c = &o.counts;
    assert!(c.sent.load(Ordering::Relaxed) > 200, "the load ran: {c:?}");
    assert_eq!(c.proxy_failures.load(Ordering::Relaxed), 0, "{c:?}");
    assert_eq!(c.app_errors.load(Ordering::Relaxed), 0, "{c:?}");
    assert!(
        c.to_canary.load(Ordering::Relaxed) > 50,
        "the canary got traffic: {c:?}"
    );
}

#[test]
fn a_canary_with_injected_errors_is_rolled_back_within_two_intervals() {
    let s = stack("errors", 0.3);
    let o = run_rollout(&s, &rollout_config(&s, STEPS, ""));
    assert_eq!(o.code, 4, "{}", o.stdout);
    assert_eq!(weight(s.admin, "canary"), 0);
    assert_eq!(weight(s.admin, "baseline"), 100);
    assert!(o.stdout.contains("rolled back"), "{}", o.stdout);
    assert!(o.stdout.contains("error_rate"), "{}", o.stdout);
    assert!(!o.stdout.contains("set canary weight 60"), "{}", o.stdout);
    // Two analysis intervals (5 s each), plus the source's settle time.
    assert!(
        o.took < Duration::from_secs(12),
        "rolled back after {:?}",
        o.took
    );
    let c = &o.counts;
    assert_eq!(c.proxy_failures.load(Ordering::Relaxed), 0, "{c:?}");
    assert!(c.app_errors.load(Ordering::Relaxed) > 0, "{c:?}");
}

#[test]
fn the_router_corrects_drift_and_a_manual_abort_rolls_back() {
    let s = stack("manual", 0.0);
    let mut r = Rollout::start(&s, &rollout_config(&s, STEPS, ""));
    wait_for("weight 20", Duration::from_secs(10), || {
        weight(s.admin, "canary") == 20
    });
    let state = r.wait_state("the state at 20%", |st| st["weight"] == 20);
    assert_eq!(state["step"], 1, "committed before acting: {state:#}");
    // Someone sends everything to the baseline behind the rollout's back, during the
    // analysis at 20%: the next reconcile puts 20% back before going on to 60%.
    let load = Load::start(s.frontend, 2);
    haproxy_cmd(s.admin, "set weight be/canary 0");
    haproxy_cmd(s.admin, "set weight be/baseline 100");
    r.wait_state("60%", |st| st["weight"] == 60);
    // The state is committed before HAProxy is set: wait for the write itself.
    wait_for("HAProxy at 60%", Duration::from_secs(5), || {
        weight(s.admin, "canary") == 60
    });
    r.gate("abort");
    let o = r.finish(load);
    assert_ended(&s, &o, 4, "aborted by a manual command", 0);
    // The step to 20% is logged as a step; the write after the drift as a repair, once.
    let lines = |what: &str| {
        o.stderr
            .lines()
            .filter(|l| l.contains(what) && l.contains("from=Some(0) to=20"))
            .count()
    };
    assert_eq!(lines("set the canary weight"), 1, "{}", o.stderr);
    assert_eq!(
        lines("drift: the router's weight changed"),
        1,
        "{}",
        o.stderr
    );
    no_failed_requests(&o.counts);
}

/// A hook receiver for the stack's rollouts: `/confirm` (confirm_rollout) and `/pre`
/// (pre_rollout) agree, `/promote` (confirm_promotion) refuses its first `refusals` calls,
/// `/rollback` answers 404 until `trigger` is set and 200 after, `/post` agrees.
fn hook_receiver(refusals: usize, trigger: Arc<AtomicBool>) -> receiver::Receiver {
    use receiver::Reply;
    receiver::Receiver::start(move |req, n| match req.path.as_str() {
        "/promote" if n < refusals => Reply::status(403).with_body("not yet"),
        "/rollback" if !trigger.load(Ordering::Relaxed) => Reply::status(404),
        _ => Reply::status(200),
    })
}

/// A `rollout:` section with every kind of hook, on `r`, asking again every second.
fn hooks_section(r: &receiver::Receiver, steps: &str) -> String {
    let url = |p: &str| r.url(p);
    format!(
        "  hold_timeout: 30s
  hook_interval: 1s
{steps}  hooks:
    - {{name: go, type: confirm_rollout, url: \"{}\", timeout: 2s}}
    - {{name: smoke, type: pre-rollout, url: \"{}\", timeout: 2s, retries: 0}}
    - {{name: approve, type: confirm_promotion, url: \"{}\", timeout: 2s, retries: 0, metadata: {{ticket: CHG-42}}}}
    - {{name: stop, type: rollback, url: \"{}\", timeout: 2s, retries: 0}}
    - {{name: notify, type: post_rollout, url: \"{}\"}}
",
        url("/confirm"),
        url("/pre"),
        url("/promote"),
        url("/rollback"),
        url("/post"),
    )
}

#[test]
fn hooks_gate_the_rollout_and_a_restart_does_not_repeat_a_passed_pre_rollout() {
    let s = stack("hooks", 0.0);
    let r = hook_receiver(3, Arc::new(AtomicBool::new(false)));
    let steps = "  steps:
    - set_weight: 20
    - analysis: 5s
    - set_weight: 60
    - analysis: 5s
    - set_weight: 100
";
    let config = rollout_config(&s, &hooks_section(&r, steps), "");
    let load = Load::start(s.frontend, 4);
    let mut first = Rollout::start(&s, &config);
    first.wait_state("20%", |st| st["weight"] == 20);
    // Killed (SIGKILL) during the first analysis, then started again on the same state.
    first.child.kill().unwrap();
    let _ = first.child.wait();
    assert_eq!(weight(s.admin, "canary"), 20);
    let o = Rollout::start(&s, &config).finish(load);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("resuming at step 2/5 with canary weight 20"),
        "{}",
        o.stdout
    );
    assert_eq!(weight(s.admin, "canary"), 100);
    assert_eq!(weight(s.admin, "baseline"), 0);
    no_failed_requests(&o.counts);

    // The gates came first, each once, before any traffic moved.
    let confirm = r.to("/confirm");
    let pre = r.to("/pre");
    assert_eq!(
        (confirm.len(), pre.len()),
        (1, 1),
        "pre_rollout is not repeated after the restart"
    );
    assert_eq!(confirm[0].json()["weight"], 0);
    assert_eq!(pre[0].json()["type"], "pre_rollout");
    assert_eq!(pre[0].header("content-type"), Some("application/json"));
    // confirm_promotion was asked at 60% until it agreed (three refusals, retries: 0), a
    // second apart, and 100% came only after.
    let promote = r.to("/promote");
    assert_eq!(promote.len(), 4, "{promote:?}");
    let body = promote[0].json();
    assert_eq!(
        body,
        serde_json::json!({"name": "rollout-demo", "hook": "approve", "type": "confirm_promotion",
            "phase": "progressing", "weight": 60, "step": 4, "metadata": {"ticket": "CHG-42"}})
    );
    assert!(promote.iter().all(|q| q.json()["weight"] == 60));
    for w in promote.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(900),
            "asked again too soon"
        );
    }
    let refused = o.stdout.matches("confirm_promotion hook `approve` did not approve: answered 403 Forbidden: not yet; asking again in 1s").count();
    assert_eq!(refused, 3, "{}", o.stdout);
    let approved = o
        .stdout
        .find("confirm_promotion hook `approve` approved")
        .expect("approved");
    let at_100 = o.stdout.find("set canary weight 100").expect("100%");
    assert!(approved < at_100, "{}", o.stdout);
    // The rollback hook was polled all along and never asked for a rollback: logged once.
    assert!(r.to("/rollback").len() >= 5);

    // post_rollout once, after the promotion.
    let post = r.to("/post");
    assert_eq!(post.len(), 1);
    assert_eq!(
        (
            post[0].json()["phase"].clone(),
            post[0].json()["weight"].clone()
        ),
        ("promoted".into(), 100.into())
    );
    assert!(
        o.stdout
            .contains("post_rollout hook `notify` called: answered 200 OK"),
        "{}",
        o.stdout
    );
    // Every hook outcome is in the persisted log too.
    let log = read_state(&s.env.dir.join("state"));
    let messages: Vec<&str> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["message"].as_str().unwrap())
        .collect();
    for needle in [
        "rollback hook `stop`: no rollback asked (answered 404 Not Found); polling every 1s",
        "confirm_rollout hook `go` approved",
        "pre_rollout hook `smoke` passed",
        "confirm_promotion hook `approve` approved",
        "post_rollout hook `notify` called",
    ] {
        assert_eq!(
            messages.iter().filter(|m| m.contains(needle)).count(),
            1,
            "{needle}: {messages:#?}"
        );
    }
}

#[test]
fn a_rollback_hook_that_answers_2xx_rolls_back_to_the_baseline() {
    let s = stack("rollback-hook", 0.0);
    let trigger = Arc::new(AtomicBool::new(false));
    let r = hook_receiver(0, Arc::clone(&trigger));
    let steps = "  steps:
    - set_weight: 20
    - analysis: 4s
    - set_weight: 60
    - analysis: 30s
    - set_weight: 100
";
    let load = Load::start(s.frontend, 4);
    let mut rollout = Rollout::start(&s, &rollout_config(&s, &hooks_section(&r, steps), ""));
    rollout.wait_state("60%", |st| st["weight"] == 60);
    // The state is committed before HAProxy is set: wait for the write itself.
    wait_for("HAProxy at 60%", Duration::from_secs(5), || {
        weight(s.admin, "canary") == 60
    });
    trigger.store(true, Ordering::Relaxed);
    let pulled = Instant::now();
    let mut took = Duration::ZERO;
    wait_for(
        "the baseline to get everything",
        Duration::from_secs(10),
        || {
            took = pulled.elapsed();
            weight(s.admin, "canary") == 0
        },
    );
    println!("time from the rollback hook's first 2xx to 0%: {took:.1?}");
    let o = rollout.finish(load);
    let said =
        "rolled back: canary weight 0: rollback hook `stop` asked for a rollback: answered 200 OK";
    assert_ended(&s, &o, 4, said, 0);
    assert!(
        took < Duration::from_secs(4),
        "rolled back {took:?} after the hook said so"
    );
    assert!(!o.stdout.contains("set canary weight 100"), "{}", o.stdout);
    no_failed_requests(&o.counts);
    let post = r.to("/post");
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].json()["phase"], "rolled_back");
    assert!(r.to("/promote").is_empty());
}

#[test]
fn manual_gates_a_pause_waits_for_promote_and_resume_analyses_a_held_step_again() {
    let s = stack("gates", 0.0);
    // A query Prometheus rejects makes its metric `error`, which holds the analysis.
    let broken = "  - name: broken
    group: errors
    query: 'sum(rate(http_requests_total{version=\"${version}\"}[3s]) by'
";
    let steps = "  hold_timeout: 60s
  steps:
    - set_weight: 20
    - pause: {}
    - set_weight: 50
    - analysis: 4s
    - set_weight: 100
";
    let load = Load::start(s.frontend, 2);
    let mut r = Rollout::start(&s, &rollout_config(&s, steps, broken));
    r.wait_state("the pause", |st| st["step"] == 1 && st["weight"] == 20);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(r.state()["step"], 1, "a manual pause waits");
    r.gate("promote");
    let held = r.wait_state("a held analysis", |st| phase(st) == "held");
    assert_eq!(
        (
            held["weight"].clone(),
            held["analyses"].as_array().unwrap().len()
        ),
        (50.into(), 1)
    );
    let metrics = &held["analyses"][0]["report"]["intervals"][0]["metrics"];
    let broken = metrics
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "broken")
        .expect("the broken metric is reported");
    assert_eq!(broken["classification"], "error", "{broken:#}");
    assert_eq!(weight(s.admin, "canary"), 50, "a hold keeps its weight");
    r.gate("resume");
    r.wait_state("the second analysis", |st| {
        phase(st) == "held" && st["analyses"].as_array().is_some_and(|a| a.len() == 2)
    });
    r.gate("promote");
    let o = r.finish(load);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert_eq!(weight(s.admin, "canary"), 100);
    assert_eq!(
        o.stdout.matches("analysis held:").count(),
        2,
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("resumed: analysing this step again"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.stdout.matches("promoted by a manual command").count(),
        2,
        "{}",
        o.stdout
    );
    no_failed_requests(&o.counts);
}

#[test]
fn a_pause_or_a_gate_past_the_hold_timeout_ends_held_at_its_weight() {
    let s = stack("hold-timeout", 0.0);
    let steps = "  hold_timeout: 2s
  steps:
    - set_weight: 30
    - pause: {}
    - set_weight: 100
";
    let o = run_rollout(&s, &rollout_config(&s, steps, ""));
    let said = "held past the hold timeout: canary weight 30: paused for a manual promote that did not come";
    assert_ended(&s, &o, 3, said, 30);
    assert!(o.took >= Duration::from_secs(2), "{:?}", o.took);
    no_failed_requests(&o.counts);

    // A new rollout on the same stack whose confirm_rollout gate never agrees: asked every
    // half second, it ends held before any traffic moves (the new rollout starts at 0%).
    let r = receiver::Receiver::start(|_, _| receiver::Reply::status(409).with_body("frozen"));
    let steps = format!(
        "  hold_timeout: 2s
  hook_interval: 500ms
  steps:
    - set_weight: 30
    - set_weight: 100
  hooks:
    - {{name: freeze, type: confirm-rollout, url: \"{}\", timeout: 1s, retries: 0}}
",
        r.url("/freeze")
    );
    let o = run_rollout(&s, &rollout_config(&s, &steps, ""));
    let said = "held past the hold timeout: canary weight 0: confirm_rollout hook `freeze` did not approve within the hold timeout (2s)";
    assert_ended(&s, &o, 3, said, 0);
    let asked = r.to("/freeze").len();
    assert!((4..=6).contains(&asked), "asked {asked} times in 2 s");
    assert!(
        o.stdout
            .contains("confirm_rollout hook `freeze` did not approve: answered 409 Conflict: frozen; asking again in 500ms"),
        "{}",
        o.stdout
    );
    no_failed_requests(&o.counts);
}
