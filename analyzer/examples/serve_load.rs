//! Load measurement (not a test): 1,000 concurrent retrospective analyses over a committed
//! recording in one process, through the supervisor and the SQLite store; prints the peak
//! RSS (VmHWM). Run: `cargo run --release -p fledge-analyzer --example serve_load`.

use std::sync::Arc;
use std::time::Instant;

use fledge_analyzer::service::{AnalysisRequest, Metrics, Notifier, Supervisor};
use fledge_analyzer::store::{RunStatus, Store};

fn vm(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("configs/checkout-replay.yaml")).unwrap();
    let mut cfg = fledge_analyzer::config::from_yaml_str(&text, "checkout-replay.yaml").unwrap();
    let mut v = cfg.to_json().unwrap();
    v["source"] = serde_json::json!({"type": "recording", "path": root.join("testdata/recordings/healthy.csv")});
    cfg = fledge_analyzer::config::from_json_value(v).unwrap();
    let dir = std::env::temp_dir().join(format!("fledge-load-{}", std::process::id()));
    let store = Store::open(&dir).unwrap();
    let sup = Supervisor::new(
        store.clone(),
        Arc::new(Metrics::default()),
        Notifier::default(),
    );
    let start = fledge_analyzer::engine::parse_time("2026-01-01T00:00:00Z").unwrap();
    let req = AnalysisRequest::Retrospective {
        start,
        end: start + 3_600_000,
    };
    let n = 1000;
    let t0 = Instant::now();
    for _ in 0..n {
        sup.create_analysis(&cfg, req).await.unwrap();
    }
    loop {
        let done = store
            .runs("analysis", &[RunStatus::Completed])
            .unwrap()
            .len();
        if done == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!(
        "{n} analyses completed in {:.1} s; peak RSS (VmHWM) {}",
        t0.elapsed().as_secs_f64(),
        vm("VmHWM")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
