//! The Prometheus source against a scripted local HTTP server (127.0.0.1 only): retries,
//! timeouts, garbage and truncated bodies, credentials, and how a fetch pairs series.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fledge_analyzer::config;
use fledge_analyzer::engine::WindowData;
use fledge_analyzer::source::prometheus::PrometheusSource;
use fledge_analyzer::source::{FetchRange, MetricSource};
use fledge_judges::Side;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: String,
}

impl Seen {
    /// A form field of the body, decoded.
    fn form(&self, key: &str) -> Option<String> {
        let url = reqwest::Url::parse(&format!("http://x/?{}", self.body)).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// What to answer: raw bytes (so responses can lie about their length), or hang.
enum Answer {
    Raw(Vec<u8>),
    Hang,
}

fn http(status: &str, body: &str) -> Answer {
    Answer::Raw(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<AtomicUsize>,
}

/// Starts a server on a free loopback port; `answer(n, request)` answers the n-th request
/// (0-based).
async fn serve(answer: impl Fn(usize, &Seen) -> Answer + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let (s, c) = (Arc::clone(&seen), Arc::clone(&count));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, count, answer) = (Arc::clone(&s), Arc::clone(&c), Arc::clone(&answer));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let request = loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_owned();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]);
                            break Seen {
                                head,
                                body: body.into_owned(),
                            };
                        }
                    }
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(request.clone());
                match answer(n, &request) {
                    Answer::Raw(bytes) => {
                        let _ = stream.write_all(&bytes).await;
                        let _ = stream.shutdown().await;
                    }
                    Answer::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    Server { url, seen, count }
}

const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"],[1700000010,"2"]]}]}}"#;

