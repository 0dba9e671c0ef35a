//! Golden tests against R's `wilcox.test(canary, baseline, conf.int = TRUE, correct = TRUE)`
//! (R 4.2, see `../shared/README.md`), plus known values from the literature.

use fledge_judges::mann_whitney::{self, erfc, rank_summary};
use fledge_judges::{CompareOptions, JudgeError, Method, Side, compare, compare_with};

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    conf_level: f64,
    canary: Vec<f64>,
    baseline: Vec<f64>,
    method: String,
    w: f64,
    p_value: f64,
    hl_estimate: f64,
    conf_lo: f64,
    conf_hi: f64,
    conf_lo_window: [f64; 2],
    conf_hi_window: [f64; 2],
}

fn load() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/oracle/wilcox-public.json"
    );
    let text = std::fs::read_to_string(path).expect("read the oracle file");
    serde_json::from_str(&text).expect("parse the oracle file")
}

fn rel_close(got: f64, want: f64, rel: f64) -> bool {
    got == want || (got - want).abs() <= rel * want.abs().max(f64::MIN_POSITIVE)
}

fn inside(v: f64, [lo, hi]: [f64; 2]) -> bool {
    let slack = 1e-12 * lo.abs().max(hi.abs());
    v >= lo - slack && v <= hi + slack
}

