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

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{FLEDGE, Stack, http, stack, wait_for, weight};

fn rollout_config(prom: u16, admin: u16) -> String {
    common::config_with_steps(
        prom,
        admin,
        "5s",
        None,
        "    - set_weight: 20\n    - analysis: 5s\n    - set_weight: 60\n    - analysis: 5s\n    - set_weight: 100\n",
    )
}

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    ok: AtomicU64,
    app_errors: AtomicU64,
    proxy_failures: AtomicU64,
    to_canary: AtomicU64,
}

/// Sends requests through HAProxy at a fixed rate (`threads` × 20/s) until `stop` or 90 s.
fn load(
    port: u16,
    threads: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..threads)
        .map(|_| {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
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
                        _ => {
                            counts.proxy_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    next += Duration::from_millis(50);
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            })
        })
        .collect()
}

struct Outcome {
    code: i32,
    stdout: String,
    took: Duration,
    counts: Arc<Counts>,
}

fn run_rollout(s: &Stack, extra: &[&str]) -> Outcome {
    let cfg = s.env.dir.join("rollout.yaml");
    std::fs::write(&cfg, rollout_config(s.prometheus, s.admin)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let workers = load(s.frontend, 4, Arc::clone(&stop), Arc::clone(&counts));
    let started = Instant::now();
    let out = Command::new(FLEDGE)
        .args(["rollout", "--config", cfg.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run fledge rollout");
    let took = started.elapsed();
    // A little traffic after the last weight change, then stop.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    println!("{stdout}{stderr}");
    println!(
        "took {took:.1?}: sent {}, ok {}, app errors {}, proxy failures {}, answered by the canary {}",
        counts.sent.load(Ordering::Relaxed),
        counts.ok.load(Ordering::Relaxed),
        counts.app_errors.load(Ordering::Relaxed),
        counts.proxy_failures.load(Ordering::Relaxed),
        counts.to_canary.load(Ordering::Relaxed),
    );
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout,
        took,
        counts,
    }
}

#[test]
fn a_healthy_canary_reaches_100_percent_without_failing_a_request() {
    let s = stack("healthy", 0.0);
    let o = run_rollout(&s, &[]);
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
    let o = run_rollout(&s, &[]);
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
    let dir = s.env.dir.join("state");
    let cfg = s.env.dir.join("rollout.yaml");
    std::fs::write(&cfg, rollout_config(s.prometheus, s.admin)).unwrap();
    let child = Command::new(FLEDGE)
        .args([
            "rollout",
            "--config",
            cfg.to_str().unwrap(),
            "--state-dir",
            dir.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("weight 20", Duration::from_secs(10), || {
        weight(s.admin, "canary") == 20
    });
    let state = std::fs::read_to_string(dir.join("state.json")).unwrap();
    assert!(
        state.contains("\"weight\": 20"),
        "committed before acting: {state}"
    );
    let out = Command::new(FLEDGE)
        .args(["rollout", "abort", "--state-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("aborted by a manual command"), "{stdout}");
    assert_eq!(weight(s.admin, "canary"), 0);
    assert_eq!(weight(s.admin, "baseline"), 100);
}
