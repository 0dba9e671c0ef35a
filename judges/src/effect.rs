//! Effect sizes of canary against baseline: how *big* a change is, as opposed to how sure we
//! are that there is one (that is the confidence interval's job).
//!
//! - **Mean ratio**: canary mean / baseline mean. Undefined (`None`, with a `note`) when the
//!   baseline mean is 0. Kayenta returns NaN there and NaN silently switches its effect-size
//!   gate off; here the absence is explicit and [`crate::classify()`] says how it decided.
//! - **CLES** (common-language effect size, Vargha–Delaney A): P(canary > baseline) +
//!   ½·P(canary = baseline) for a random pair. It equals U / (n·m), U being the Mann–Whitney
//!   U of the canary. 0.5 means no tendency either way.
//! - **Relative shift**: the Hodges–Lehmann shift divided by the baseline median. Undefined
//!   (`None`, with a `note`) when the baseline median is 0.
//!
//! Means use compensated (Neumaier) summation; CLES is counted exactly in integers.

/// Effect sizes of canary against baseline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EffectSize {
    /// canary mean / baseline mean; `None` when the baseline mean is 0 (see `note`).
    pub mean_ratio: Option<f64>,
    /// P(canary > baseline) + ½ P(canary = baseline).
    pub cles: f64,
    /// Hodges–Lehmann estimate / baseline median; `None` when the baseline median is 0.
    pub relative_shift: Option<f64>,
    /// Why a field is missing, when one is.
    pub note: Option<String>,
}

/// Effect sizes of `canary` against `baseline`, with `estimate` the Hodges–Lehmann shift
/// (canary − baseline) from [`crate::compare_with`].
///
/// Both samples should be finite and non-empty (as [`crate::classify()`] guarantees). An empty
/// side gives `cles` = NaN and no ratios, with a `note` saying so.
pub fn effect_size(canary: &[f64], baseline: &[f64], estimate: f64) -> EffectSize {
    effect_size_sorted(canary, baseline, None, None, estimate)
}

/// [`effect_size`], with `sorted` the two samples sorted ascending by [`f64::total_cmp`]
/// (`[canary, baseline]`) when the caller has them: the same result, without sorting again.
/// Means are taken over `canary` and `baseline` in their given order. `u`, when given, is the
/// Mann–Whitney U of the canary against the baseline (R's `W`, ties ½), from which CLES
/// follows without counting: `2U` is the integer [`cles`] counts.
pub(crate) fn effect_size_sorted(
    canary: &[f64],
    baseline: &[f64],
    sorted: Option<[&[f64]; 2]>,
    u: Option<f64>,
    estimate: f64,
) -> EffectSize {
    let mut notes: Vec<&str> = Vec::new();
    if canary.is_empty() {
        notes.push("canary sample is empty");
    }
    if baseline.is_empty() {
        notes.push("baseline sample is empty");
    }
    if !notes.is_empty() {
        return EffectSize {
            mean_ratio: None,
            cles: f64::NAN,
            relative_shift: None,
            note: Some(notes.join("; ")),
        };
    }

    let baseline_mean = mean(baseline);
    let mean_ratio = if baseline_mean == 0.0 {
        notes.push("baseline mean is 0: mean ratio undefined");
        None
    } else {
        Some(mean(canary) / baseline_mean)
    };

    let baseline_median = match sorted {
        Some([_, ys]) => median_sorted(ys),
        None => median(baseline),
    };
    let relative_shift = if baseline_median == 0.0 {
        notes.push("baseline median is 0: relative shift undefined");
        None
    } else {
        Some(estimate / baseline_median)
    };

    EffectSize {
        mean_ratio,
        cles: match (u, sorted) {
            // 2U < 2⁵³ is exact in f64 (and U = 2U/2 too), so this is cles's own division.
            (Some(u), _) if u.is_finite() && 2.0 * u < 9.0e15 => {
                (2.0 * u) / (2 * canary.len() as u128 * baseline.len() as u128) as f64
            }
            (_, Some([xs, ys])) => cles_sorted(xs, ys),
            _ => cles(canary, baseline),
        },
        relative_shift,
        note: if notes.is_empty() {
            None
        } else {
            Some(notes.join("; "))
        },
    }
}

