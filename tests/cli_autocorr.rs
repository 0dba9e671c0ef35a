//! `fledge judge --independence assume|auto|paired` end to end.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
}

fn fledge(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg("judge")
        .args(args)
        .output()
        .expect("run fledge");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).unwrap(),
    }
}

fn temp_file(name: &str, content: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_autocorr");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

/// A deterministic stationary AR(1) series (LCG + Box–Muller) around `mean`.
fn ar1(seed: u64, n: usize, rho: f64, mean: f64) -> Vec<f64> {
    let mut s = seed;
    let mut uniform = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut normal = || {
        let (u, v) = (uniform(), uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let mut x = normal();
    let scale = (1.0 - rho * rho).sqrt();
    (0..n)
        .map(|i| {
            if i > 0 {
                x = rho * x + scale * normal();
            }
            mean + x
        })
        .collect()
}

fn lines(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.6}\n")).collect()
}

fn json(run: &Run) -> Value {
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// Two healthy, strongly autocorrelated series of 300 points that plain Mann–Whitney calls
/// different: the first seed pair (in a fixed scan) on which it does.
fn autocorrelated_pair() -> (String, String) {
    for seed in 0..200u64 {
        let c = ar1(1_000 + 2 * seed, 300, 0.95, 10.0);
        let b = ar1(1_001 + 2 * seed, 300, 0.95, 10.0);
        let (cf, bf) = (
            temp_file(&format!("c{seed}.txt"), &lines(&c)),
            temp_file(&format!("b{seed}.txt"), &lines(&b)),
        );
        if fledge(&["--canary", &cf, "--baseline", &bf]).code == 4 {
            return (cf, bf);
        }
    }
    panic!("no seed made plain Mann–Whitney reject");
}

#[test]
fn auto_corrects_what_the_default_calls_significant() {
    let (c, b) = autocorrelated_pair();
    // The default is plain Mann–Whitney (R's wilcox.test): no n_eff in the output.
    let plain = fledge(&["--canary", &c, "--baseline", &b, "--format", "json"]);
    assert_eq!(plain.code, 4);
    let p = json(&plain);
    assert!(p.get("n_eff").is_none(), "{p}");
    assert!(p.get("variance_inflation").is_none(), "{p}");
    assert_eq!(
        fledge(&[
            "--canary",
            &c,
            "--baseline",
            &b,
            "--independence",
            "assume",
            "--format",
            "json"
        ])
        .stdout,
        plain.stdout,
        "--independence assume is the default"
    );

    // 300 points at ρ = 0.95 are worth about 300·0.05/1.95 ≈ 8 independent values per side:
    // `auto` widens the interval until it contains 0, and with fewer than 10 effective
    // values (the default min_samples with auto) the metric is nodata, exit 3.
    let auto = fledge(&[
        "--canary",
        &c,
        "--baseline",
        &b,
        "--independence",
        "auto",
        "--format",
        "json",
    ]);
    let a = json(&auto);
    let n_eff = a["n_eff"].as_array().unwrap();
    assert_eq!(n_eff.len(), 2);
    assert!(n_eff[0].as_f64().unwrap() < 30.0, "{a}");
    assert!(a["variance_inflation"].as_f64().unwrap() > 10.0, "{a}");
    let width = |v: &Value| v["ci"][1].as_f64().unwrap() - v["ci"][0].as_f64().unwrap();
    assert!(width(&a) > 3.0 * width(&p), "{a}\n{p}");
    assert_ne!(auto.code, 4, "{a}");
    assert_eq!(a["method"], "normal");

    // With min_samples 1 the corrected test itself decides: the interval contains 0.
    let auto1 = fledge(&[
        "--canary",
        &c,
        "--baseline",
        &b,
        "--independence",
        "auto",
        "--min-samples",
        "1",
        "--format",
        "json",
    ]);
    let a1 = json(&auto1);
    assert_eq!(a1["classification"], "pass", "{a1}");
    assert_eq!(auto1.code, 0);

    // The text output shows the effective sample sizes.
    let text = fledge(&["--canary", &c, "--baseline", &b, "--independence", "auto"]);
    assert!(text.stdout.contains("n_eff "), "{}", text.stdout);
    assert!(
        text.stdout.contains("variance inflation "),
        "{}",
        text.stdout
    );
}

#[test]
fn paired_uses_line_i_with_line_i() {
    // A shared wave plus a constant +0.5 on the canary: paired sees the 0.5.
    let wave: Vec<f64> = (0..200)
        .map(|i| 50.0 * (f64::from(i) / 20.0).sin())
        .collect();
    let noise_c = ar1(7, 200, 0.0, 0.0);
    let noise_b = ar1(8, 200, 0.0, 0.0);
    let c: Vec<f64> = (0..200)
        .map(|i| 100.5 + wave[i] + 0.2 * noise_c[i])
        .collect();
    let b: Vec<f64> = (0..200)
        .map(|i| 100.0 + wave[i] + 0.2 * noise_b[i])
        .collect();
    let (cf, bf) = (
        temp_file("pc.txt", &lines(&c)),
        temp_file("pb.txt", &lines(&b)),
    );
    let run = fledge(&[
        "--canary",
        &cf,
        "--baseline",
        &bf,
        "--independence",
        "paired",
        "--direction",
        "increase",
        "--format",
        "json",
    ]);
    let v = json(&run);
    assert_eq!(v["classification"], "high", "{v}");
    assert_eq!(v["test"], "paired");
    assert!((v["estimate"].as_f64().unwrap() - 0.5).abs() < 0.05, "{v}");
    assert_eq!(run.code, 4);
    // Plain Mann–Whitney drowns the 0.5 in the wave.
    let plain = fledge(&[
        "--canary",
        &cf,
        "--baseline",
        &bf,
        "--direction",
        "increase",
    ]);
    assert_eq!(plain.code, 0, "{}", plain.stdout);
    // Different lengths cannot be paired by line.
    let short = temp_file("short.txt", &lines(&b[..150]));
    let run = fledge(&[
        "--canary",
        &cf,
        "--baseline",
        &short,
        "--independence",
        "paired",
    ]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("got 200 and 150"), "{}", run.stdout);
}

#[test]
fn recordings_use_their_time_stamps() {
    let rec = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/recordings/healthy.csv"
    );
    let run = fledge(&[
        "--recording",
        rec,
        "--independence",
        "auto",
        "--format",
        "json",
    ]);
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert!(r["n_eff"].is_array(), "{r}");
    }
    // The default stays plain.
    let run = fledge(&["--recording", rec, "--format", "json"]);
    assert!(!run.stdout.contains("n_eff"));
}
