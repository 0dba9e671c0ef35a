//! Property tests of the comparison and of the selection over pairwise differences.
//!
//! Symmetry, translation and power-of-two scaling are checked on integer-valued (or dyadic)
//! data, where every difference is computed exactly, so the properties hold bit for bit;
//! general scale factors are checked with a tolerance.

use fledge_judges::compare::{compare_with, sorted_copy};
use fledge_judges::shift::{
    Anchor, Guide, count_le, grown_guide, hodges_lehmann, hodges_lehmann_hinted, median_ranks,
    select_guided, select_ranks, select_ranks_hinted,
};
use fledge_judges::{CompareOptions, Comparison, compare};
use proptest::prelude::*;

/// Integer-valued samples; a narrow range gives many ties, a wide one few.
fn int_sample(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        prop::collection::vec(-5i32..=5, 1..max_len),
        prop::collection::vec(-100_000i32..=100_000, 1..max_len),
    ]
    .prop_map(|v| v.into_iter().map(f64::from).collect())
}

fn float_sample(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1e6f64..1e6, 1..max_len)
}

fn confidence() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.9), Just(0.95), Just(0.98), Just(0.99), 0.5f64..0.999]
}

fn inflation() -> impl Strategy<Value = f64> {
    prop_oneof![3 => Just(1.0), 1 => 1.0f64..4.0]
}

fn run(x: &[f64], y: &[f64], confidence: f64, variance_inflation: f64) -> Comparison {
    compare_with(
        x,
        y,
        &CompareOptions {
            confidence,
            variance_inflation,
        },
    )
    .unwrap()
}

