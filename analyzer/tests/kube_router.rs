//! The Kubernetes routers against a fake API server (tests/support/fake_kube.rs): no
//! Kubernetes API server can run on this machine, so one is served on 127.0.0.1 with axum and
//! every request it gets is asserted.

#[path = "support/fake_kube.rs"]
mod fake_kube;

use axum::http::Method;
use fake_kube::{Recorded, Server};
use fledge_analyzer::config;
use fledge_analyzer::rollout::router::{self, Reconciled, TrafficRouter};
use serde_json::{Value, json};

/// A router built from config YAML, the way `fledge rollout` builds it.
fn router_from(yaml_router: &str) -> Box<dyn TrafficRouter> {
    let text = format!(
        "name: k\nanalysis: {{interval: 10s}}\ngroups: {{g: 1}}\nmetrics: [{{name: m, group: g}}]\nrollout:\n  router: {yaml_router}\n  steps: [{{set_weight: 50}}]\n"
    );
    let cfg = config::from_yaml_str(&text, "test.yaml").expect("a valid config");
    router::build(&cfg.rollout.unwrap().router).expect("a router")
}

const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/checkout";
const SPLIT: &str = "/apis/split.smi-spec.io/v1alpha2/namespaces/shop/trafficsplits/checkout";
const VS: &str = "/apis/networking.istio.io/v1beta1/namespaces/shop/virtualservices/checkout";

fn httproute(canary: u32) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "7"},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "hostnames": ["shop.example"],
            "rules": [
                {"matches": [{"headers": [{"name": "x-canary", "value": "always"}]}],
                 "backendRefs": [{"name": "checkout-canary", "port": 8080}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [
                    {"name": "checkout-stable", "port": 8080, "weight": 100 - canary},
                    {"name": "checkout-canary", "port": 8080, "weight": canary}]}
            ]
        }
    })
}

fn trafficsplit(canary: u32) -> Value {
    json!({
        "apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "3"},
        "spec": {"service": "checkout", "backends": [
            {"service": "checkout-stable", "weight": 100 - canary},
            {"service": "checkout-canary", "weight": canary}]}
    })
}

fn virtualservice(canary: u32) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "12"},
        "spec": {"hosts": ["checkout"], "http": [
            {"name": "primary", "retries": {"attempts": 2},
             "route": [
                {"destination": {"host": "checkout-stable", "port": {"number": 80}}, "weight": 100 - canary},
                {"destination": {"host": "checkout-canary", "port": {"number": 80}}, "weight": canary}]}
        ]}
    })
}

fn kube_yaml(kind: &str, url: &str, extra: &str) -> String {
    format!(
        "{{type: {kind}, api_server: \"{url}\", namespace: shop, name: checkout, baseline: checkout-stable, canary: checkout-canary{extra}}}"
    )
}

/// One reconcile from 0 to `w`: read, GET + merge patch, read back; the patch carries the
/// whole managed array with only the two weights changed, and the object's resourceVersion.
async fn reconcile_and_check(
    kind: &str,
    path: &str,
    object: fn(u32) -> Value,
    token_extra: &str,
    token: Option<&str>,
) {
    let server = Server::start(&[(path, object(0))], token).await;
    let r = router_from(&kube_yaml(kind, &server.url, token_extra));
    assert_eq!(r.current_weight().await.unwrap(), Some(0));
    server.requests();

    let done = router::reconcile(r.as_ref(), 20).await.unwrap();
    assert_eq!(done, Reconciled::Corrected { from: Some(0) });
    let reqs = server.requests();
    let methods: Vec<&str> = reqs.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "GET", "PATCH", "GET"], "{reqs:?}");
    assert!(reqs.iter().all(|r| r.path == path), "{reqs:?}");
    let patch = &reqs[2];
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let mut expected_spec = object(20)["spec"].clone();
    let array = match kind {
        "gateway_api" => "rules",
        "smi" => "backends",
        _ => "http",
    };
    let expected = json!({
        "metadata": {"resourceVersion": object(0)["metadata"]["resourceVersion"]},
        "spec": {array: expected_spec[array].take()},
    });
    assert_eq!(patch.body.as_ref().unwrap(), &expected);
    if let Some(t) = token {
        assert!(
            reqs.iter()
                .all(|r| r.auth.as_deref() == Some(&format!("Bearer {t}"))),
            "{reqs:?}"
        );
    }
    // The object now is the 20% object; nothing else in it changed.
    let mut now = server.object(path);
    now["metadata"]["resourceVersion"] = object(0)["metadata"]["resourceVersion"].clone();
    assert_eq!(now, object(20));

    // Level-triggered: a second reconcile to the same weight only reads.
    assert_eq!(
        router::reconcile(r.as_ref(), 20).await.unwrap(),
        Reconciled::InSync
    );
    let methods: Vec<Method> = server.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, [Method::GET]);
}

