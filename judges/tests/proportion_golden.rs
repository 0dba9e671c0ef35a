//! Fisher's exact test, the two-proportion z-test and the rate ratio's score interval against
//! golden values from R (`testdata/proportion/golden.R` made `golden.csv`).
//!
//! - `fisher_p`: R's `fisher.test` two-sided p-value; within 1e-9 relative.
//! - `z_p`, `z_stat`: R's `prop.test(correct = FALSE)`; within 1e-9 relative.
//! - `rr_lo`, `rr_hi`: Koopman's score interval for the rate ratio, computed in R by an
//!   independent numerical method (uniroot on the score equation, not the closed form used
//!   here); within 1e-7 relative, the accuracy of that computation.

use fledge_judges::proportion::{fisher_exact, min_expected, rate_ratio_ci, z_test};

struct Case {
    x1: u64,
    n1: u64,
    x2: u64,
    n2: u64,
    conf: f64,
    fisher_p: f64,
    z_p: Option<f64>,
    z_stat: Option<f64>,
    rr_lo: f64,
    rr_hi: f64,
}

fn cases() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/proportion/golden.csv"
    );
    let text = std::fs::read_to_string(path).expect("read golden.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("x1,n1,x2,n2,conf,fisher_p,z_p,z_stat,rr_lo,rr_hi")
    );
    let num = |s: &str| -> f64 {
        match s {
            "Inf" => f64::INFINITY,
            _ => s.parse().unwrap_or_else(|_| panic!("bad number {s:?}")),
        }
    };
    let opt = |s: &str| (s != "NA").then(|| num(s));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 10, "{line}");
            Case {
                x1: f[0].parse().unwrap(),
                n1: f[1].parse().unwrap(),
                x2: f[2].parse().unwrap(),
                n2: f[3].parse().unwrap(),
                conf: num(f[4]),
                fisher_p: num(f[5]),
                z_p: opt(f[6]),
                z_stat: opt(f[7]),
                rr_lo: num(f[8]),
                rr_hi: num(f[9]),
            }
        })
        .collect()
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    if want == 0.0 || want.is_infinite() {
        return got == want;
    }
    ((got - want) / want).abs() <= rel
}

#[test]
fn golden_table_is_complete() {
    let cases = cases();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    // Zeros, tiny and large counts are all there.
    assert!(cases.iter().any(|c| c.x1 + c.x2 == 0));
    assert!(cases.iter().any(|c| c.x2 == 0 && c.x1 > 0));
    assert!(cases.iter().any(|c| c.n1 <= 2));
    assert!(cases.iter().any(|c| c.n1 >= 1_000_000));
    // Both sides of Cochran's rule.
    assert!(
        cases
            .iter()
            .any(|c| min_expected(c.x1, c.n1, c.x2, c.n2) < 5.0)
    );
    assert!(
        cases
            .iter()
            .any(|c| min_expected(c.x1, c.n1, c.x2, c.n2) >= 5.0)
    );
}

#[test]
fn fisher_matches_r() {
    for c in cases() {
        let p = fisher_exact(c.x1, c.n1, c.x2, c.n2);
        assert!(
            close(p, c.fisher_p, 1e-9),
            "fisher {}/{} vs {}/{}: got {p:e}, R {:e}",
            c.x1,
            c.n1,
            c.x2,
            c.n2,
            c.fisher_p
        );
    }
}

#[test]
fn z_test_matches_r_prop_test() {
    for c in cases() {
        let got = z_test(c.x1, c.n1, c.x2, c.n2);
        match (got, c.z_p, c.z_stat) {
            (None, None, None) => {}
            (Some((z, p)), Some(want_p), Some(want_stat)) => {
                assert!(
                    close(p, want_p, 1e-9),
                    "z-test {}/{} vs {}/{}: got p {p:e}, R {want_p:e}",
                    c.x1,
                    c.n1,
                    c.x2,
                    c.n2
                );
                assert!(
                    close(z * z, want_stat, 1e-9) || (want_stat == 0.0 && z.abs() < 1e-12),
                    "z² {} vs R X-squared {want_stat}",
                    z * z
                );
                // The sign says which side is higher.
                let d = c.x1 as f64 / c.n1 as f64 - c.x2 as f64 / c.n2 as f64;
                assert!(z * d >= 0.0);
            }
            other => panic!(
                "z-test {}/{} vs {}/{}: defined differently from R: {other:?}",
                c.x1, c.n1, c.x2, c.n2
            ),
        }
    }
}

#[test]
fn rate_ratio_interval_matches_an_independent_computation() {
    for c in cases() {
        let (lo, hi) = rate_ratio_ci(c.x1, c.n1, c.x2, c.n2, c.conf);
        let hi = hi.unwrap_or(f64::INFINITY);
        assert!(
            close(lo, c.rr_lo, 1e-7) && close(hi, c.rr_hi, 1e-7),
            "CI {}/{} vs {}/{} at {}: got [{lo:e}, {hi:e}], R [{:e}, {:e}]",
            c.x1,
            c.n1,
            c.x2,
            c.n2,
            c.conf,
            c.rr_lo,
            c.rr_hi
        );
        // The estimate lies inside its interval.
        if c.x2 > 0 {
            let est = (c.x1 as f64 / c.n1 as f64) / (c.x2 as f64 / c.n2 as f64);
            assert!(lo <= est && est <= hi, "{est} outside [{lo}, {hi}]");
        }
    }
}
