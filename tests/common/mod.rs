//! Helpers shared by the end-to-end tests: free loopback ports, child processes killed on
//! drop, a tiny HTTP client, and the rollout stack (two `fledge demo` instances behind a real
//! HAProxy, a real Prometheus scraping both).
#![allow(dead_code)] // each test binary uses a part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The hook and webhook receiver (a std TcpListener), shared with the analyzer's tests.
#[path = "../../analyzer/tests/support/receiver.rs"]
pub mod receiver;

pub const FLEDGE: &str = env!("CARGO_BIN_EXE_fledge");
pub const HAPROXY: &str = "/usr/sbin/haproxy";

pub struct Env {
    pub dir: PathBuf,
    pub children: Vec<Child>,
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One HTTP/1.0 exchange: (status, head, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
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

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one command to HAProxy's runtime API over TCP.
pub fn haproxy_cmd(admin: u16, line: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).expect("haproxy admin");
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.trim().to_owned()
}

/// The server's current weight. HAProxy's runtime API can answer a concurrent command with
/// something other than the weight (the router under test uses the same API), so a few
/// answers are tried before the last one is reported.
pub fn weight(admin: u16, server: &str) -> u32 {
    let mut last = String::new();
    for _ in 0..20 {
        last = haproxy_cmd(admin, &format!("get weight be/{server}"));
        if let Some(w) = last.split_whitespace().next().and_then(|w| w.parse().ok()) {
            return w;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("HAProxy answered {last:?} for the weight of {server}");
}

/// A new, empty temporary directory for one test: `fledge-NAME-PID-N`.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fledge-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct Stack {
    pub env: Env,
    pub frontend: u16,
    pub admin: u16,
    pub prometheus: u16,
}

impl Env {
    pub fn new(name: &str) -> Env {
        Env {
            dir: scratch_dir(&format!("rollout-{name}")),
            children: Vec::new(),
        }
    }

    pub fn spawn(&mut self, cmd: &mut Command) {
        self.children
            .push(cmd.spawn().expect("start a child process"));
    }

    pub fn demo(&mut self, version: &str, error_rate: f64) -> u16 {
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
pub fn stack(name: &str, canary_error_rate: f64) -> Stack {
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

/// A rollout config for the stack: latency and error-rate metrics from Prometheus (with a
/// bearer token read from the environment variable `token_env`, when given), the HAProxy
/// router, and `steps` (YAML lines, each `    - …`) with `hold_timeout`.
pub fn config_with_steps(
    prom: u16,
    admin: u16,
    hold_timeout: &str,
    token_env: Option<&str>,
    steps: &str,
) -> String {
    let rollout = format!("  hold_timeout: {hold_timeout}\n  steps:\n{steps}");
    rollout_yaml(prom, admin, token_env, &rollout, "")
}

/// A rollout config for the stack, as [`config_with_steps`], with `rollout` the `rollout:`
/// section below its router (indented by two spaces) and `metrics` more metrics (indented
/// list items).
pub fn rollout_yaml(
    prom: u16,
    admin: u16,
    token_env: Option<&str>,
    rollout: &str,
    metrics: &str,
) -> String {
    let auth = token_env
        .map(|name| format!(", auth: {{bearer_token: {{env: {name}}}}}"))
        .unwrap_or_default();
    format!(
        r#"name: rollout-demo
groups: {{latency: 50, errors: 50}}
analysis: {{interval: 5s, min_samples: 3, independence: assume}}
source: {{type: prometheus, url: "http://127.0.0.1:{prom}", step: 1s, settle: 1500ms, timeout: 2s, retries: 1{auth}}}
cohorts:
  baseline: {{version: v1}}
  canary: {{version: v2}}
rollout:
  router: {{type: haproxy, admin: "tcp://127.0.0.1:{admin}", backend: be, baseline: baseline, canary: canary}}
{rollout}metrics:
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
{metrics}"#
    )
}

/// The bearer token the `fledge serve` tests use.
pub const TOKEN: &str = "s3cret-token-for-tests";

/// A `fledge serve` process, killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `kill -9`, and wait for the process to be gone.
    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        let _ = self.child.wait();
    }
}

/// Starts `fledge serve` on a free loopback port with `--data data`, the token in
/// `FLEDGE_TOKEN`, info logs appended to `stderr` (or dropped), and extra arguments and
/// environment.
pub fn serve(data: &Path, args: &[&str], envs: &[(&str, &str)], stderr: Option<&Path>) -> Server {
    use std::io::{BufRead, BufReader};
    let err = match stderr {
        Some(p) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap(),
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(FLEDGE)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .env("FLEDGE_TOKEN", TOKEN)
        .env("FLEDGE_LOG", "info")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("fledge serve did not start: {line:?}"))
        .to_owned();
    Server { child, addr }
}

/// One HTTP/1.1 request to `addr`, with the bearer `token` when given; (status, body).
pub fn api(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out[9..12].parse().unwrap();
    let (head, rest) = out.split_once("\r\n\r\n").unwrap();
    let rest = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, rest)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A webhook receiver on a free loopback port that answers 200 to every request.
pub fn notifications() -> receiver::Receiver {
    receiver::Receiver::start(|_, _| receiver::Reply::status(200))
}
