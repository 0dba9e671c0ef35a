//! `fledge serve` as a real process on a loopback port: the API cycle, auth, body limit,
//! and kill -9 then restart on the same --data.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Server, TOKEN, api as http};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn start(data: &Path) -> Server {
    common::serve(data, &[], &[], None)
}

fn config_json(recording: &str) -> Value {
    let text = std::fs::read_to_string(root().join("configs/checkout-replay.yaml")).unwrap();
    let cfg = fledge_analyzer::config::from_yaml_str(&text, "checkout-replay.yaml").unwrap();
    let mut v = cfg.to_json().unwrap();
    v["source"] = json!({"type": "recording", "path": root().join(recording)});
    v
}

fn wait_final(addr: &str, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let (code, body) = http(addr, "GET", &format!("/v1/analyses/{id}"), None, None);
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["status"] != "pending" && v["status"] != "running" {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "not done: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn replay_json(recording: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .args(["replay", "--format", "json", "-c"])
        .arg(root().join("configs/checkout-replay.yaml"))
        .arg("-r")
        .arg(root().join(recording))
        .args(["--start", "2026-01-01T00:00:00Z"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fledge-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn api_cycle_auth_and_limits() {
    let data = tmp("cycle");
    let srv = start(&data);
    let a = srv.addr.as_str();
    assert_eq!(http(a, "GET", "/healthz", None, None).0, 200);
    assert_eq!(http(a, "GET", "/readyz", None, None).0, 200);

    // Retrospective analysis of a committed recording: the verdict fledge replay gives.
    for rec in [
        "testdata/recordings/healthy.csv",
        "testdata/recordings/latency-p99-up20.csv",
    ] {
        let req = json!({"config": config_json(rec), "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"});
        let (code, body) = http(
            a,
            "POST",
            "/v1/analyses",
            Some(TOKEN),
            Some(&req.to_string()),
        );
        assert_eq!(code, 201, "{body}");
        let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let got = wait_final(a, &id);
        let want = replay_json(rec);
        assert_eq!(got["status"], "completed", "{got}");
        assert_eq!(got["verdict"], want["verdict"], "{rec}");
        assert_eq!(got["score"], want["score"], "{rec}");
        assert_eq!(got["intervals"], want["intervals"], "{rec}");
        assert!(!body.contains(TOKEN));
    }

    // A real-time one (waits for its first interval) can be cancelled, once.
    let req = json!({"config": config_json("testdata/recordings/healthy.csv")});
    let (code, body) = http(
        a,
        "POST",
        "/v1/analyses",
        Some(TOKEN),
        Some(&req.to_string()),
    );
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/analyses/{id}/cancel");
    assert_eq!(http(a, "POST", &path, Some(TOKEN), None).0, 200);
    assert_eq!(wait_final(a, &id)["status"], "cancelled");
    assert_eq!(http(a, "POST", &path, Some(TOKEN), None).0, 409);
    assert_eq!(
        http(a, "POST", "/v1/analyses/nope/cancel", Some(TOKEN), None).0,
        404
    );

    let (code, body) = http(a, "GET", "/v1/analyses", None, None);
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["analyses"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Validate: good, and bad with the field named.
    let good = config_json("testdata/recordings/healthy.csv");
    let (code, body) = http(
        a,
        "POST",
        "/v1/configs/validate",
        Some(TOKEN),
        Some(&good.to_string()),
    );
    assert_eq!(code, 200, "{body}");
    let mut bad = good.clone();
    bad["metrics"][0]["allowed_increse"] = json!(2);
    let (code, body) = http(
        a,
        "POST",
        "/v1/configs/validate",
        Some(TOKEN),
        Some(&bad.to_string()),
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("metrics[0]") && body.contains("allowed_increse"),
        "{body}"
    );

    // 401 on every mutating endpoint, without or with a wrong token.
    for (m, p) in [
        ("POST", "/v1/analyses"),
        ("POST", &path),
        ("POST", "/v1/configs/validate"),
    ] {
        assert_eq!(http(a, m, p, None, Some("{}")).0, 401, "{p}");
        assert_eq!(http(a, m, p, Some("wrong"), Some("{}")).0, 401, "{p}");
    }
    // Oversized body.
    let big = format!("{{\"config\": \"{}\"}}", "x".repeat(2 << 20));
    assert_eq!(
        http(a, "POST", "/v1/configs/validate", Some(TOKEN), Some(&big)).0,
        413
    );

    let (code, body) = http(a, "GET", "/metrics", None, None);
    assert_eq!(code, 200);
    assert!(
        body.contains("fledge_verdicts_total") && body.contains("fledge_judge_seconds"),
        "{body}"
    );
    assert_eq!(http(a, "GET", "/v1/openapi.yaml", None, None).0, 200);
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn kill_9_mid_analysis_then_restart_resumes_without_repeating_or_losing_an_interval() {
    let data = tmp("kill");
    // A recording around now at a 50 ms step, so a real-time analysis of 8 × 500 ms runs
    // for about 4 s.
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let t_start = now + 1000;
    let mut csv = String::from("timestamp,metric,cohort,value\n");
    for i in 0..200i64 {
        let t = t_start - 1000 + i * 50;
        let ts = chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let v = 100.0 + ((i * 37) % 11) as f64;
        csv.push_str(&format!(
            "{ts},latency,baseline,{v}\n{ts},latency,canary,{}\n",
            v + ((i * 13) % 5) as f64
        ));
    }
    std::fs::create_dir_all(&data).unwrap();
    let rec = data.join("rec.csv");
    std::fs::write(&rec, csv).unwrap();
    let config = json!({
        "name": "kill",
        "analysis": {"lifetime": "4s", "interval": "500ms"},
        "metrics": [{"name": "latency", "group": "latency", "direction": "increase"}],
        "source": {"type": "recording", "path": rec, "step": "50ms"},
    });
    let begin = chrono::DateTime::from_timestamp_millis(t_start)
        .unwrap()
        .to_rfc3339();
    let srv = start(&data);
    let req = json!({"config": config, "start": begin});
    let (code, body) = http(
        &srv.addr,
        "POST",
        "/v1/analyses",
        Some(TOKEN),
        Some(&req.to_string()),
    );
    assert_eq!(code, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wait for a few intervals, then kill -9.
    let t0 = Instant::now();
    loop {
        let (_, body) = http(&srv.addr, "GET", &format!("/v1/analyses/{id}"), None, None);
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["intervals"].as_array().unwrap().len() >= 3 {
            assert_eq!(v["status"], "running", "{v}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{v}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut srv = srv;
    srv.child.kill().unwrap(); // SIGKILL
    let _ = srv.child.wait();
    drop(srv);
    let srv = start(&data);
    let got = wait_final(&srv.addr, &id);
    assert_eq!(got["status"], "completed", "{got}");
    let idx: Vec<u64> = got["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["index"].as_u64().unwrap())
        .collect();
    // Interval indices are 1-based; each once, none missing, past the kill point.
    assert!(idx.len() > 3, "{idx:?}");
    assert_eq!(idx, (1..=idx.len() as u64).collect::<Vec<u64>>());
    // Same as an uninterrupted retrospective analysis of the same span.
    while chrono::Utc::now().timestamp_millis() <= t_start + 4000 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = chrono::DateTime::from_timestamp_millis(t_start + 4000)
        .unwrap()
        .to_rfc3339();
    let req = json!({"config": config, "start": begin, "end": end});
    let (code, body) = http(
        &srv.addr,
        "POST",
        "/v1/analyses",
        Some(TOKEN),
        Some(&req.to_string()),
    );
    assert_eq!(code, 201, "{body}");
    let id2 = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let want = wait_final(&srv.addr, &id2);
    assert_eq!(got["intervals"], want["intervals"]);
    assert_eq!(got["verdict"], want["verdict"]);
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
}

/// The server's peak resident memory (VmHWM), in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// 1,000 analyses posted at once (8 clients) to one server, their source a committed
/// recording: every one completes with the verdict `fledge replay` gives, and the server's
/// peak RSS stays under 256 MB. Memory is asserted, time is not (see `serve_load` and
/// README's performance table for that).
#[test]
fn a_thousand_concurrent_analyses_in_one_server_stay_under_256_mb() {
    const N: usize = 1000;
    let data = tmp("load");
    let srv = start(&data);
    let a = srv.addr.as_str();
    let rec = "testdata/recordings/healthy.csv";
    let req = json!({"config": config_json(rec), "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00:00Z"})
        .to_string();
    let ids: Vec<String> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..N / 8)
                        .map(|_| {
                            let (code, body) =
                                http(a, "POST", "/v1/analyses", Some(TOKEN), Some(&req));
                            assert_eq!(code, 201, "{body}");
                            serde_json::from_str::<Value>(&body).unwrap()["id"]
                                .as_str()
                                .unwrap()
                                .to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), N);
    let want = replay_json(rec);
    let t0 = Instant::now();
    let list = loop {
        let (code, body) = http(a, "GET", "/v1/analyses", None, None);
        assert_eq!(code, 200);
        let list: Value = serde_json::from_str(&body).unwrap();
        let list = list["analyses"].as_array().unwrap().clone();
        let open = list
            .iter()
            .filter(|r| r["status"] == "pending" || r["status"] == "running")
            .count();
        if open == 0 {
            break list;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "{open} of {N} still open"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(list.len(), N);
    for r in &list {
        assert_eq!(
            (&r["status"], &r["verdict"]),
            (&json!("completed"), &want["verdict"]),
            "{r}"
        );
    }
    let peak = peak_rss_kb(srv.child.id());
    println!(
        "{N} analyses: all completed in {:.1} s after the last POST; server peak RSS {} MB",
        t0.elapsed().as_secs_f64(),
        peak / 1024
    );
    assert!(peak < 256 * 1024, "peak RSS {peak} kB");
    drop(srv);
    let _ = std::fs::remove_dir_all(&data);
}
