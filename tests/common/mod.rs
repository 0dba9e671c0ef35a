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

pub fn weight(admin: u16, server: &str) -> u32 {
    let a = haproxy_cmd(admin, &format!("get weight be/{server}"));
    a.split_whitespace().next().unwrap().parse().unwrap()
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