/// The arithmetic mean, summed with Neumaier compensation. NaN for an empty slice.
///
/// The values are summed in four interleaved compensated sums (which the processor
/// overlaps, instead of waiting on one chain of additions), and the four are then added
/// with compensation too.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut lanes = [Neumaier::default(); 4];
    let chunks = values.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            lane.add(v);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(tail) {
        lane.add(v);
    }
    let mut total = Neumaier::default();
    for lane in &lanes {
        total.add(lane.sum);
    }
    for lane in &lanes {
        total.add(lane.compensation);
    }
    total.value() / values.len() as f64
}

/// A running sum with Neumaier's compensation: the rounding error of every addition is
/// kept apart and added at the end.
#[derive(Debug, Clone, Copy, Default)]
struct Neumaier {
    sum: f64,
    compensation: f64,
}

impl Neumaier {
    #[inline(always)]
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        // Both candidates, then a select: no branch per value.
        let big = (self.sum - t) + v;
        let small = (v - t) + self.sum;
        self.compensation += if self.sum.abs() >= v.abs() {
            big
        } else {
            small
        };
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// The median (the mean of the two middle values for an even count). NaN for an empty slice.
/// Does not modify `values`; works on a copy in O(n).
pub fn median(values: &[f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    let mid = n / 2;
    let (lower, &mut upper_mid, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if n % 2 == 1 {
        return upper_mid;
    }
    let lower_mid = lower
        .iter()
        .copied()
        .max_by(f64::total_cmp)
        .unwrap_or(upper_mid);
    // 0.5·a + 0.5·b rounds like (a + b)/2 but cannot overflow.
    0.5 * lower_mid + 0.5 * upper_mid
}

/// [`median`] of values sorted ascending by [`f64::total_cmp`]: the same bits, in O(1).
pub(crate) fn median_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let upper_mid = sorted[n / 2];
    if n % 2 == 1 {
        return upper_mid;
    }
    0.5 * sorted[n / 2 - 1] + 0.5 * upper_mid
}

/// P(canary > baseline) + ½·P(canary = baseline) over all n·m pairs, counted exactly by
/// sorting copies of both samples and walking them together: O((n + m) log(n + m)).
/// NaN when either side is empty.
pub fn cles(canary: &[f64], baseline: &[f64]) -> f64 {
    if canary.is_empty() || baseline.is_empty() {
        return f64::NAN;
    }
    let mut x = canary.to_vec();
    let mut y = baseline.to_vec();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    cles_sorted(&x, &y)
}

/// [`cles`] of two samples sorted ascending by [`f64::total_cmp`], in O(n + m).
pub(crate) fn cles_sorted(x: &[f64], y: &[f64]) -> f64 {
    if x.is_empty() || y.is_empty() {
        return f64::NAN;
    }
    // For each canary value (ascending), `below` = #baseline < it and `at_or_below` =
    // #baseline ≤ it; both only grow. Twice the count: 2·#greater + #equal.
    let (mut below, mut at_or_below) = (0usize, 0usize);
    let mut twice: u128 = 0;
    for &xi in x {
        while below < y.len() && y[below] < xi {
            below += 1;
        }
        at_or_below = at_or_below.max(below);
        while at_or_below < y.len() && y[at_or_below] <= xi {
            at_or_below += 1;
        }
        twice += (below + at_or_below) as u128;
    }
    let pairs = x.len() as u128 * y.len() as u128;
    twice as f64 / (2 * pairs) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The O(n·m) definition, to check the merge against.
    fn cles_naive(x: &[f64], y: &[f64]) -> f64 {
        let mut s = 0.0;
        for &a in x {
            for &b in y {
                s += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        s / (x.len() * y.len()) as f64
    }

    #[test]
    fn mean_and_median() {
        assert_eq!(mean(&[1.0, 2.0, 3.0, 6.0]), 3.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[f64::MAX, f64::MAX]), f64::MAX);
        assert!(mean(&[]).is_nan());
        assert!(median(&[]).is_nan());
        // Compensated: 1e16 + 1 + 1 − 1e16 is 2, not 0.
        assert_eq!(mean(&[1e16, 1.0, 1.0, -1e16]), 0.5);
    }

    #[test]
    fn the_four_lane_mean_keeps_its_compensation_in_every_position() {
        // Large values cancelling across lanes and in the tail, among small ones: every
        // value is an integer, so the exact sum is known (i128).
        let mut s = 99u64;
        for len in 1..40usize {
            let values: Vec<f64> = (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let big = ((s >> 40) % 2 == 0) as i64;
                    let sign = if (s >> 50) % 2 == 0 { 1 } else { -1 };
                    (sign * (big * (1i64 << 55) + ((s >> 20) % 1000) as i64)) as f64
                })
                .collect();
            let exact: i128 = values.iter().map(|&v| v as i128).sum();
            let want = exact as f64 / len as f64;
            let got = mean(&values);
            assert!(
                (got - want).abs() <= 4.0 * f64::EPSILON * want.abs() + 1e-9,
                "len {len}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn cles_counts_ties_as_half() {
        assert_eq!(cles(&[2.0], &[1.0]), 1.0);
        assert_eq!(cles(&[1.0], &[2.0]), 0.0);
        assert_eq!(cles(&[1.0], &[1.0]), 0.5);
        // Pairs: (1,1)=½ (1,2)=0 (3,1)=1 (3,2)=1 → 2.5/4.
        assert_eq!(cles(&[3.0, 1.0], &[2.0, 1.0]), 0.625);
    }

    #[test]
    fn cles_matches_the_definition_with_many_ties() {
        let x = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0];
        let y = [
            2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0, 2.0, 8.0, 4.0, 5.0, 9.0,
        ];
        assert!((cles(&x, &y) - cles_naive(&x, &y)).abs() < 1e-15);
        assert!((cles(&y, &x) - cles_naive(&y, &x)).abs() < 1e-15);
        assert!((cles(&x, &y) + cles(&y, &x) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn effect_sizes() {
        let e = effect_size(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0], 2.0);
        assert_eq!(e.mean_ratio, Some(2.0));
        assert_eq!(e.relative_shift, Some(1.0));
        assert_eq!(e.cles, cles_naive(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0]));
        assert_eq!(e.note, None);
    }

    #[test]
    fn zero_baseline_mean_and_median_are_explained() {
        let e = effect_size(&[1.0, 2.0], &[0.0, 0.0, 0.0], 1.5);
        assert_eq!(e.mean_ratio, None);
        assert_eq!(e.relative_shift, None);
        assert_eq!(e.cles, 1.0);
        let note = e.note.unwrap();
        assert!(
            note.contains("baseline mean is 0: mean ratio undefined"),
            "{note}"
        );
        assert!(note.contains("baseline median is 0"), "{note}");

        // Mean 0 but median not: only the ratio is missing.
        let e = effect_size(&[1.0], &[-2.0, 1.0, 1.0], 0.0);
        assert_eq!(e.mean_ratio, None);
        assert_eq!(e.relative_shift, Some(0.0));
        assert_eq!(
            e.note.as_deref(),
            Some("baseline mean is 0: mean ratio undefined")
        );
    }

    #[test]
    fn empty_side() {
        let e = effect_size(&[], &[1.0], 0.0);
        assert!(e.cles.is_nan());
        assert_eq!(e.note.as_deref(), Some("canary sample is empty"));
    }
}