#[tokio::test]
async fn httproute_backend_weights_are_merge_patched() {
    reconcile_and_check("gateway_api", ROUTE, httproute, "", None).await;
}

#[tokio::test]
async fn trafficsplit_backend_weights_are_merge_patched() {
    reconcile_and_check("smi", SPLIT, trafficsplit, "", None).await;
}

#[tokio::test]
async fn virtualservice_route_weights_are_merge_patched_with_a_token_from_a_file() {
    let tmp = tempfile::Builder::new()
        .prefix("fledge-kube-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let file = dir.join("token");
    std::fs::write(&file, "s3cr3t-token\n").unwrap();
    let extra = format!(", token: {{file: \"{}\"}}", file.display());
    reconcile_and_check("istio", VS, virtualservice, &extra, Some("s3cr3t-token")).await;
}

#[tokio::test]
async fn drift_made_behind_the_routers_back_is_corrected() {
    let server = Server::start(&[(ROUTE, httproute(60))], None).await;
    let r = router_from(&kube_yaml("gateway_api", &server.url, ""));
    assert_eq!(
        router::reconcile(r.as_ref(), 60).await.unwrap(),
        Reconciled::InSync
    );
    // Someone sets the canary back to 0 by hand (kubectl edit).
    server.edit(ROUTE, |o| {
        o["spec"]["rules"][1]["backendRefs"][0]["weight"] = json!(100);
        o["spec"]["rules"][1]["backendRefs"][1]["weight"] = json!(0);
    });
    assert_eq!(
        router::reconcile(r.as_ref(), 60).await.unwrap(),
        Reconciled::Corrected { from: Some(0) }
    );
    assert_eq!(
        server.object(ROUTE)["spec"]["rules"][1]["backendRefs"][1]["weight"],
        json!(60)
    );
}

#[tokio::test]
async fn a_conflicting_write_is_retried_on_the_fresh_object() {
    let server = Server::start(&[(SPLIT, trafficsplit(0))], None).await;
    let r = router_from(&kube_yaml("smi", &server.url, ""));
    server.fake.lock().unwrap().race_next_patch = true;
    r.set_weight(40).await.unwrap();
    let reqs = server.requests();
    let patches: Vec<&Recorded> = reqs.iter().filter(|r| r.method == Method::PATCH).collect();
    assert_eq!(patches.len(), 2, "{reqs:?}");
    // The retry carries the resourceVersion the other writer left.
    assert_eq!(
        patches[0].body.as_ref().unwrap()["metadata"]["resourceVersion"],
        json!("3")
    );
    assert_eq!(
        patches[1].body.as_ref().unwrap()["metadata"]["resourceVersion"],
        json!("4")
    );
    assert_eq!(
        server.object(SPLIT)["spec"]["backends"][1]["weight"],
        json!(40)
    );
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_error_that_does_not_show_the_token() {
    let server = Server::start(&[(VS, virtualservice(0))], Some("right-token")).await;
    // A token file whose token is not the server's. (The `env:` form is tested through the
    // CLI in tests/kube_rollout.rs, where the child's environment can be set.)
    let tmp = tempfile::Builder::new()
        .prefix("fledge-kube-wrong-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let file = dir.join("token");
    std::fs::write(&file, "wrong-token-value").unwrap();
    let r = router_from(&kube_yaml(
        "istio",
        &server.url,
        &format!(", token: {{file: \"{}\"}}", file.display()),
    ));
    let e = r.current_weight().await.unwrap_err().to_string();
    assert!(e.contains("VirtualService shop/checkout"), "{e}");
    assert!(e.contains("401"), "{e}");
    assert!(e.contains("bearer token was not accepted"), "{e}");
    assert!(!e.contains("wrong-token-value"), "{e}");
    assert!(!r.describe().contains("wrong-token-value"));
    let reqs = server.requests();
    assert_eq!(
        reqs[0].auth.as_deref(),
        Some("Bearer wrong-token-value"),
        "{reqs:?}"
    );
}

#[tokio::test]
async fn a_missing_object_or_a_down_server_is_an_error_not_a_panic() {
    let server = Server::start(&[], None).await;
    let r = router_from(&kube_yaml("gateway_api", &server.url, ""));
    let e = router::reconcile(r.as_ref(), 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("HTTPRoute shop/checkout"), "{e}");
    assert!(e.contains("404"), "{e}");
    assert!(e.contains("not found"), "{e}");

    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = router_from(&kube_yaml(
        "smi",
        &format!("http://127.0.0.1:{port}"),
        ", timeout: 2s",
    ));
    let e = r.set_weight(10).await.unwrap_err().to_string();
    assert!(e.contains("did not answer"), "{e}");
}

#[tokio::test]
async fn an_object_without_the_two_backends_is_refused_before_any_write() {
    let mut route = httproute(0);
    route["spec"]["rules"][1]["backendRefs"][1]["name"] = json!("someone-else");
    let server = Server::start(&[(ROUTE, route)], None).await;
    let r = router_from(&kube_yaml("gateway_api", &server.url, ""));
    let e = router::reconcile(r.as_ref(), 50)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "no spec.rules[].backendRefs refers to both checkout-stable and checkout-canary"
        ),
        "{e}"
    );
    assert!(server.requests().iter().all(|r| r.method == Method::GET));
}

#[test]
fn kube_router_config_errors_name_the_field() {
    let text = "name: k\nanalysis: {interval: 10s}\ngroups: {g: 1}\nmetrics: [{name: m, group: g}]\nrollout:\n  router: {type: istio, api_server: \"http://127.0.0.1:1\", namespace: Shop, name: checkout, baseline: a, canary: b, colour: red}\n  steps: [{set_weight: 50}]\n";
    let e = config::from_yaml_str(text, "k.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
    let text = text.replace(", colour: red", "");
    let e = config::from_yaml_str(&text, "k.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rollout.router.namespace"), "{e}");
    assert!(e.contains("\"Shop\" is not a Kubernetes name"), "{e}");
}

#[test]
fn a_ca_file_that_is_missing_or_not_pem_is_a_clear_error() {
    let tmp = tempfile::Builder::new()
        .prefix("fledge-kube-ca-")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let bad = dir.join("ca.crt");
    std::fs::write(&bad, "not a certificate").unwrap();
    for (file, expect) in [
        (dir.join("missing.crt"), "cannot read the CA file"),
        (bad, "not a PEM certificate"),
    ] {
        let text = format!(
            "name: k\nanalysis: {{interval: 10s}}\ngroups: {{g: 1}}\nmetrics: [{{name: m, group: g}}]\nrollout:\n  router: {}\n  steps: [{{set_weight: 50}}]\n",
            kube_yaml(
                "smi",
                "https://127.0.0.1:1",
                &format!(", ca_file: \"{}\"", file.display())
            )
        );
        let cfg = config::from_yaml_str(&text, "k.yaml").unwrap();
        let e = match router::build(&cfg.rollout.unwrap().router) {
            Ok(_) => panic!("{} was accepted", file.display()),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(expect), "{e}");
        assert!(e.contains(&file.display().to_string()), "{e}");
    }
}

/// Runs `openssl` (Debian's) in `dir`; panics with its output when it fails.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`name`.crt/.key) made by openssl.
fn make_ca(dir: &std::path::Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// The API server over real TLS: `openssl s_server -WWW` serves the object as a file, with a
/// certificate for 127.0.0.1 signed by a test CA. The router trusts that CA through
/// `ca_file` (as it trusts the service account's ca.crt in a cluster) and refuses another.
#[tokio::test]
async fn https_with_a_ca_file_verifies_the_api_servers_certificate() {
    let tmp = tempfile::Builder::new()
        .prefix("fledge-kube-tls-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    let www = dir.join("www");
    let object_dir = www.join(SPLIT.trim_start_matches('/'));
    std::fs::create_dir_all(object_dir.parent().unwrap()).unwrap();
    std::fs::write(&object_dir, trafficsplit(25).to_string()).unwrap();
    make_ca(&dir, "ca");
    make_ca(&dir, "other-ca");
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "srv.crt",
        ],
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("srv.crt"))
        .arg("-key")
        .arg(dir.join("srv.key"))
        .current_dir(&www)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed().as_secs() < 20,
            "openssl s_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("https://127.0.0.1:{port}");
    let with_ca = |ca: &str| {
        router_from(&kube_yaml(
            "smi",
            &url,
            &format!(", ca_file: \"{}\", timeout: 5s", dir.join(ca).display()),
        ))
    };
    let trusted = with_ca("ca.crt").current_weight().await;
    let untrusted = with_ca("other-ca.crt").current_weight().await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(trusted.unwrap(), Some(25));
    let e = untrusted.unwrap_err().to_string();
    assert!(e.contains("did not answer"), "{e}");
    assert!(e.contains("certificate"), "{e}");
}
