//! `fledge rollout` with a Kubernetes router, as a user runs it, against a fake API server
//! (analyzer/tests/support/fake_kube.rs) on 127.0.0.1: no Kubernetes API server can run on
//! this machine. The fake checks the bearer token and applies the merge patches; the test
//! asserts the weights the rollout wrote, in order, and the manual promote.

#[path = "../analyzer/tests/support/fake_kube.rs"]
mod fake_kube;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};

const FLEDGE: &str = env!("CARGO_BIN_EXE_fledge");
const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout";

fn httproute() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "1"},
        "spec": {"parentRefs": [{"name": "public"}], "rules": [{"backendRefs": [
            {"name": "checkout-stable", "port": 8080, "weight": 100},
            {"name": "checkout-canary", "port": 8080, "weight": 0}]}]}
    })
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fledge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_rollout_moves_an_httproute_step_by_step_and_waits_for_a_manual_promote() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(fake_kube::Server::start(
        &[(ROUTE, httproute())],
        Some("token-from-env"),
    ));
    let dir = tempdir("kube-rollout");
    let recording = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/recordings/healthy.csv"
    );
    let cfg = dir.join("rollout.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"name: checkout
groups: {{latency: 1}}
analysis: {{interval: 10s}}
source: {{type: recording, path: "{recording}"}}
metrics:
  - {{name: latency_p99, group: latency, direction: increase}}
rollout:
  router:
    type: gateway_api
    api_server: "{url}"
    namespace: shop
    name: checkout
    baseline: checkout-stable
    canary: checkout-canary
    token: {{env: FLEDGE_TEST_KUBE_TOKEN}}
  steps:
    - set_weight: 30
    - pause: 1s
    - set_weight: 70
    - pause: {{}}
"#,
            url = server.url
        ),
    )
    .unwrap();
    let state = dir.join("state");
    let mut child = Command::new(FLEDGE)
        .args(["rollout", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .env("FLEDGE_TEST_KUBE_TOKEN", "token-from-env")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until the rollout sits at 70% in the manual pause.
    let weight = |s: &fake_kube::Server| {
        s.object(ROUTE)["spec"]["rules"][0]["backendRefs"][1]["weight"]
            .as_u64()
            .unwrap()
    };
    let t0 = Instant::now();
    while weight(&server) != 70 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the rollout never reached 70%"
        );
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "fledge rollout ended early ({status}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Held at the pause: still 70 a moment later.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(weight(&server), 70);

    let promote = Command::new(FLEDGE)
        .args(["rollout", "promote", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        promote.status.success(),
        "{}",
        String::from_utf8_lossy(&promote.stderr)
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("promoted: canary weight 100"), "{stdout}");
    assert_eq!(weight(&server), 100);

    // Every write was a merge patch with the token; the weights went 30, 70, 100, once each.
    let reqs = server.requests();
    assert!(
        reqs.iter()
            .all(|r| r.auth.as_deref() == Some("Bearer token-from-env")),
        "{reqs:?}"
    );
    let written: Vec<u64> = reqs
        .iter()
        .filter(|r| r.method == Method::PATCH)
        .map(|r| {
            r.body.as_ref().unwrap()["spec"]["rules"][0]["backendRefs"][1]["weight"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(written, [30, 70, 100], "{reqs:?}");
    let after = server.object(ROUTE);
    assert_eq!(after["spec"]["parentRefs"], json!([{"name": "public"}]));
    assert_eq!(
        after["spec"]["rules"][0]["backendRefs"][0]["weight"],
        json!(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
