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

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const FLEDGE: &str = env!("CARGO_BIN_EXE_fledge");
const HAPROXY: &str = "/usr/sbin/haproxy";

struct Env {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One HTTP/1.0 exchange: (status, head, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((status, head.to_ascii_lowercase(), body.to_owned()))
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one command to HAProxy's runtime API over TCP.
fn haproxy_cmd(admin: u16, line: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).expect("haproxy admin");
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.trim().to_owned()
}

fn weight(admin: u16, server: &str) -> u32 {
    let a = haproxy_cmd(admin, &format!("get weight be/{server}"));
    a.split_whitespace().next().unwrap().parse().unwrap()
}

struct Stack {
    env: Env,
    frontend: u16,
    admin: u16,
    prometheus: u16,
}

impl Env {
    fn new(name: &str) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "fledge-rollout-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            dir,
            children: Vec::new(),
        }
    }

    fn spawn(&mut self, cmd: &mut Command) {
        self.children
            .push(cmd.spawn().expect("start a child process"));
    }

    fn demo(&mut self, version: &str, error_rate: f64) -> u16 {
        let port = free_port();
        self.spawn(
            Command::new(FLEDGE)
                .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--version", version, "--latency-ms", "40"])
                .args(["--error-rate", &error_rate.to_string()])
                .args(["--synthetic-rps", "300", "--seed", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for("the demo", Duration::from_secs(10), || {
            http(port, "GET", "/healthz", "").is_ok_and(|(s, _, _)| s == 200)
        });
        port
    }
}

/// Baseline and canary demos, HAProxy in front (all traffic to the baseline), Prometheus.
fn stack(name: &str, canary_error_rate: f64) -> Stack {
    assert!(
        Path::new(HAPROXY).is_file(),
        "{HAPROXY} is missing: install Debian's `haproxy` package"
    );
    let mut env = Env::new(name);
    let baseline = env.demo("v1", 0.0);
    let canary = env.demo("v2", canary_error_rate);

    let (frontend, admin) = (free_port(), free_port());
    let cfg = env.dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  stats socket ipv4@127.0.0.1:{admin} level admin\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
             frontend fe\n  bind 127.0.0.1:{frontend}\n  default_backend be\n\
             backend be\n  balance roundrobin\n\
             \x20 server baseline 127.0.0.1:{baseline} weight 100\n\
             \x20 server canary 127.0.0.1:{canary} weight 0\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(env.dir.join("haproxy.log")).unwrap();
    env.spawn(
        Command::new(HAPROXY)
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(log),
    );
    wait_for("haproxy", Duration::from_secs(10), || {
        http(frontend, "GET", "/healthz", "").is_ok_and(|(s, _, _)| s == 200)
    });

    let prometheus = free_port();
    let pcfg = env.dir.join("prometheus.yml");
    std::fs::write(
        &pcfg,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: demo\n    static_configs: [{{targets: [\"127.0.0.1:{baseline}\", \"127.0.0.1:{canary}\"]}}]\n"
        ),
    )
    .unwrap();
    let plog = std::fs::File::create(env.dir.join("prometheus.log")).unwrap();
    let data = env.dir.join("data");
    env.spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", pcfg.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(plog),
    );
    for version in ["v1", "v2"] {
        let q = format!("count(irate(http_requests_total{{version=\"{version}\"}}[3s]))");
        let path = format!("/api/v1/query?query={}", encode(&q));
        wait_for(
            &format!("prometheus to have rates for {version}"),
            Duration::from_secs(30),
            || {
                http(prometheus, "GET", &path, "")
                    .is_ok_and(|(s, _, b)| s == 200 && b.contains("\"value\""))
            },
        );
    }
    Stack {
        env,
        frontend,
        admin,
        prometheus,
    }
}

fn rollout_config(prom: u16, admin: u16) -> String {
    format!(
        r#"name: rollout-demo
groups: {{latency: 50, errors: 50}}
analysis: {{interval: 5s, min_samples: 3, independence: assume}}
source: {{type: prometheus, url: "http://127.0.0.1:{prom}", step: 1s, settle: 1500ms, timeout: 2s, retries: 1}}
cohorts:
  baseline: {{version: v1}}
  canary: {{version: v2}}
rollout:
  router: {{type: haproxy, admin: "tcp://127.0.0.1:{admin}", backend: be, baseline: baseline, canary: canary}}
  hold_timeout: 5s
  steps:
    - set_weight: 20
    - analysis: 5s
    - set_weight: 60
    - analysis: 5s
    - set_weight: 100
metrics:
  - name: latency_p99
    group: latency
    direction: increase
    allowed_increase: 1.5
    query: 'histogram_quantile(0.99, sum by (le) (irate(http_request_duration_seconds_bucket{{version="${{version}}"}}[3s])))'
  - name: error_rate
    group: errors
    direction: increase
    allowed_increase: 3
    critical: true
    nan_strategy: replace
    query: 'sum(irate(http_requests_total{{version="${{version}}",code="500"}}[3s])) / sum(irate(http_requests_total{{version="${{version}}"}}[3s]))'
"#
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
