//! `fledge replay` on a day of data: 50 metrics at a 10 s step for 24 hours (8,640 points per
//! series and cohort), judged in 5-minute intervals with a growing window (288 intervals,
//! 14,400 metric judgements over windows of up to 8,640 points per side).
//!
//! Run with `cargo bench --bench replay`. The first run writes the recording (about 30 MB) and
//! its config to `$CARGO_TARGET_TMPDIR/replay/` (under `target/`, never committed). To time the
//! process by hand:
//!
//! ```text
//! cargo build --profile dist    # release with fat LTO, one codegen unit (see Cargo.toml)
//! hyperfine -w 1 'target/dist/fledge replay -c target/tmp/replay/day.yaml -r target/tmp/replay/day.csv --format json > /dev/null'
//! ```
//!
//! Both cohorts come from the same process (a shared daily load curve plus noise), so every
//! interval is judged: with `assume` the analysis promotes; with `auto` it holds, the daily
//! curve leaving too little independent evidence in any window.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use divan::Bencher;

const METRICS: usize = 50;
const POINTS: usize = 8_640;
const STEP_S: i64 = 10;
const START_S: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn main() {
    let (rec, cfg) = data();
    eprintln!(
        "recording: {} ({:.1} MB), config: {}",
        rec.display(),
        std::fs::metadata(&rec).map_or(0.0, |m| m.len() as f64 / 1e6),
        cfg.display()
    );
    divan::main();
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normalish(&mut self) -> f64 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// Writes the recording and the config once; returns their paths.
fn data() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay");
    let rec = dir.join("day.csv");
    let cfg = dir.join("day.yaml");
    if rec.exists() && cfg.exists() && dir.join("day-assume.yaml").exists() {
        return (rec, cfg);
    }
    std::fs::create_dir_all(&dir).expect("create bench data dir");
    let mut yaml = String::from(
        "name: day\nthresholds: {pass: 90, marginal: 70}\ngroups: {latency: 50, errors: 50}\n\
         analysis: {lifetime: 24h, interval: 5m, warmup: 0m, lookback: 0m}\nmetrics:\n",
    );
    for m in 0..METRICS {
        let group = if m % 2 == 0 { "latency" } else { "errors" };
        yaml.push_str(&format!(
            "  - {{name: m{m:02}, group: {group}, direction: increase}}\n"
        ));
    }
    std::fs::write(&cfg, &yaml).unwrap();
    // The same analysis judged as Kayenta does, points taken as independent.
    let assume = yaml.replace(
        "direction: increase}",
        "direction: increase, independence: assume}",
    );
    std::fs::write(dir.join("day-assume.yaml"), assume).unwrap();

    let tmp = dir.join("day.partial");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
    writeln!(w, "timestamp,metric,cohort,value").unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in 0..POINTS {
        let t = START_S + i as i64 * STEP_S;
        let load = 1.0 + 0.3 * (i as f64 / POINTS as f64 * std::f64::consts::TAU).sin();
        for m in 0..METRICS {
            let mu = (20.0 + m as f64 * 3.0) * load;
            for cohort in ["baseline", "canary"] {
                let v = mu * (1.0 + 0.1 * rng.normalish());
                writeln!(w, "{t},m{m:02},{cohort},{v:.3}").unwrap();
            }
        }
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, &rec).unwrap();
    (rec, cfg)
}

/// The whole process: `fledge replay -c day.yaml -r day.csv --format json > /dev/null`, with
/// the default `independence: auto`.
#[divan::bench(sample_count = 2, sample_size = 1)]
fn whole_process_auto(bencher: Bencher) {
    let (rec, cfg) = data();
    bench_replay(bencher, &rec, &cfg);
}

/// The same with `independence: assume` (plain Mann–Whitney, as Kayenta judges).
#[divan::bench(sample_count = 5, sample_size = 1)]
fn whole_process_assume(bencher: Bencher) {
    let (rec, cfg) = data();
    bench_replay(bencher, &rec, &cfg.with_file_name("day-assume.yaml"));
}

fn bench_replay(bencher: Bencher, rec: &Path, cfg: &Path) {
    bencher.bench(|| {
        let status = Command::new(env!("CARGO_BIN_EXE_fledge"))
            .arg("replay")
            .arg("-c")
            .arg(cfg)
            .arg("-r")
            .arg(rec)
            .args(["--format", "json"])
            .stdout(Stdio::null())
            .status()
            .expect("run fledge");
        assert!(
            status.code().is_some_and(|c| c == 0 || c == 3 || c == 4),
            "{status}"
        );
    });
}
