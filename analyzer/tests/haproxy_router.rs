//! The HAProxy router over a unix socket, against a real HAProxy (Debian's `haproxy`) started
//! here with its runtime API on a socket in a scratch directory. The servers point at loopback
//! ports nobody listens on: weights are HAProxy's own state, no traffic is needed to read them.
//! (tests/rollout.rs drives the same router over TCP, with traffic.)

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fledge_analyzer::rollout::router::{self, Reconciled, haproxy::HaproxyRouter};
use fledge_analyzer::rollout::{RouterError, TrafficRouter};

const HAPROXY: &str = "/usr/sbin/haproxy";

struct Haproxy {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(name: &str) -> Haproxy {
    assert!(
        Path::new(HAPROXY).is_file(),
        "{HAPROXY} is missing: install Debian's `haproxy` package"
    );
    let dir = std::env::temp_dir().join(format!(
        "fledge-haproxy-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("admin.sock");
    let cfg = dir.join("haproxy.cfg");
    let (frontend, b, c) = (free_port(), free_port(), free_port());
    std::fs::write(
        &cfg,
        format!(
            "global\n  stats socket {} mode 600 level admin\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
             frontend fe\n  bind 127.0.0.1:{frontend}\n  default_backend be\n\
             backend be\n  balance roundrobin\n\
             \x20 server baseline 127.0.0.1:{b} weight 100\n\
             \x20 server canary 127.0.0.1:{c} weight 0\n",
            socket.display()
        ),
    )
    .unwrap();
    let child = Command::new(HAPROXY)
        .arg("-f")
        .arg(&cfg)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "HAProxy did not open {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Haproxy { child, dir, socket }
}

/// One runtime API command over the socket, as an operator would send it.
fn admin(socket: &Path, line: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    writeln!(s, "{line}").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The `get weight` of a server: "30 (initial 100)" → 30.
fn weight(socket: &Path, server: &str) -> u32 {
    let answer = admin(socket, &format!("get weight be/{server}"));
    answer
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("`get weight be/{server}` answered {answer:?}"))
}

#[tokio::test]
async fn over_a_unix_socket_weights_are_set_read_back_and_drift_is_corrected() {
    let h = start("unix");
    let path = h.socket.to_str().unwrap().to_owned();
    for admin_spec in [path.clone(), format!("unix://{path}")] {
        let r = HaproxyRouter::new(&admin_spec, "be", "baseline", "canary").unwrap();
        assert!(r.describe().contains(&path), "{}", r.describe());
        // A weight is written to both servers and read back.
        router::reconcile(&r, 30).await.unwrap();
        assert_eq!(
            (weight(&h.socket, "canary"), weight(&h.socket, "baseline")),
            (30, 70)
        );
        assert_eq!(r.current_weight().await.unwrap(), Some(30));
        // Level-triggered: the same weight again changes nothing.
        assert_eq!(router::reconcile(&r, 30).await.unwrap(), Reconciled::InSync);
        // Drift made behind the router's back is seen and corrected.
        admin(&h.socket, "set weight be/canary 0");
        assert_eq!(
            r.current_weight().await.unwrap(),
            None,
            "0 + 70 is no split"
        );
        assert_eq!(
            router::reconcile(&r, 30).await.unwrap(),
            Reconciled::Corrected { from: None }
        );
        assert_eq!(
            (weight(&h.socket, "canary"), weight(&h.socket, "baseline")),
            (30, 70)
        );
        // All the way, and back.
        router::reconcile(&r, 100).await.unwrap();
        assert_eq!(
            (weight(&h.socket, "canary"), weight(&h.socket, "baseline")),
            (100, 0)
        );
        router::reconcile(&r, 0).await.unwrap();
        assert_eq!(
            (weight(&h.socket, "canary"), weight(&h.socket, "baseline")),
            (0, 100)
        );
    }
}

#[tokio::test]
async fn a_wrong_server_or_socket_is_a_clear_error() {
    let h = start("errors");
    let path = h.socket.to_str().unwrap();
    let r = HaproxyRouter::new(path, "be", "baseline", "canary-typo").unwrap();
    let e = router::reconcile(&r, 20).await.unwrap_err();
    let RouterError::Failed { message, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(message.contains("canary-typo"), "{e}");
    // Nothing was half-applied to the servers that exist.
    assert_eq!(weight(&h.socket, "baseline"), 100);

    let missing = h.dir.join("no-such.sock");
    let r = HaproxyRouter::new(missing.to_str().unwrap(), "be", "baseline", "canary").unwrap();
    let e = router::reconcile(&r, 20).await.unwrap_err();
    assert!(e.to_string().contains("no-such.sock"), "{e}");

    // Names that would smuggle a second command are refused before anything is sent.
    assert!(HaproxyRouter::new(path, "be", "baseline", "canary; shutdown").is_err());
}