fn config(url: &str, extra: &str) -> config::Config {
    let yaml = format!(
        r#"
name: t
analysis: {{lifetime: 1m, interval: 30s}}
source: {{type: prometheus, url: "{url}", step: 10s, {extra}}}
cohorts:
  baseline: {{version: v1}}
  canary: {{version: v2}}
metrics:
  - name: latency
    group: g
    query: 'lat{{version="${{version}}"}}'
"#
    );
    config::from_yaml_str(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn source(url: &str, extra: &str) -> PrometheusSource {
    PrometheusSource::new(&config(url, extra)).unwrap()
}

const T0: i64 = 1_700_000_000_000;

#[tokio::test]
async fn retries_5xx_then_succeeds() {
    let server = serve(|n, _| {
        if n < 2 {
            http(
                "503 Service Unavailable",
                r#"{"status":"error","errorType":"unavailable","error":"busy"}"#,
            )
        } else {
            http("200 OK", MATRIX)
        }
    })
    .await;
    let s = source(&server.url, "retries: 3");
    let r = s.query_range("up", T0, T0 + 20_000).await.unwrap();
    assert_eq!(r.series.len(), 1);
    assert_eq!(r.series[0].series.v, [1.0, 2.0]);
    assert_eq!(server.count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn gives_up_after_the_retries_with_the_servers_message() {
    let server = serve(|_, _| {
        http(
            "500 Internal Server Error",
            r#"{"status":"error","errorType":"internal","error":"disk on fire"}"#,
        )
    })
    .await;
    let s = source(&server.url, "retries: 2");
    let e = s.query_range("up", T0, T0 + 20_000).await.unwrap_err();
    assert!(e.contains("HTTP 500"), "{e}");
    assert!(e.contains("disk on fire"), "{e}");
    assert!(e.contains("after 3 attempts"), "{e}");
    assert_eq!(server.count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_429_but_not_400() {
    let server = serve(|n, _| {
        if n == 0 {
            Answer::Raw(
                b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec(),
            )
        } else {
            http("200 OK", MATRIX)
        }
    })
    .await;
    let s = source(&server.url, "retries: 1");
    assert!(s.query_range("up", T0, T0 + 20_000).await.is_ok());
    assert_eq!(server.count.load(Ordering::SeqCst), 2);

    let server = serve(|_, _| {
        http(
            "400 Bad Request",
            r#"{"status":"error","errorType":"bad_data","error":"1:4: parse error: unexpected end of input"}"#,
        )
    })
    .await;
    let s = source(&server.url, "retries: 3");
    let e = s.query_range("up{", T0, T0 + 20_000).await.unwrap_err();
    assert!(e.contains("HTTP 400"), "{e}");
    assert!(e.contains("bad_data") && e.contains("parse error"), "{e}");
    assert_eq!(
        server.count.load(Ordering::SeqCst),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn timeouts_are_retried_and_reported() {
    let server = serve(|_, _| Answer::Hang).await;
    let s = source(&server.url, "retries: 1, timeout: 300ms");
    let started = std::time::Instant::now();
    let e = s.query_range("up", T0, T0 + 20_000).await.unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert!(e.contains("after 2 attempts"), "{e}");
    assert_eq!(server.count.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn garbage_and_truncated_bodies_are_errors() {
    let server = serve(|_, _| http("200 OK", "<html>hello</html>")).await;
    let e = source(&server.url, "")
        .query_range("up", T0, T0 + 20_000)
        .await
        .unwrap_err();
    assert!(e.contains("not the Prometheus API's JSON"), "{e}");
    assert_eq!(
        server.count.load(Ordering::SeqCst),
        1,
        "garbage is not retried"
    );

    // A body cut short where the length is known: a transport error, retried, then reported.
    let server = serve(|_, _| {
        Answer::Raw(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 500\r\nconnection: close\r\n\r\n{}",
                &MATRIX[..40]
            )
            .into_bytes(),
        )
    })
    .await;
    let e = source(&server.url, "retries: 1")
        .query_range("up", T0, T0 + 20_000)
        .await
        .unwrap_err();
    assert!(e.contains("response body"), "{e}");
    assert_eq!(server.count.load(Ordering::SeqCst), 2);

    // Cut short where the body ends with the connection: the JSON is incomplete.
    let server = serve(|_, _| {
        Answer::Raw(
            format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{}",
                &MATRIX[..60]
            )
            .into_bytes(),
        )
    })
    .await;
    let e = source(&server.url, "retries: 0")
        .query_range("up", T0, T0 + 20_000)
        .await
        .unwrap_err();
    assert!(e.contains("truncated"), "{e}");
}

#[tokio::test]
async fn query_times_sit_on_the_step_grid() {
    let server = serve(|_, _| http("200 OK", MATRIX)).await;
    let s = source(&server.url, "");
    // [T0 + 1 ms, T0 + 30 s): points at T0 + 10 s and T0 + 20 s.
    s.query_range("up", T0 + 1, T0 + 30_000).await.unwrap();
    let seen = server.seen.lock().unwrap()[0].clone();
    assert!(
        seen.head.starts_with("POST /api/v1/query_range "),
        "{}",
        seen.head
    );
    assert_eq!(seen.form("query").as_deref(), Some("up"));
    assert_eq!(seen.form("start").as_deref(), Some("1700000010"));
    assert_eq!(seen.form("end").as_deref(), Some("1700000020"));
    assert_eq!(seen.form("step").as_deref(), Some("10"));
}

#[tokio::test]
async fn long_ranges_are_split_under_the_point_limit() {
    let server = serve(|_, _| http("200 OK", MATRIX)).await;
    let mut cfg = config(&server.url, "");
    cfg.source.as_mut().unwrap().step = Some(config::Duration::from_secs(1));
    let s = PrometheusSource::new(&cfg).unwrap();
    // 25,000 points at 1 s: three requests of at most 10,000.
    s.query_range("up", T0, T0 + 25_000_000).await.unwrap();
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let starts: Vec<String> = seen.iter().filter_map(|s| s.form("start")).collect();
    assert_eq!(starts, ["1700000000", "1700010000", "1700020000"]);
    assert_eq!(seen[2].form("end").as_deref(), Some("1700024999"));
}

#[tokio::test]
async fn credentials_are_sent_and_never_shown() {
    let dir = std::env::temp_dir().join(format!("fledge-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "s3cret-token\n").unwrap();
    let server = serve(|_, _| {
        http(
            "401 Unauthorized",
            r#"{"status":"error","errorType":"unauthorized","error":"no"}"#,
        )
    })
    .await;
    let extra = format!(
        "auth: {{bearer_token: {{file: {:?}}}}}",
        file.display().to_string()
    );
    let cfg = config(&server.url, &extra);
    // The config carries the file name, never the token.
    assert!(!cfg.to_yaml().unwrap().contains("s3cret"));
    let s = PrometheusSource::new(&cfg).unwrap();
    assert!(!format!("{s:?}").contains("s3cret"));
    let data = s
        .fetch(FetchRange {
            canary: (T0, T0 + 20_000),
            baseline: (T0, T0 + 20_000),
        })
        .await;
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|r| r
            .head
            .to_lowercase()
            .contains("authorization: bearer s3cret-token")),
        "{seen:?}"
    );
    let problem = data.problem("latency").unwrap();
    assert!(problem.contains("HTTP 401"), "{problem}");
    assert!(!problem.contains("s3cret"));

    let basic = format!(
        "auth: {{basic: {{username: fledge, password: {{file: {:?}}}}}}}",
        file.display().to_string()
    );
    let server = serve(|_, _| http("200 OK", MATRIX)).await;
    let s = source(&server.url, &basic);
    s.query_range("up", T0, T0 + 20_000).await.unwrap();
    let head = server.seen.lock().unwrap()[0].head.to_lowercase();
    // base64("fledge:s3cret-token")
    assert!(
        head.contains("authorization: basic zmxlzgdlonmzy3jldc10b2tlbg=="),
        "{head}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Answers by the query's cohort: several routes per cohort, `version` telling them apart.
fn by_cohort(_: usize, r: &Seen) -> Answer {
    let q = r.form("query").unwrap_or_default();
    let (version, scale) = if q.contains("v1") {
        ("v1", 1.0)
    } else {
        ("v2", 2.0)
    };
    let series: Vec<String> = ["/a", "/b"]
        .iter()
        .map(|route| {
            format!(
                r#"{{"metric":{{"route":"{route}","version":"{version}"}},"values":[[1700000000,"{}"],[1700000010,"NaN"]]}}"#,
                scale
            )
        })
        .collect();
    let extra = if q.contains("mismatch") && version == "v2" {
        r#"{"metric":{"pod":"p"},"values":[]}"#.to_owned()
    } else {
        String::new()
    };
    let mut all = series;
    if !extra.is_empty() {
        all.push(extra);
    }
    http(
        "200 OK",
        &format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
            all.join(",")
        ),
    )
}

#[tokio::test]
async fn a_fetch_fills_each_cohorts_query_and_pairs_series_by_labels() {
    let server = serve(by_cohort).await;
    let yaml = format!(
        r#"
name: t
analysis: {{lifetime: 1m, interval: 30s}}
source: {{type: prometheus, url: "{}/", step: 10s}}
cohorts: {{baseline: {{version: v1}}, canary: {{version: v2}}}}
metrics:
  - {{name: latency, group: g, query: 'lat{{version="${{version}}"}}'}}
  - {{name: keys, group: g, query: 'mismatch{{version="${{version}}"}}'}}
"#,
        server.url
    );
    let cfg = config::from_yaml_str(&yaml, "t.yaml").unwrap();
    let s = PrometheusSource::new(&cfg).unwrap();
    assert_eq!(
        s.query("latency", Side::Canary),
        Some(r#"lat{version="v2"}"#)
    );
    let data = s
        .fetch(FetchRange {
            canary: (T0, T0 + 20_000),
            baseline: (T0, T0 + 20_000),
        })
        .await;
    let names: Vec<&str> = data.recording.metric_names().collect();
    assert_eq!(names, [r#"latency{route="/a"}"#, r#"latency{route="/b"}"#]);
    let w = data.window(r#"latency{route="/a"}"#, Side::Canary, T0, T0 + 20_000);
    assert_eq!(w.t, [T0, T0 + 10_000]);
    assert_eq!(w.v[0], 2.0);
    assert!(w.v[1].is_nan(), "NaN is kept for the metric's NaN strategy");
    let b = data.window(r#"latency{route="/a"}"#, Side::Baseline, T0, T0 + 20_000);
    assert_eq!(b.v[0], 1.0);
    let problem = data.problem("keys").unwrap();
    assert!(problem.contains("different label keys"), "{problem}");
    assert!(problem.contains("only in canary: pod"), "{problem}");
    assert_eq!(data.problem("latency"), None);
    // Queries ran concurrently, one per metric and cohort.
    assert_eq!(server.count.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn an_unreachable_server_is_a_problem_for_every_metric_and_fails_the_check() {
    // A port nothing listens on: bind, read the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = source(&format!("http://127.0.0.1:{port}"), "retries: 1");
    let e = s.check().await.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("prometheus http://127.0.0.1:{port}: ")),
        "{e}"
    );
    let data = s
        .fetch(FetchRange {
            canary: (T0, T0 + 20_000),
            baseline: (T0, T0 + 20_000),
        })
        .await;
    let p = data.problem("latency").unwrap();
    assert!(
        p.contains("query failed") && p.contains("after 2 attempts"),
        "{p}"
    );
}

#[tokio::test]
async fn a_proportion_fetches_its_numerator_and_denominator_once_each() {
    let server = serve(|_, r| {
        let q = r.form("query").unwrap_or_default();
        let series = if q.contains("by_code") {
            // Two label sets: not one series per cohort.
            r#"{"metric":{"code":"500"},"values":[[1700000000,"1"]]},{"metric":{"code":"502"},"values":[[1700000000,"1"]]}"#
        } else {
            r#"{"metric":{},"values":[[1700000000,"3"]]}"#
        };
        http(
            "200 OK",
            &format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{series}]}}}}"#
            ),
        )
    })
    .await;
    let yaml = format!(
        r#"
name: t
analysis: {{lifetime: 1m, interval: 30s}}
source: {{type: prometheus, url: "{}", step: 10s}}
cohorts: {{baseline: {{version: v1}}, canary: {{version: v2}}}}
metrics:
  - name: error_ratio
    group: g
    test: proportion
    direction: increase
    numerator: {{name: errors, query: 'sum(increase(e{{v="${{version}}"}}[10s]))'}}
    denominator: {{name: requests, query: 'sum(increase(r{{v="${{version}}"}}[10s]))'}}
  - name: timeout_ratio
    group: g
    test: proportion
    direction: increase
    numerator: {{name: timeouts, query: 'by_code{{v="${{version}}"}}'}}
    denominator: {{name: requests, query: 'sum(increase(r{{v="${{version}}"}}[10s]))'}}
"#,
        server.url
    );
    let cfg = config::from_yaml_str(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
    let s = PrometheusSource::new(&cfg).unwrap();
    let data = s
        .fetch(FetchRange {
            canary: (T0, T0 + 20_000),
            baseline: (T0, T0 + 20_000),
        })
        .await;
    // errors, requests (shared), timeouts: 3 series × 2 cohorts.
    assert_eq!(server.count.load(Ordering::SeqCst), 6);
    assert_eq!(
        data.window("errors", Side::Canary, T0, T0 + 20_000).v,
        [3.0]
    );
    assert_eq!(
        data.window("requests", Side::Baseline, T0, T0 + 20_000).v,
        [3.0]
    );
    assert_eq!(data.problem("error_ratio"), None);
    let p = data.problem("timeout_ratio").unwrap();
    assert!(p.contains("series `timeouts` returns 2 label sets"), "{p}");
}
