//! The rollout's HTTP clients against a local receiver (analyzer/tests/support/receiver.rs, a
//! std TcpListener on 127.0.0.1 standing in for the user's endpoint): the `type: webhook`
//! router and the hooks client.

mod support {
    pub mod receiver;
}

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fledge_analyzer::config::Duration as ConfigDuration;
use fledge_analyzer::rollout::hooks::HookClient;
use fledge_analyzer::rollout::router::{self, Reconciled};
use fledge_analyzer::rollout::{Hook, HookType, RouterConfig};
use serde_json::json;
use support::receiver::{Receiver, Reply};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn webhook(url: String, timeout: Duration) -> Box<dyn router::TrafficRouter> {
    let timeout = ConfigDuration::from_millis(timeout.as_millis() as u64);
    router::build(&RouterConfig::Webhook { url, timeout }).unwrap()
}

fn receiver() -> Receiver {
    Receiver::start(|req, _| match req.path.as_str() {
        "/down" => Reply::status(503).with_body("maintenance until 10:00\n"),
        "/slow" => Reply::status(200).after(Duration::from_secs(3)),
        _ => Reply::status(200),
    })
}

#[test]
fn the_webhook_router_posts_both_weights_and_posts_again_on_every_reconcile() {
    let r = receiver();
    let router = webhook(r.url("/weights"), Duration::from_secs(2));
    let rt = rt();
    assert_eq!(rt.block_on(router.current_weight()).unwrap(), None);
    let first = rt.block_on(router::reconcile(router.as_ref(), 30)).unwrap();
    assert_eq!(first, Reconciled::Corrected { from: None });
    let reqs = r.to("/weights");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(reqs[0].body, r#"{"baseline_weight":70,"canary_weight":30}"#);

    // It cannot read the weight back, so the same weight is posted again (idempotent for the
    // receiver): level-triggered, a reconcile never assumes the last write stuck.
    let again = rt.block_on(router::reconcile(router.as_ref(), 30)).unwrap();
    assert_eq!(again, Reconciled::Corrected { from: None });
    rt.block_on(router::reconcile(router.as_ref(), 250))
        .unwrap();
    let bodies: Vec<String> = r.to("/weights").into_iter().map(|q| q.body).collect();
    assert_eq!(
        bodies,
        [
            r#"{"baseline_weight":70,"canary_weight":30}"#,
            r#"{"baseline_weight":70,"canary_weight":30}"#,
            r#"{"baseline_weight":0,"canary_weight":100}"#,
        ],
        "weights above 100 are capped"
    );
}

#[test]
fn a_refusing_webhook_is_a_router_error_with_the_status_and_the_answer() {
    let r = receiver();
    let url = r.url("/down");
    let router = webhook(url.clone(), Duration::from_secs(2));
    let err = rt()
        .block_on(router::reconcile(router.as_ref(), 20))
        .unwrap_err();
    assert!(matches!(err, router::RouterError::Failed { .. }), "{err:?}");
    // The URL's path may hold a token: messages show scheme, host and port only.
    let shown = format!("http://127.0.0.1:{}/…", r.port);
    assert_eq!(
        err.to_string(),
        format!("webhook {shown}: answered 503 Service Unavailable: maintenance until 10:00")
    );
    assert!(!err.to_string().contains("/down"), "{err}");
}

#[test]
fn a_webhook_that_does_not_answer_in_time_is_a_router_error_naming_the_timeout() {
    let r = receiver();
    let url = r.url("/slow");
    let router = webhook(url.clone(), Duration::from_millis(300));
    let started = Instant::now();
    let err = rt().block_on(router.set_weight(10)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let shown = format!("http://127.0.0.1:{}/…", r.port);
    assert!(url.ends_with("/slow"));
    assert_eq!(
        err.to_string(),
        format!("webhook {shown}: no answer within 300ms")
    );
    assert_eq!(r.to("/slow").len(), 1);

    // Nobody listening at all.
    let port = r.port;
    drop(r);
    std::thread::sleep(Duration::from_millis(100));
    let router = webhook(
        format!("http://127.0.0.1:{port}/hooks/s3cret-path?token=s3cret-query"),
        Duration::from_secs(1),
    );
    let err = rt().block_on(router.set_weight(10)).unwrap_err();
    assert!(err.to_string().contains("could not be reached"), "{err}");
    assert!(!err.to_string().contains("s3cret"), "no secret in {err}");
}

fn hook(url: String, retries: u32, timeout: Duration) -> Hook {
    Hook {
        name: "gate".to_owned(),
        kind: HookType::ConfirmPromotion,
        url,
        timeout: ConfigDuration::from_millis(timeout.as_millis() as u64),
        retries,
        metadata: BTreeMap::new(),
    }
}

#[test]
fn a_hook_is_retried_after_refusals_and_timeouts_and_reports_how_it_went() {
    let r = Receiver::start(|req, n| match req.path.as_str() {
        // Refuses twice, then agrees.
        "/flaky" if n < 2 => Reply::status(500).with_body("not yet"),
        "/flaky" => Reply::status(202),
        "/no" => Reply::status(403).with_body("change freeze"),
        "/slow" => Reply::status(200).after(Duration::from_secs(3)),
        _ => Reply::status(404),
    });
    let client = HookClient::new().unwrap();
    let payload = json!({"name": "shop", "hook": "gate", "weight": 60});
    let rt = rt();

    let ok = rt.block_on(client.call(&hook(r.url("/flaky"), 2, Duration::from_secs(2)), &payload));
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.detail, "answered 202 Accepted (attempt 3)");
    let reqs = r.to("/flaky");
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter()
            .all(|q| q.json() == payload && q.method == "POST")
    );
    assert!(reqs[2].at - reqs[0].at >= Duration::from_millis(250 + 500));

    let no = rt.block_on(client.call(&hook(r.url("/no"), 1, Duration::from_secs(2)), &payload));
    assert!(!no.ok);
    assert_eq!(
        no.detail,
        "answered 403 Forbidden: change freeze (2 attempts)"
    );
    assert_eq!(r.to("/no").len(), 2);

    let started = Instant::now();
    let slow = rt.block_on(client.call(
        &hook(r.url("/slow"), 0, Duration::from_millis(200)),
        &payload,
    ));
    assert!(!slow.ok);
    assert_eq!(slow.detail, "no answer within 200ms");
    assert!(started.elapsed() < Duration::from_secs(2));
}