#[test]
fn all_public_oracle_cases() {
    let cases = load();
    assert_eq!(cases.len(), 80);
    let mut failures = Vec::new();
    for c in &cases {
        let r = match compare(&c.canary, &c.baseline, c.conf_level) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: error {e}", c.id));
                continue;
            }
        };
        let mut bad = Vec::new();
        let method = match r.method {
            Method::Exact => "exact",
            Method::Normal => "normal",
        };
        if method != c.method {
            bad.push(format!("method {method} want {}", c.method));
        }
        if r.u != c.w {
            bad.push(format!("u {} want {}", r.u, c.w));
        }
        if !rel_close(r.p_value, c.p_value, 1e-9) {
            bad.push(format!("p {:e} want {:e}", r.p_value, c.p_value));
        }
        if !rel_close(r.estimate, c.hl_estimate, 1e-9) {
            bad.push(format!("estimate {} want {}", r.estimate, c.hl_estimate));
        }
        if !inside(r.ci[0], c.conf_lo_window) {
            bad.push(format!("ci lo {} outside {:?}", r.ci[0], c.conf_lo_window));
        }
        if !inside(r.ci[1], c.conf_hi_window) {
            bad.push(format!("ci hi {} outside {:?}", r.ci[1], c.conf_hi_window));
        }
        // On the exact path R's interval is itself a pair of order statistics: equal up to
        // the 15 significant digits the oracle kept.
        if c.method == "exact" {
            for (got, want) in r.ci.iter().zip([c.conf_lo, c.conf_hi]) {
                if (got - want).abs() > 1e-12 * want.abs().max(1.0) {
                    bad.push(format!("exact ci end {got} differs from R's {want}"));
                }
            }
        }
        if !bad.is_empty() {
            failures.push(format!(
                "{} (n={}, m={}, {}): {}",
                c.id,
                c.canary.len(),
                c.baseline.len(),
                c.method,
                bad.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn scipy_docs_example() {
    // males vs females (scipy / statrs docs): U = 17, exact two-sided p = 1/9.
    let x = [19.0, 22.0, 16.0, 29.0, 24.0];
    let y = [20.0, 11.0, 17.0, 12.0];
    let r = compare(&x, &y, 0.95).unwrap();
    assert_eq!(r.method, Method::Exact);
    assert_eq!(r.u, 17.0);
    assert!(
        (r.p_value - 0.1111111111111111).abs() < 1e-15,
        "{}",
        r.p_value
    );
    // Differences sorted: the median of the 20 differences.
    let mut d: Vec<f64> = x
        .iter()
        .flat_map(|a| y.iter().map(move |b| a - b))
        .collect();
    d.sort_by(f64::total_cmp);
    assert_eq!(r.estimate, (d[9] + d[10]) / 2.0);
    // qwilcox(0.025, 5, 4) = 2 → [d_(2), d_(19)].
    assert_eq!(r.ci, [d[1], d[18]]);

    let x = [5.0, 2.0, 7.0, 8.0, 9.0, 3.0, 11.0, 12.0];
    let y = [1.0, 6.0, 10.0, 4.0];
    let r = compare(&x, &y, 0.95).unwrap();
    assert_eq!(r.u, 21.0);
    assert!((r.p_value - 0.46060606060606063).abs() < 1e-15);
}

#[test]
fn asymptotic_known_value() {
    // Same data with the normal method forced by variance inflation of 1 + tiny: p ≈ scipy's
    // asymptotic 0.11134688653314041 (variance inflation changes σ by a negligible amount).
    let x = [19.0, 22.0, 16.0, 29.0, 24.0];
    let y = [20.0, 11.0, 17.0, 12.0];
    let s = {
        let mut a = x.to_vec();
        a.sort_by(f64::total_cmp);
        let mut b = y.to_vec();
        b.sort_by(f64::total_cmp);
        rank_summary(&a, &b)
    };
    let p = mann_whitney::normal_p_value(&s, 1.0);
    assert!((p - 0.11134688653314041).abs() < 1e-15, "{p}");
    let r = compare_with(
        &x,
        &y,
        &CompareOptions {
            confidence: 0.95,
            variance_inflation: 1.0 + 1e-15,
        },
    )
    .unwrap();
    assert_eq!(r.method, Method::Normal);
    assert!((r.p_value - 0.11134688653314041).abs() < 1e-12);
}

/// ln erfc(x) from the asymptotic expansion, independent of the crate's erfc.
fn ln_erfc_asymptotic(x: f64) -> f64 {
    let x2 = x * x;
    let mut series = 1.0;
    let mut term = 1.0;
    for k in 1..8 {
        term *= -((2 * k - 1) as f64) / (2.0 * x2);
        series += term;
    }
    -x2 - (x * std::f64::consts::PI.sqrt()).ln() + series.ln()
}

#[test]
fn tiny_p_values_keep_relative_accuracy() {
    // Two samples of 2000 that overlap only a little: z ≈ 37, p around 1e-300.
    let n = 2000usize;
    let shift = 870.0;
    let x: Vec<f64> = (0..n).map(|i| i as f64 + shift + 0.5).collect();
    let y: Vec<f64> = (0..n).map(|j| j as f64).collect();
    let r = compare(&x, &y, 0.98).unwrap();
    assert_eq!(r.method, Method::Normal);
    assert!(r.p_value > 0.0 && r.p_value.is_finite(), "{}", r.p_value);
    assert!(r.p_value < 1e-250, "{}", r.p_value);
    // Independent computation of the same p.
    let nm = (n * n) as f64;
    let sigma = (nm / 12.0 * (2.0 * n as f64 + 1.0)).sqrt();
    let z = (r.u - nm / 2.0 - 0.5) / sigma;
    let ln_p = ln_erfc_asymptotic(z / std::f64::consts::SQRT_2);
    let got = r.p_value.log10();
    let want = ln_p / std::f64::consts::LN_10;
    assert!(
        (got - want).abs() < 1e-10 * want.abs(),
        "log10 p = {got}, want {want}"
    );
    // And against the crate's erfc on either side of the subnormal range.
    for x in [20.0, 25.0, 26.0, 26.5] {
        let rel = (erfc(x).ln() - ln_erfc_asymptotic(x)).abs() / ln_erfc_asymptotic(x).abs();
        assert!(rel < 1e-14, "x={x} rel={rel}");
    }
    // Completely separated samples underflow to 0, never to NaN.
    let far: Vec<f64> = (0..n).map(|i| i as f64 + 1e6).collect();
    let r = compare(&far, &y, 0.98).unwrap();
    assert!(r.p_value >= 0.0 && r.p_value < 1e-300);
}

#[test]
fn validation_errors() {
    let ok = [1.0, 2.0];
    assert_eq!(
        compare(&[], &ok, 0.9),
        Err(JudgeError::EmptySample { side: Side::Canary })
    );
    assert_eq!(
        compare(&ok, &[], 0.9),
        Err(JudgeError::EmptySample {
            side: Side::Baseline
        })
    );
    match compare(&ok, &[1.0, f64::NAN], 0.9) {
        Err(JudgeError::NonFinite {
            side: Side::Baseline,
            index: 1,
            value,
        }) => assert!(value.is_nan()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        compare(&[0.0, 1.0, f64::NEG_INFINITY], &ok, 0.9),
        Err(JudgeError::NonFinite {
            side: Side::Canary,
            index: 2,
            value: f64::NEG_INFINITY
        })
    );
    for c in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        assert!(
            matches!(compare(&ok, &ok, c), Err(JudgeError::InvalidConfidence(_))),
            "{c}"
        );
    }
    for f in [0.5, f64::NAN, f64::INFINITY] {
        let e = compare_with(
            &ok,
            &ok,
            &CompareOptions {
                confidence: 0.9,
                variance_inflation: f,
            },
        );
        assert!(
            matches!(
                e,
                Err(JudgeError::InvalidOption {
                    name: "variance_inflation",
                    ..
                })
            ),
            "{f}"
        );
    }
}

#[test]
fn variance_inflation_widens_and_forces_normal() {
    let x: Vec<f64> = (0..30)
        .map(|i| (i as f64 * 0.37).sin() * 10.0 + 3.0)
        .collect();
    let y: Vec<f64> = (0..30).map(|i| (i as f64 * 0.53).cos() * 10.0).collect();
    let a = compare(&x, &y, 0.95).unwrap();
    let b = compare_with(
        &x,
        &y,
        &CompareOptions {
            confidence: 0.95,
            variance_inflation: 4.0,
        },
    )
    .unwrap();
    assert_eq!(a.method, Method::Exact);
    assert_eq!(b.method, Method::Normal);
    assert_eq!(a.estimate, b.estimate);
    assert!(b.p_value >= a.p_value);
    assert!(b.ci[0] <= a.ci[0] && b.ci[1] >= a.ci[1]);
}

#[test]
fn fully_tied_data() {
    let r = compare(&[4.0; 60], &[4.0; 70], 0.98).unwrap();
    assert_eq!(r.p_value, 1.0);
    assert_eq!(r.estimate, 0.0);
    assert_eq!(r.ci, [0.0, 0.0]);
    let r = compare(&[5.0; 3], &[4.0; 2], 0.98).unwrap();
    assert_eq!(r.method, Method::Normal);
    assert_eq!(r.estimate, 1.0);
    assert_eq!(r.ci, [1.0, 1.0]);
}
