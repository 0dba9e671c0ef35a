//! `fledge judge --recording` on a large recording: the parser alone, the judging alone, and
//! the whole process.
//!
//! Run with `cargo bench --bench judge_recording` (the bench profile builds the `fledge`
//! binary optimised, and the process bench runs that binary). The first run writes a
//! deterministic recording of 1,000 metrics × (1,000 baseline + 1,000 canary) points, about
//! 81 MB, to `$CARGO_TARGET_TMPDIR/judge_recording/` (under `target/`, never committed) and
//! reuses it afterwards. To time the process by hand:
//!
//! ```text
//! cargo build --release
//! hyperfine -w 2 'target/release/fledge judge --recording target/tmp/judge_recording/rec_1000x1000.csv --format json > /dev/null'
//! ```
//!
//! Every 10th metric's canary is 20% higher than its baseline, so the process exits 4.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use divan::Bencher;
use fledge_analyzer::recording::{parse_recording, read_recording};
use fledge_judges::{MetricOptions, classify};

const METRICS: usize = 1_000;
const POINTS: usize = 1_000;

fn main() {
    let path = recording_path();
    eprintln!(
        "recording: {} ({:.1} MB)",
        path.display(),
        std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64 / 1e6)
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

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (Irwin–Hall, 4 uniforms), mean 0, sd 1.
    fn normalish(&mut self) -> f64 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// Writes the recording once; returns its path.
fn recording_path() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("judge_recording");
    let path = dir.join(format!("rec_{METRICS}x{POINTS}.csv"));
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&dir).expect("create bench data dir");
    let tmp = dir.join("rec.partial");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
    writeln!(w, "timestamp,metric,cohort,value").unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // A recorder's order: at each scrape time, every metric, both cohorts.
    for i in 0..POINTS {
        let secs = 18 * 3600 + 10 * i; // 2026-11-23T18:00:00Z + 10 s steps, same day
        let ts = format!(
            "2026-11-23T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        for m in 0..METRICS {
            let mu = 50.0 + (m % 200) as f64 * 5.0;
            let shift = if m % 10 == 0 { 1.2 } else { 1.0 };
            let b = mu * (1.0 + 0.1 * rng.normalish());
            let c = mu * shift * (1.0 + 0.1 * rng.normalish());
            writeln!(
                w,
                "{ts},m{m:04},baseline,{b:.1}\n{ts},m{m:04},canary,{c:.1}"
            )
            .unwrap();
        }
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// Parsing only, from memory.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn parse_only(bencher: Bencher) {
    let bytes = std::fs::read(recording_path()).unwrap();
    bencher
        .counter(divan::counter::BytesCount::new(bytes.len()))
        .bench(|| {
            let rec = parse_recording(divan::black_box(&bytes), "bench").unwrap();
            assert_eq!(rec.metrics.len(), METRICS);
            rec
        });
}

/// Reading the file and parsing it.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn read_and_parse(bencher: Bencher) {
    let path = recording_path();
    bencher.bench(|| read_recording(divan::black_box(&path)).unwrap());
}

/// Classifying every metric on one thread (the binary uses every core).
#[divan::bench(sample_count = 10, sample_size = 1)]
fn classify_all_one_thread(bencher: Bencher) {
    let rec = read_recording(&recording_path()).unwrap();
    let options = MetricOptions::default();
    bencher.bench(|| {
        rec.metrics
            .values()
            .map(|m| classify(&m.canary.v, &m.baseline.v, &options).classification)
            .collect::<Vec<_>>()
    });
}

/// The whole process: `fledge judge --recording FILE --format json > /dev/null`.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn whole_process(bencher: Bencher) {
    let path = recording_path();
    bencher.bench(|| {
        let status = Command::new(env!("CARGO_BIN_EXE_fledge"))
            .args(["judge", "--recording"])
            .arg(&path)
            .args(["--format", "json"])
            .stdout(Stdio::null())
            .status()
            .expect("run fledge");
        assert_eq!(
            status.code(),
            Some(4),
            "every 10th metric is shifted: abort"
        );
    });
}
