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
    let dir = std::env::temp_dir().join(format!("fledge-kube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    let dir = std::env::temp_dir().join(format!("fledge-kube-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
