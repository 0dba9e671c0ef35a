//! Live analysis end to end: a real Prometheus server (Debian's `prometheus`, which
//! `scripts/test` installs) scraping two `fledge demo` instances, every process on a free
//! loopback port, killed when the test ends. Intervals are seconds long so the file runs in
//! well under two minutes.
//!
//! The measurement of one interval of 50 metrics × 2 cohorts is `#[ignore]`d:
//! `cargo test --release --test live -- --ignored --nocapture measure`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{FLEDGE, encode, free_port, wait_for};
use serde_json::Value;

mod common;

/// Everything a test started: killed (and the temp directory removed) on drop.
struct Env {
    dir: PathBuf,
    children: Vec<(String, Child)>,
    prometheus: Option<u16>,
    demos: Vec<u16>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A plain HTTP/1.0 exchange with 127.0.0.1: (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
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
    let body = out.split_once("\r\n\r\n").map_or("", |b| b.1).to_owned();
    Ok((status, body))
}

fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "the `prometheus` binary is missing: these tests start a real Prometheus server. \
             Install Debian's package (`apt-get install prometheus`) or run scripts/test, \
             which installs it."
        )
    })
}

impl Env {
    fn new(name: &str) -> Env {
        let dir = std::env::temp_dir().join(format!(
            "fledge-live-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            dir,
            children: Vec::new(),
            prometheus: None,
            demos: Vec::new(),
        }
    }

    /// Starts `fledge demo` and waits until it answers.
    fn demo(&mut self, version: &str, latency_ms: f64, error_rate: f64, rps: f64) -> u16 {
        let port = free_port();
        let child = Command::new(FLEDGE)
            .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--version", version])
            .args(["--latency-ms", &latency_ms.to_string()])
            .args(["--error-rate", &error_rate.to_string()])
            .args(["--synthetic-rps", &rps.to_string()])
            .args(["--seed", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fledge demo");
        self.children.push((format!("demo {version}"), child));
        wait_for("the demo", Duration::from_secs(10), || {
            http(port, "GET", "/healthz", "").is_ok_and(|(s, _)| s == 200)
        });
        self.demos.push(port);
        port
    }

    /// Starts Prometheus scraping every demo each second and waits until it has rates for
    /// both versions.
    fn prometheus(&mut self) -> u16 {
        let bin = prometheus_binary();
        let port = free_port();
        let targets: Vec<String> = self
            .demos
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: demo\n    static_configs: [{{targets: [{}]}}]\n",
            targets.join(", ")
        );
        let cfg = self.dir.join("prometheus.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(self.dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        self.children.push(("prometheus".into(), child));
        self.prometheus = Some(port);
        wait_for("prometheus to be ready", Duration::from_secs(30), || {
            http(port, "GET", "/-/ready", "").is_ok_and(|(s, _)| s == 200)
        });
        for version in ["v1", "v2"] {
            let q = format!("count(rate(http_requests_total{{version=\"{version}\"}}[5s]))");
            let path = format!("/api/v1/query?query={}", encode(&q));
            wait_for(
                &format!("prometheus to have rates for {version}"),
                Duration::from_secs(30),
                || {
                    http(port, "GET", &path, "")
                        .is_ok_and(|(s, b)| s == 200 && b.contains("\"value\""))
                },
            );
        }
        port
    }

    fn stop(&mut self, name: &str) {
        for (n, child) in &mut self.children {
            if n == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// The demo's two metrics, judged every 3 s from Prometheus. `irate` makes each 1 s point
/// depend only on the last scrape interval, so points are nearly independent (overlapping
/// `rate` windows would correlate them). A dozen points are too few to estimate the
/// autocorrelation reliably, so the tests take the points as independent (`independence:
/// assume`): they check the plumbing, not the autocorrelation correction.
fn prometheus_config(port: u16, lifetime: &str) -> String {
    format!(
        r#"name: live-demo
groups: {{latency: 70, errors: 30}}
analysis: {{lifetime: {lifetime}, interval: 3s, min_samples: 3, independence: assume}}
source: {{type: prometheus, url: "http://127.0.0.1:{port}", step: 1s, settle: 1500ms, timeout: 2s, retries: 1}}
cohorts:
  baseline: {{version: v1}}
  canary: {{version: v2}}
metrics:
  - name: latency_p99
    group: latency
    direction: increase
    allowed_increase: 1.3
    critical: true
    query: 'histogram_quantile(0.99, sum by (le) (irate(http_request_duration_seconds_bucket{{version="${{version}}"}}[3s])))'
  - name: error_rate
    group: errors
    direction: increase
    allowed_increase: 3
    nan_strategy: replace
    query: 'sum(irate(http_requests_total{{version="${{version}}",code="500"}}[3s])) / sum(irate(http_requests_total{{version="${{version}}"}}[3s]))'
"#
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn fledge(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(FLEDGE)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run fledge");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        took: started.elapsed(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "fledge panicked:\n{}",
        run.stderr
    );
    run
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_healthy_canary_promotes_in_real_time() {
    let mut env = Env::new("healthy");
    env.demo("v1", 120.0, 0.01, 300.0);
    env.demo("v2", 120.0, 0.01, 300.0);
    let prom = env.prometheus();
    let cfg = env.write("c.yaml", &prometheus_config(prom, "12s"));
    let report = env.dir.join("r.html");
    let run = fledge(
        &["analyze", "--config", path(&cfg), "--report", path(&report)],
        &[],
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    // Printed as each interval came: 4 intervals, then the summary.
    for i in 1..=4 {
        assert!(
            run.stdout.contains(&format!("interval {i} ")),
            "{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("verdict: PROMOTE"), "{}", run.stdout);
    // Paced by the clock: the last interval ends 12 s after the start.
    assert!(run.took >= Duration::from_secs(12), "{:?}", run.took);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("latency_p99"));
}

#[test]
fn an_injected_regression_aborts_early_in_real_time() {
    let mut env = Env::new("regression");
    env.demo("v1", 120.0, 0.0, 300.0);
    let canary = env.demo("v2", 120.0, 0.0, 300.0);
    // Inject the regression through the demo's admin endpoint.
    let (status, body) = http(canary, "POST", "/admin/config", r#"{"latency_ms": 400}"#).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("400"), "{body}");
    let prom = env.prometheus();
    // Let the 3 s rate windows fill with the regressed latency.
    std::thread::sleep(Duration::from_secs(3));
    let cfg = env.write("c.yaml", &prometheus_config(prom, "30s"));
    let run = fledge(
        &["analyze", "--config", path(&cfg), "--format", "json"],
        &[],
    );
    assert_eq!(
        run.code, 4,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["verdict"], "abort");
    let judged = report["intervals"].as_array().unwrap().len();
    assert!(judged < 10, "stopped at interval {judged} of 10");
    assert!(
        run.took < Duration::from_secs(25),
        "aborted after {:?}, lifetime 30 s",
        run.took
    );
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("latency_p99"), "{reason}");
    // The per-interval blocks went to stderr, keeping stdout JSON.
    assert!(run.stderr.contains("interval 1 "), "{}", run.stderr);
}

#[test]
fn prometheus_stopping_mid_run_holds_with_a_clear_message() {
    let mut env = Env::new("outage");
    env.demo("v1", 120.0, 0.0, 200.0);
    env.demo("v2", 120.0, 0.0, 200.0);
    let prom = env.prometheus();
    let cfg = env.write("c.yaml", &prometheus_config(prom, "15s"));
    let (run, terminated) = std::thread::scope(|s| {
        let run = s.spawn(|| fledge(&["analyze", "--config", path(&cfg)], &[]));
        // A second run is cancelled the way CI cancels a job: SIGTERM.
        let child = Command::new(FLEDGE)
            .args(["analyze", "--config", path(&cfg)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let terminated = child.wait_with_output().unwrap();
        std::thread::sleep(Duration::from_secs(3));
        env.stop("prometheus");
        (run.join().unwrap(), terminated)
    });
    let all = format!("{}{}", run.stdout, run.stderr);
    // Hold, not error: the intervals judged before the outage are reported.
    assert_eq!(run.code, 3, "{all}");
    assert!(run.stdout.contains("verdict: HOLD"), "{all}");
    assert!(all.contains("no usable data"), "{all}");
    assert!(
        all.contains(&format!("prometheus http://127.0.0.1:{prom}")),
        "{all}"
    );
    assert!(all.contains("connect"), "the cause is named: {all}");
    assert!(
        run.took < Duration::from_secs(15),
        "stopped at the outage: {:?}",
        run.took
    );

    let out = String::from_utf8_lossy(&terminated.stdout);
    assert_eq!(terminated.status.code(), Some(3), "{out}");
    assert!(out.contains("interrupted"), "{out}");
}

/// A server on 127.0.0.1 that answers every request with `answer`, except the instant-query
/// check when `check_ok`; returns its port and a flag that stops it.
fn fake_prometheus(answer: &'static [u8], check_ok: bool) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let reply: Vec<u8> = if check_ok && head.starts_with("POST /api/v1/query ") {
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            } else {
                answer.to_vec()
            };
            let _ = s.write_all(&reply);
        }
    });
    (port, stop)
}

#[test]
fn garbage_or_truncated_responses_are_errors_never_a_panic_or_a_promote() {
    let answers: [(&'static [u8], &str); 3] = [
        (
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n<html>not prometheus</html>",
            "not the Prometheus API's JSON",
        ),
        (
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"val",
            "truncated",
        ),
        (b"\x00\x01garbage\r\n\r\n", "invalid HTTP"),
    ];
    let now = now_secs().floor() as i64;
    let (start, end) = ((now - 60).to_string(), (now - 30).to_string());
    for (answer, expected) in answers {
        let (port, stop) = fake_prometheus(answer, true);
        let dir =
            std::env::temp_dir().join(format!("fledge-garbage-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("c.yaml");
        let yaml = prometheus_config(port, "12s").replace(
            "retries: 1}",
            "retries: 1, auth: {bearer_token: {env: FLEDGE_TEST_TOKEN}}}",
        );
        std::fs::write(&cfg, yaml).unwrap();
        let run = fledge(
            &[
                "analyze",
                "--config",
                path(&cfg),
                "--start",
                &start,
                "--end",
                &end,
                "--log",
                "debug",
            ],
            &[("FLEDGE_TEST_TOKEN", "tok-s3cret-value")],
        );
        stop.store(true, Ordering::SeqCst);
        let all = format!("{}{}", run.stdout, run.stderr);
        // The check passes, every range query fails: nothing judged, hold.
        assert_eq!(run.code, 3, "{all}");
        assert!(run.stdout.contains("verdict: HOLD"), "{all}");
        assert!(run.stdout.contains("no usable data"), "{all}");
        assert!(all.contains(expected), "{expected}: {all}");
        assert!(
            !all.contains("tok-s3cret-value"),
            "the token leaked:\n{all}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Garbage from the start: the check fails and the run is an error, in real time too.
    let (port, stop) = fake_prometheus(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n\xff\xfe",
        false,
    );
    let dir = std::env::temp_dir().join(format!("fledge-garbage-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.yaml");
    std::fs::write(&cfg, prometheus_config(port, "12s")).unwrap();
    let run = fledge(&["analyze", "--config", path(&cfg)], &[]);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .starts_with(&format!("error: prometheus http://127.0.0.1:{port}: ")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("not the Prometheus API's JSON"),
        "{}",
        run.stderr
    );
    assert!(
        run.took < Duration::from_secs(5),
        "failed fast: {:?}",
        run.took
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn record_then_replay_gives_the_verdict_of_a_retrospective_analysis() {
    let mut env = Env::new("record");
    env.demo("v1", 120.0, 0.01, 300.0);
    env.demo("v2", 150.0, 0.01, 300.0);
    let prom = env.prometheus();
    // 12 s of history, ending a little in the past so it is all scraped.
    std::thread::sleep(Duration::from_secs(14));
    let end = now_secs().floor() as i64 - 2;
    let start = end - 12;
    // Under load a scrape can land late; wait until every target has a sample past the window,
    // so that `record` and `analyze` see the same data.
    wait_for(
        "Prometheus to scrape past the window",
        Duration::from_secs(30),
        || {
            let q = format!("/api/v1/query?query={}", encode("min(timestamp(up))"));
            http(prom, "GET", &q, "").is_ok_and(|(_, body)| {
                serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v["data"]["result"][0]["value"][1]
                            .as_str()?
                            .parse::<f64>()
                            .ok()
                    })
                    .is_some_and(|t| t > (end + 2) as f64)
            })
        },
    );
    let (start, end) = (start.to_string(), end.to_string());
    let cfg = env.write("c.yaml", &prometheus_config(prom, "12s"));
    let rec = env.dir.join("r.csv");
    let recorded = fledge(
        &[
            "record",
            "--config",
            path(&cfg),
            "--start",
            &start,
            "--end",
            &end,
            "--out",
            path(&rec),
        ],
        &[],
    );
    assert_eq!(recorded.code, 0, "{}", recorded.stderr);
    assert!(
        recorded.stderr.contains("recorded 2 series"),
        "{}",
        recorded.stderr
    );
    let csv = std::fs::read_to_string(&rec).unwrap();
    assert!(csv.starts_with("timestamp,metric,cohort,value\n"));
    assert!(csv.lines().count() > 40, "{csv}");

    let analyzed = fledge(
        &[
            "analyze",
            "--config",
            path(&cfg),
            "--start",
            &start,
            "--end",
            &end,
            "--format",
            "json",
        ],
        &[],
    );
    let start_rfc = chrono_like(start.parse().unwrap());
    let replayed = fledge(
        &[
            "replay",
            "--config",
            path(&cfg),
            "--recording",
            path(&rec),
            "--start",
            &start_rfc,
            "--format",
            "json",
        ],
        &[],
    );
    assert!([0, 3, 4].contains(&analyzed.code), "{}", analyzed.stderr);
    assert_eq!(
        analyzed.code, replayed.code,
        "{}\n{}",
        analyzed.stdout, replayed.stdout
    );
    let a: Value = serde_json::from_str(&analyzed.stdout).unwrap();
    let r: Value = serde_json::from_str(&replayed.stdout).unwrap();
    assert_eq!(a["verdict"], r["verdict"]);
    assert_eq!(a["score"], r["score"]);
    assert_eq!(
        a["intervals"], r["intervals"],
        "the same windows judged the same"
    );
    // 12 s in 3 s intervals; an abort (v2's latency is 1.25× v1's, near the allowed 1.3×, and
    // a loaded machine can push it over) ends the analysis at the interval that aborted.
    let n = a["intervals"].as_array().unwrap().len();
    assert!(
        n == 4 || (a["verdict"] == "abort" && (1..4).contains(&n)),
        "{n} intervals: {}",
        analyzed.stdout
    );
}

/// Unix seconds as RFC 3339 (UTC).
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[test]
fn direct_scrape_gives_a_verdict_on_real_data() {
    let mut env = Env::new("scrape");
    let b = env.demo("v1", 120.0, 0.01, 400.0);
    let c = env.demo("v2", 120.0, 0.01, 400.0);
    let yaml = format!(
        r#"name: scrape-demo
analysis: {{lifetime: 6s, interval: 2s, min_samples: 3, independence: assume}}
source: {{type: scrape, baseline: ["http://127.0.0.1:{b}/metrics"], canary: ["http://127.0.0.1:{c}/metrics"], step: 250ms, settle: 300ms}}
metrics:
  - name: latency_p99
    group: latency
    direction: increase
    allowed_increase: 1.5
    critical: true
    scrape: {{metric: http_request_duration_seconds, quantile: 0.99}}
  - name: requests
    group: traffic
    allowed_increase: 1.5
    allowed_decrease: 0.5
    scrape: {{metric: http_requests_total, rate: true}}
"#
    );
    let cfg = env.write("s.yaml", &yaml);
    let run = fledge(
        &["analyze", "--config", path(&cfg), "--format", "json"],
        &[],
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["verdict"], "promote");
    let last = report["intervals"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    for m in last["metrics"].as_array().unwrap() {
        assert_eq!(m["classification"], "pass", "{m}");
        // 2 s windows growing to 6 s at 4 points a second, less the first scrape.
        let n = m["n_canary"].as_u64().unwrap();
        assert!(n >= 15, "{m}");
    }
    // Scraping has no history: a retrospective analysis is refused clearly.
    let run = fledge(
        &[
            "analyze",
            "--config",
            path(&cfg),
            "--start",
            "1700000000",
            "--end",
            "1700000060",
        ],
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("has no history"), "{}", run.stderr);
}

/// A TCP proxy on 127.0.0.1 that holds every chunk from the client for `delay` before passing
/// it on: a metric store at a network distance. Its threads end with the test process.
fn latency_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 || {
                        std::thread::sleep(delay);
                        s_out.write_all(&buf[..n]).is_err()
                    } {
                        break;
                    }
                }
                let _ = s_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

#[test]
#[ignore = "a measurement, not a check: cargo test --release --test live -- --ignored --nocapture"]
fn measure_fetching_and_judging_50_metrics() {
    use fledge_analyzer::engine::{IntervalPlan, judge_interval};
    use fledge_analyzer::source::prometheus::PrometheusSource;
    use fledge_analyzer::source::{FetchRange, MetricSource, expand_spec};
    use fledge_judges::Side;

    let mut env = Env::new("measure");
    env.demo("v1", 120.0, 0.01, 500.0);
    env.demo("v2", 120.0, 0.01, 500.0);
    let prom = env.prometheus();
    std::thread::sleep(Duration::from_secs(32));
    let kinds = [
        "histogram_quantile(0.{q}, sum by (le) (rate(http_request_duration_seconds_bucket{version=\"${version}\"}[{w}s])))",
        "sum(rate(http_requests_total{version=\"${version}\",code=\"500\"}[{w}s])) / sum(rate(http_requests_total{version=\"${version}\"}[{w}s]))",
        "sum(rate(http_requests_total{version=\"${version}\"}[{w}s]))",
        "sum(rate(http_request_duration_seconds_sum{version=\"${version}\"}[{w}s])) / sum(rate(http_request_duration_seconds_count{version=\"${version}\"}[{w}s]))",
    ];
    let config = |port: u16, concurrency: usize| {
        let mut metrics = String::new();
        for i in 0..50 {
            let q = kinds[i % 4]
                .replace("{q}", &format!("{}", 50 + i))
                .replace("{w}", &(2 + i % 5).to_string());
            metrics.push_str(&format!(
                "  - {{name: m{i:02}, group: g, min_samples: 3, query: '{q}'}}\n"
            ));
        }
        let yaml = format!(
            "name: measure\nanalysis: {{lifetime: 30s, interval: 30s}}\n\
             source: {{type: prometheus, url: \"http://127.0.0.1:{port}\", step: 100ms, concurrency: {concurrency}}}\n\
             cohorts: {{baseline: {{version: v1}}, canary: {{version: v2}}}}\nmetrics:\n{metrics}"
        );
        fledge_analyzer::config::from_yaml_str(&yaml, "measure.yaml").unwrap()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // 30 s at a 100 ms step: 300 points per series.
    let end = ((now_secs() - 2.0) * 1000.0) as i64;
    let range = FetchRange {
        canary: (end - 30_000, end),
        baseline: (end - 30_000, end),
    };
    let plan = IntervalPlan {
        index: 1,
        start: range.canary.0,
        end: range.canary.1,
        baseline_start: range.baseline.0,
        baseline_end: range.baseline.1,
    };
    let delayed = latency_proxy(prom, Duration::from_millis(20));
    println!("one interval, 50 metrics x 2 cohorts, 300 points per series:");
    rt.block_on(async {
        for (label, port) in [("local Prometheus", prom), ("+20 ms per request", delayed)] {
            let cfg = config(port, 16);
            let spec = Arc::new(cfg.to_spec().unwrap());
            let source = PrometheusSource::new(&cfg).unwrap();
            let data = source.fetch(range).await; // warm up connections and caches
            assert!(data.problems.is_empty(), "{:?}", data.problems);
            let mut singles = Vec::new();
            for m in &spec.metrics {
                for side in [Side::Baseline, Side::Canary] {
                    let q = source.query(&m.name, side).unwrap().to_owned();
                    let t = Instant::now();
                    let r = source.query_range(&q, range.canary.0, range.canary.1).await;
                    singles.push(t.elapsed());
                    assert!(r.unwrap().series[0].series.len() >= 290);
                }
            }
            let sum: Duration = singles.iter().sum();
            let max = *singles.iter().max().unwrap();
            println!(
                "  {label}: 100 queries one after another: sum {:.1} ms, slowest {:.1} ms, median {:.1} ms",
                ms(sum),
                ms(max),
                ms(median(singles.clone()))
            );
            for concurrency in [1, 4, 16, 100] {
                let cfg = config(port, concurrency);
                let source = PrometheusSource::new(&cfg).unwrap();
                let _ = source.fetch(range).await;
                let mut times = Vec::new();
                for _ in 0..5 {
                    let t = Instant::now();
                    let data = source.fetch(range).await;
                    times.push(t.elapsed());
                    assert!(data.problems.is_empty());
                }
                println!(
                    "  {label}: fetch, concurrency {concurrency:>3}: median {:.1} ms",
                    ms(median(times))
                );
            }
            let data = source.fetch(range).await;
            let expanded = expand_spec(&spec, data.recording.metric_names());
            let mut judging = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                let report = judge_interval(&expanded, &plan, &data);
                judging.push(t.elapsed());
                assert_eq!(report.metrics.len(), 50);
            }
            if port == prom {
                println!("  judging the interval: median {:.1} ms", ms(median(judging)));
            }
        }
    });
}