fn brute_sorted_diffs(x: &[f64], y: &[f64]) -> Vec<f64> {
    let mut d: Vec<f64> = x
        .iter()
        .flat_map(|&a| y.iter().map(move |&b| a - b))
        .collect();
    d.sort_unstable_by(f64::total_cmp);
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn swapping_samples_mirrors_the_result(
        x in int_sample(80), y in int_sample(80), c in confidence(), f in inflation()
    ) {
        let a = run(&x, &y, c, f);
        let b = run(&y, &x, c, f);
        prop_assert_eq!(a.method, b.method);
        prop_assert_eq!(b.estimate, -a.estimate);
        prop_assert_eq!(b.ci, [-a.ci[1], -a.ci[0]]);
        prop_assert_eq!(a.u + b.u, (x.len() * y.len()) as f64);
        prop_assert!((a.p_value - b.p_value).abs() <= 1e-12 * a.p_value.max(1e-300));
    }

    #[test]
    fn swapping_float_samples_negates_the_estimate(x in float_sample(120), y in float_sample(120)) {
        let a = compare(&x, &y, 0.95).unwrap();
        let b = compare(&y, &x, 0.95).unwrap();
        prop_assert_eq!(b.estimate, -a.estimate);
    }

    #[test]
    fn shifting_the_canary_shifts_estimate_and_interval(
        x in int_sample(80), y in int_sample(80), shift in -1000i32..=1000, c in confidence(),
        f in inflation()
    ) {
        let shift = f64::from(shift);
        let a = run(&x, &y, c, f);
        let xs: Vec<f64> = x.iter().map(|v| v + shift).collect();
        let b = run(&xs, &y, c, f);
        prop_assert_eq!(b.estimate, a.estimate + shift);
        // Shifting can create or remove ties between the samples, which switches between
        // the exact and the normal method; within one method the interval moves with it.
        if a.method == b.method {
            prop_assert_eq!(b.ci, [a.ci[0] + shift, a.ci[1] + shift]);
        }
    }

    #[test]
    fn power_of_two_scaling_scales_exactly(
        x in int_sample(80), y in int_sample(80), e in -20i32..=20, c in confidence()
    ) {
        let s = 2f64.powi(e);
        let a = compare(&x, &y, c).unwrap();
        let xs: Vec<f64> = x.iter().map(|v| v * s).collect();
        let ys: Vec<f64> = y.iter().map(|v| v * s).collect();
        let b = compare(&xs, &ys, c).unwrap();
        prop_assert_eq!(b.estimate, a.estimate * s);
        prop_assert_eq!(b.ci, [a.ci[0] * s, a.ci[1] * s]);
        prop_assert_eq!(a.u, b.u);
        prop_assert_eq!(a.p_value, b.p_value);
    }

    #[test]
    fn positive_scaling_scales_the_estimate(
        x in float_sample(100), y in float_sample(100), s in 1e-3f64..1e3
    ) {
        let a = compare(&x, &y, 0.95).unwrap();
        let xs: Vec<f64> = x.iter().map(|v| v * s).collect();
        let ys: Vec<f64> = y.iter().map(|v| v * s).collect();
        let b = compare(&xs, &ys, 0.95).unwrap();
        // Order statistics are 1-Lipschitz, so only rounding separates them.
        let tol = 1e-12 * s * 4e6;
        prop_assert!((b.estimate - a.estimate * s).abs() <= tol, "{} vs {}", b.estimate, a.estimate * s);
    }

    #[test]
    fn p_value_in_unit_interval_and_interval_holds_the_estimate(
        x in prop_oneof![int_sample(120), float_sample(120)],
        y in prop_oneof![int_sample(120), float_sample(120)],
        c in confidence(), f in inflation()
    ) {
        let r = run(&x, &y, c, f);
        prop_assert!((0.0..=1.0).contains(&r.p_value), "{}", r.p_value);
        prop_assert!(r.ci[0] <= r.estimate && r.estimate <= r.ci[1], "{:?} {}", r.ci, r.estimate);
        let (lo, hi) = (x.iter().cloned().fold(f64::INFINITY, f64::min), x.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        let (ylo, yhi) = (y.iter().cloned().fold(f64::INFINITY, f64::min), y.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        prop_assert!(r.ci[0] >= lo - yhi && r.ci[1] <= hi - ylo);
        prop_assert!(r.u >= 0.0 && r.u <= (x.len() * y.len()) as f64);
    }

    #[test]
    fn input_order_does_not_matter(x in float_sample(60), y in int_sample(60), c in confidence()) {
        let a = compare(&x, &y, c).unwrap();
        let xr: Vec<f64> = x.iter().rev().copied().collect();
        let yr: Vec<f64> = y.iter().rev().copied().collect();
        let b = compare(&xr, &yr, c).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn selection_matches_brute_force_small(
        x in prop_oneof![int_sample(40), float_sample(40)],
        y in prop_oneof![int_sample(40), float_sample(40)],
        picks in prop::collection::vec(0.0f64..1.0, 1..8)
    ) {
        let (xs, ys) = (sorted_copy(&x), sorted_copy(&y));
        let d = brute_sorted_diffs(&xs, &ys);
        let ranks: Vec<u128> = picks.iter().map(|p| 1 + (p * d.len() as f64) as u128 % d.len() as u128).collect();
        let got = select_ranks(&xs, &ys, &ranks);
        for (k, g) in ranks.iter().zip(&got) {
            prop_assert_eq!(*g, d[(*k - 1) as usize], "rank {}", k);
        }
        let t = d[d.len() / 2];
        prop_assert_eq!(count_le(&xs, &ys, t), d.iter().filter(|&&v| v <= t).count() as u128);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Sizes above the enumeration limit (n·m > 4096), so the sampling rounds run.
    #[test]
    fn selection_matches_brute_force_large(
        x in prop_oneof![
            prop::collection::vec(-3i32..=3, 70..200).prop_map(|v| v.into_iter().map(f64::from).collect::<Vec<f64>>()),
            prop::collection::vec(-1e3f64..1e3, 70..200),
            prop::collection::vec(prop_oneof![Just(0.0), Just(1.0), -1e9f64..1e9], 70..200),
        ],
        y in prop_oneof![
            prop::collection::vec(-3i32..=3, 70..200).prop_map(|v| v.into_iter().map(f64::from).collect::<Vec<f64>>()),
            prop::collection::vec(-1e3f64..1e3, 70..200),
            prop::collection::vec(prop_oneof![Just(0.0), Just(-0.0), 0.0f64..1e-300], 70..200),
        ],
        picks in prop::collection::vec(0.0f64..1.0, 1..8)
    ) {
        let (xs, ys) = (sorted_copy(&x), sorted_copy(&y));
        let d = brute_sorted_diffs(&xs, &ys);
        let total = d.len() as u128;
        let mut ranks: Vec<u128> = picks.iter().map(|p| 1 + (p * d.len() as f64) as u128 % total).collect();
        ranks.extend([1, total, total / 2, total / 2 + 1]);
        let got = select_ranks(&xs, &ys, &ranks);
        for (k, g) in ranks.iter().zip(&got) {
            // Numerically equal (−0.0 and +0.0 are the same difference).
            prop_assert!(*g == d[(*k - 1) as usize], "rank {}: {} vs {}", k, g, d[(*k - 1) as usize]);
        }
    }

    /// Guesses of the values (good, poor, absurd or missing) change how the selection starts,
    /// never what it finds.
    #[test]
    fn hinted_selection_matches_brute_force(
        x in prop::collection::vec(-1e3f64..1e3, 70..200),
        y in prop::collection::vec((-3i32..=3).prop_map(f64::from), 70..200),
        picks in prop::collection::vec(0.0f64..1.0, 1..6),
        hints in prop::collection::vec(prop_oneof![
            Just(None),
            Just(Some(f64::NAN)),
            Just(Some(f64::INFINITY)),
            (-1e6f64..1e6).prop_map(Some),
            (-0.01f64..0.01).prop_map(Some),
        ], 0..8),
        near in prop::bool::ANY,
    ) {
        let (xs, ys) = (sorted_copy(&x), sorted_copy(&y));
        let d = brute_sorted_diffs(&xs, &ys);
        let total = d.len() as u128;
        let ranks: Vec<u128> = picks.iter().map(|p| 1 + (p * d.len() as f64) as u128 % total).collect();
        // Either the given guesses, or the true values nudged (what an earlier interval gives).
        let hints: Vec<Option<f64>> = if near {
            ranks.iter().map(|k| Some(d[(*k - 1) as usize] + 0.5)).collect()
        } else {
            hints
        };
        let got = select_ranks_hinted(&xs, &ys, &ranks, &hints);
        for (k, g) in ranks.iter().zip(&got) {
            prop_assert!(*g == d[(*k - 1) as usize], "rank {}: {} vs {}", k, g, d[(*k - 1) as usize]);
        }
        let (a, b) = median_ranks(total);
        let hl = (d[(a - 1) as usize] + d[(b - 1) as usize]) / 2.0;
        let guess = hints.first().copied().flatten();
        prop_assert_eq!(hodges_lehmann_hinted(&xs, &ys, guess), hodges_lehmann(&xs, &ys));
        prop_assert!((hodges_lehmann(&xs, &ys) - hl).abs() <= 1e-9 * hl.abs().max(1.0));
    }

    /// Guides that say where a value ranks (right, off by much, or nonsense) place the first
    /// bracket without a count; the values found are still exactly the asked order statistics.
    #[test]
    fn guided_selection_matches_brute_force(
        x in prop::collection::vec(-1e3f64..1e3, 70..200),
        y in prop::collection::vec(-1e3f64..1e3, 70..200),
        picks in prop::collection::vec(0.0f64..1.0, 1..4),
        rank_error in -20_000.0f64..20_000.0,
        slope_factor in prop_oneof![Just(1.0), 0.01f64..100.0, Just(-1.0), Just(f64::NAN)],
    ) {
        let (xs, ys) = (sorted_copy(&x), sorted_copy(&y));
        let d = brute_sorted_diffs(&xs, &ys);
        let total = d.len() as u128;
        let ranks: Vec<u128> = picks.iter().map(|p| 1 + (p * d.len() as f64) as u128 % total).collect();
        let slope = (d[d.len() - 1] - d[0]) / total as f64 * slope_factor;
        let guides: Vec<Option<Guide>> = ranks
            .iter()
            .map(|&k| {
                let v = d[(k - 1) as usize];
                Some(Guide { value: v, at: Some((k as f64 + rank_error, slope)) })
            })
            .collect();
        let (got, slopes) = select_guided(&xs, &ys, &ranks, &guides);
        prop_assert_eq!(slopes.len(), ranks.len());
        for (k, g) in ranks.iter().zip(&got) {
            prop_assert!(*g == d[(*k - 1) as usize], "rank {}: {} vs {}", k, g, d[(*k - 1) as usize]);
        }
    }

    /// An anchor of a prefix of two series, grown by the points added since, ranks the
    /// anchor's value among the grown samples' differences exactly as counting them does
    /// (tie-free values, so the old rank is the old count).
    #[test]
    fn grown_guides_rank_like_a_count(
        x in prop::collection::vec(-1e3f64..1e3, 40..120),
        y in prop::collection::vec(-1e3f64..1e3, 40..120),
        cut in 0.5f64..1.0,
        pick in 0.0f64..1.0,
    ) {
        let (n0, m0) = (((x.len() as f64) * cut) as usize, ((y.len() as f64) * cut) as usize);
        let (xs0, ys0) = (sorted_copy(&x[..n0]), sorted_copy(&y[..m0]));
        let d0 = brute_sorted_diffs(&xs0, &ys0);
        let k0 = 1 + ((pick * d0.len() as f64) as usize).min(d0.len() - 1);
        let value = d0[k0 - 1];
        // Tie-free at the anchor: its rank is its count.
        prop_assume!(count_le(&xs0, &ys0, value) == k0 as u128);
        let anchor = Anchor { value, rank: k0 as u128, slope: 1.0 };
        let (xs, ys) = (sorted_copy(&x), sorted_copy(&y));
        let g = grown_guide(&anchor, (n0, m0), &xs, &ys, &x[n0..], &y[m0..]);
        let (rank, slope) = g.at.expect("a grown guide knows its rank");
        prop_assert_eq!(rank, count_le(&xs, &ys, value) as f64);
        let grown = (x.len() * y.len()) as f64 / (n0 * m0) as f64;
        prop_assert!((slope - 1.0 / grown).abs() < 1e-12);
    }
}
