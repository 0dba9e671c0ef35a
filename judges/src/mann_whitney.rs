//! The Mann–Whitney U statistic (R's `W`) and its two-sided p-value, exact or normal.
//!
//! # Statistic
//!
//! `U = Σ_{i≤n} rank(x_i) − n(n+1)/2` with average (mid) ranks over the pooled sample, which
//! equals `#{(i,j): x_i > y_j} + ½·#{(i,j): x_i = y_j}`. [`rank_summary`] computes it from
//! the two **sorted** samples with one merge in O(n + m), together with the tie-group sizes
//! needed by the variance; nothing is re-sorted. `U` is always a multiple of ½, so it is
//! kept as the integer `2U` ([`RankSummary::u_twice`]).
//!
//! # p-value (R's `wilcox.test(x, y, correct = TRUE)`, R < 4.6 rules)
//!
//! - **Exact** (the caller decides; R's rule is n < 50, m < 50 and no ties): the null
//!   distribution of U is the coefficient list of the Gaussian binomial
//!   `[n+m choose n]_q = Π_{i=1}^{n} (1 − q^{m+i}) / (1 − q^i)`, the generating function of
//!   R's `cwilcox` counting recursion `c(u; n, m) = c(u − m; n − 1, m) + c(u; n, m − 1)`.
//!   [`NullDistribution`] builds it in O(min(n,m)·nm/2) exact integer operations (64-bit
//!   when `C(n+m, n)` fits, else 128-bit; only the lower half of the symmetric distribution
//!   is kept), instead of R's memoised recursion over all (u, n', m'); a unit test checks it
//!   against that recursion. The two-sided p-value is R's
//!   `min(1, 2·(q > nm/2 ? P(W ≥ q) : P(W ≤ q)))`, and [`NullDistribution::quantile_lower`]
//!   is R's `qwilcox`, summed term by term in double precision as R does.
//! - **Normal**: `σ² = nm/12·((n+m+1) − Σ(t³ − t)/((n+m)(n+m−1)))` over the tie groups of the
//!   pooled sample, optionally multiplied by a variance-inflation factor;
//!   `z = (U − nm/2 − ½·sign(U − nm/2))/σ` and `p = erfc(|z|/√2)`, which keeps its relative
//!   accuracy for p-values down to about 1e-300 (it is never computed as `1 − Φ`). Fully tied
//!   pooled data (σ = 0) give p = 1. Which method applies is decided by the caller
//!   ([`crate::compare`]: exact iff n < 50, m < 50, no ties and no variance inflation).
//!
//! [`erfc`] is computed here (Taylor series of erf below 1.25, the Laplace continued fraction
//! above, evaluated with the modified Lentz method) with a relative error of a few 1e-16;
//! `statrs`' `erfc` was measured at up to 1e-10 relative error, which would show in
//! p-values compared with R to 1e-9.
//!
//! Sources: R's `src/library/stats/R/wilcox.test.R` and `src/nmath/wilcox.c`; Mann & Whitney
//! (1947); the tie-corrected variance as in Lehmann, *Nonparametrics* (1975).

/// What the pooled ranking of two sorted samples says: U and the tie structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankSummary {
    /// Size of the canary sample.
    pub n: usize,
    /// Size of the baseline sample.
    pub m: usize,
    /// `2·U`, an integer: `2·#{x_i > y_j} + #{x_i = y_j}`.
    pub u_twice: u128,
    /// `Σ (t³ − t)` over the tie groups of the pooled sample.
    pub pooled_ties: u128,
    /// `Σ (t³ − t)` over the tie groups within the canary plus those within the baseline
    /// (the ties that survive a generic shift of the canary).
    pub within_ties: u128,
    /// Whether any two values of the pooled sample are equal.
    pub has_ties: bool,
}

impl RankSummary {
    /// Mann–Whitney U for the canary (R's `W`).
    pub fn u(&self) -> f64 {
        self.u_twice as f64 / 2.0
    }

    /// Sum of the canary's (average) ranks in the pooled sample: `U + n(n+1)/2`.
    pub fn rank_sum(&self) -> f64 {
        let n = self.n as u128;
        (self.u_twice + n * (n + 1)) as f64 / 2.0
    }

    /// Common-language effect size `P(canary > baseline) + ½·P(canary = baseline)`, which is
    /// `U / (n·m)`.
    pub fn cles(&self) -> f64 {
        self.u_twice as f64 / (2.0 * self.n as f64 * self.m as f64)
    }

    /// Null variance of U with the tie correction of the pooled sample.
    pub fn variance(&self) -> f64 {
        tie_corrected_variance(self.n, self.m, self.pooled_ties)
    }
}

/// Ranks the pooled sample of `x_sorted` and `y_sorted` (both ascending, no NaN) by one merge.
pub fn rank_summary(x_sorted: &[f64], y_sorted: &[f64]) -> RankSummary {
    rank_summary_untied(x_sorted, y_sorted)
        .unwrap_or_else(|| rank_summary_shifted(x_sorted, 0.0, y_sorted))
}

/// Rows per group of independent merge pointers in [`rank_summary_untied`].
const MERGE_LANES: usize = 4;

/// [`rank_summary`] when the pooled sample has no ties (`None` otherwise), the common case
/// for continuous metrics.
///
/// The merge pointer `#{y < x_i}` of one sequential merge is a chain of dependent loads, so
/// one merge runs at the latency of that chain. Here the canary is cut into
/// [`MERGE_LANES`] consecutive runs, each started by a binary search, and the runs advance
/// together: independent chains that the processor overlaps. Without ties,
/// `2U = Σ 2·#{y < x_i}` and every tie sum is 0, exactly as the general merge finds.
fn rank_summary_untied(x: &[f64], y: &[f64]) -> Option<RankSummary> {
    let (n, m) = (x.len(), y.len());
    let untied = |v: &[f64]| v.windows(2).fold(true, |ok, w| ok & (w[0] != w[1]));
    // The per-run sums are 64-bit.
    if n as u128 * m as u128 > u128::from(u64::MAX) || !untied(x) || !untied(y) {
        return None;
    }
    let len = n / MERGE_LANES;
    let mut lt = [0usize; MERGE_LANES];
    for (s, p) in lt.iter_mut().enumerate() {
        if let Some(&v) = x.get(s * len) {
            *p = y.partition_point(|&yj| yj < v);
        }
    }
    let mut sum = [0u64; MERGE_LANES];
    let mut tie = false;
    for r in 0..len {
        for s in 0..MERGE_LANES {
            let v = x[s * len + r];
            lt[s] = advance_below(y, lt[s], v);
            sum[s] += lt[s] as u64;
            tie |= y.get(lt[s]).is_some_and(|&w| w == v);
        }
    }
    let mut total: u128 = sum.iter().map(|&c| u128::from(c)).sum();
    let mut p = lt[MERGE_LANES - 1];
    for &v in &x[MERGE_LANES * len..] {
        p = advance_below(y, p, v);
        total += p as u128;
        tie |= y.get(p).is_some_and(|&w| w == v);
    }
    if tie {
        return None;
    }
    Some(RankSummary {
        n,
        m,
        u_twice: 2 * total,
        pooled_ties: 0,
        within_ties: 0,
        has_ties: false,
    })
}

/// As [`rank_summary`], for the canary shifted by `d`: the values `fl(x_i − d)` against `y`
/// (what R ranks when it evaluates the statistic at a candidate shift `d`).
pub fn rank_summary_shifted(x_sorted: &[f64], d: f64, y_sorted: &[f64]) -> RankSummary {
    rank_summary_shifted_with(x_sorted, d, y_sorted, run_ties(y_sorted))
}

/// [`rank_summary_shifted`] with the baseline's own tie sum (its [`run_ties`], which no
/// shift changes) already known, for a caller that evaluates several shifts.
pub(crate) fn rank_summary_shifted_with(
    x_sorted: &[f64],
    d: f64,
    y_sorted: &[f64],
    baseline_ties: u128,
) -> RankSummary {
    let (n, m) = (x_sorted.len(), y_sorted.len());
    let y = y_sorted;
    // For each run of equal canary values v (a of them), `lt` is #{y < v} and `le` is
    // #{y ≤ v}; the run adds a·(lt + le) to 2U. A pooled tie group of a canary and b
    // baseline values has t³ − t = (a³ − a) + (b³ − b) + 3ab(a + b).
    //
    // `fl(x_i − d)` is non-decreasing in i because floating subtraction is monotone, so the
    // rows below every baseline value come first and those above every one last. Neither
    // meets a baseline value: the first add nothing to 2U, the last 2m each, and only their
    // runs among themselves count as ties. No run of equal values crosses either boundary
    // (the inequalities are strict), so the merge is over the rows between.
    let (start, stop) = match (y.first(), y.last()) {
        (Some(&lo), Some(&hi)) => {
            let start = x_sorted.partition_point(|&xi| xi - d < lo);
            (
                start,
                start + x_sorted[start..].partition_point(|&xi| xi - d <= hi),
            )
        }
        _ => (n, n),
    };
    let (mut lt, mut le) = (0usize, 0usize);
    let mut u_twice: u128 = 2 * m as u128 * (n - stop) as u128;
    let mut canary_ties: u128 =
        shifted_run_ties(&x_sorted[..start], d) + shifted_run_ties(&x_sorted[stop..], d);
    let mut cross: u128 = 0;
    let mut i = start;
    while i < stop {
        let v = x_sorted[i] - d;
        let mut a = 1;
        while i + a < stop && x_sorted[i + a] - d == v {
            a += 1;
        }
        lt = advance_below(y, lt, v);
        le = le.max(lt);
        while le < m && y[le] == v {
            le += 1;
        }
        i += a;
        if a == 1 && le == lt {
            // The common case: a single canary value that ties with nothing.
            u_twice += (2 * lt) as u128;
            continue;
        }
        let (a, b) = (a as u128, (le - lt) as u128);
        u_twice += a * (lt + le) as u128;
        canary_ties += a * a * a - a;
        cross += 3 * a * b * (a + b);
    }
    debug_assert_eq!(baseline_ties, run_ties(y));
    let within_ties = canary_ties + baseline_ties;
    let pooled_ties = within_ties + cross;
    RankSummary {
        n,
        m,
        u_twice,
        pooled_ties,
        within_ties,
        has_ties: pooled_ties > 0,
    }
}

/// [`rank_summary`] of the sorted samples `x_sorted` and `y_sorted`, from `prev`, the
/// summary of those samples without the points `new_x` and `new_y` (which are in the sorted
/// samples): the same summary, from binary searches for the new points instead of a merge
/// of all of them. A window that grew by an interval adds a few dozen points to thousands.
///
/// `2U` gains each new canary value's count against the whole baseline and each new baseline
/// value's against the whole canary, less the new × new pairs (counted twice). A tie group
/// of `t` values that gained `a` adds `f(t) − f(t − a)`, `f(t) = t³ − t`, to its sums.
///
/// # Panics
/// If the sizes do not add up (`prev.n + new_x.len()` must be `x_sorted.len()`, and so for
/// `m`).
pub fn rank_summary_grown(
    prev: &RankSummary,
    x_sorted: &[f64],
    y_sorted: &[f64],
    new_x: &[f64],
    new_y: &[f64],
) -> RankSummary {
    let (n, m) = (x_sorted.len(), y_sorted.len());
    assert!(
        prev.n + new_x.len() == n && prev.m + new_y.len() == m,
        "the new points must be those the samples grew by"
    );
    // (#{s < v}, #{s ≤ v}) in a sorted sample.
    let count = |s: &[f64], v: f64| {
        let lt = s.partition_point(|&o| o < v);
        (lt, lt + s[lt..].partition_point(|&o| o <= v))
    };
    let f = |t: usize| {
        let t = t as u128;
        t * t * t - t
    };
    // The new points by value (−0.0 and +0.0 are next to each other and tie), each marked
    // with its sample, walked in groups of equal values: each group's counts in the two
    // samples give its pairs with every point and its tie groups' growth.
    let mut new: Vec<(f64, bool)> = new_x
        .iter()
        .map(|&v| (v, true))
        .chain(new_y.iter().map(|&w| (w, false)))
        .collect();
    new.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut u_twice, mut within, mut pooled) = (prev.u_twice, prev.within_ties, prev.pooled_ties);
    // New × new pairs are counted from both sides; `below_y` is #{new y < this group}.
    let (mut both, mut below_y) = (0u128, 0usize);
    let mut i = 0;
    while i < new.len() {
        let v = new[i].0;
        let mut j = i;
        while j < new.len() && new[j].0 == v {
            j += 1;
        }
        let ax = new[i..j].iter().filter(|p| p.1).count();
        let ay = (j - i) - ax;
        let (lx, hx) = count(x_sorted, v);
        let (ly, hy) = count(y_sorted, v);
        u_twice += (ax * (ly + hy) + ay * (2 * n - lx - hx)) as u128;
        both += (ax * (2 * below_y + ay)) as u128;
        below_y += ay;
        let (cx, cy) = (hx - lx, hy - ly);
        within += (f(cx) - f(cx - ax)) + (f(cy) - f(cy - ay));
        pooled += f(cx + cy) - f(cx + cy - ax - ay);
        i = j;
    }
    u_twice -= both;
    RankSummary {
        n,
        m,
        u_twice,
        pooled_ties: pooled,
        within_ties: within,
        has_ties: pooled > 0,
    }
}

/// The first `j ≥ p` with `y[j] ≥ v` (or `y.len()`), for ascending `y`.
#[inline(always)]
fn advance_below(y: &[f64], p: usize, v: f64) -> usize {
    advance_while(y, p, |yj| yj < v)
}

/// The first `j ≥ p` where `keep(s[j])` fails (or `s.len()`), for a predicate that holds on
/// a prefix of `s`: in blocks of four (a prefix of each block passes), so there is no
/// data-dependent branch per step. Every merge-like walk of the judges advances with this.
#[inline(always)]
pub(crate) fn advance_while(s: &[f64], mut p: usize, keep: impl Fn(f64) -> bool) -> usize {
    while let Some(w) = s.get(p..p + 4) {
        let c = w.iter().map(|&o| usize::from(keep(o))).sum::<usize>();
        p += c;
        if c < 4 {
            return p;
        }
    }
    while p < s.len() && keep(s[p]) {
        p += 1;
    }
    p
}

/// [`run_ties`] of the values `fl(x_i − d)` of a sorted sample `x` (a non-decreasing
/// sequence).
///
/// A run of `t` equal values has `t³ − t = Σ_{r=1}^{t} 3r(r − 1)`, so the sum is taken over
/// each value's position `r` in its run: no branch on where runs end.
fn shifted_run_ties(x: &[f64], d: f64) -> u128 {
    // Terms are below n², so 4096 of them fit u64 while n < 2²⁶ (and one always does).
    let flush = if x.len() < 1 << 26 { 4096 } else { 1 };
    let (mut total, mut part, mut r) = (0u128, 0u64, 0u64);
    let mut previous = f64::NAN;
    for (i, &xi) in x.iter().enumerate() {
        let v = xi - d;
        r = r * u64::from(v == previous) + 1;
        previous = v;
        part += r * (r - 1);
        if i % flush == flush - 1 {
            total += u128::from(part);
            part = 0;
        }
    }
    3 * (total + u128::from(part))
}

/// `Σ (t³ − t)` over the runs of equal values of a sorted sample.
pub(crate) fn run_ties(sorted: &[f64]) -> u128 {
    shifted_run_ties(sorted, 0.0)
}

/// Mann–Whitney U (R's `W`) of the sorted canary against the sorted baseline.
pub fn u_statistic(x_sorted: &[f64], y_sorted: &[f64]) -> f64 {
    rank_summary(x_sorted, y_sorted).u()
}

/// `nm/12·((n+m+1) − ties/((n+m)(n+m−1)))`, the null variance of U, where `ties` is
/// `Σ (t³ − t)` over tie groups. Evaluated in the same order as R.
pub fn tie_corrected_variance(n: usize, m: usize, ties: u128) -> f64 {
    let (nf, mf) = (n as f64, m as f64);
    let big_n = nf + mf;
    let correction = if ties == 0 {
        0.0
    } else {
        ties as f64 / (big_n * (big_n - 1.0))
    };
    ((nf * mf / 12.0) * ((big_n + 1.0) - correction)).max(0.0)
}

/// The continuity-corrected normal score `(U − nm/2 − ½·sign(U − nm/2))/σ` (0 when σ = 0).
pub fn normal_z(u: f64, n: usize, m: usize, sigma: f64) -> f64 {
    let dz = u - n as f64 * m as f64 / 2.0;
    if sigma <= 0.0 {
        return 0.0;
    }
    let corr = if dz > 0.0 {
        0.5
    } else if dz < 0.0 {
        -0.5
    } else {
        0.0
    };
    (dz - corr) / sigma
}

/// The complementary error function `erfc(x) = 2/√π ∫_x^∞ e^{−t²} dt`, to a relative error
/// of a few 1e-16 wherever the result is a normal f64 (x up to about 26.5, i.e. values down
/// to about 1e-300); 0 beyond about 27.3.
pub fn erfc(x: f64) -> f64 {
    const FRAC_2_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 1.25 {
        // erf(x) = 2/√π Σ (−1)^k x^{2k+1} / (k!(2k+1)); alternating, terms fall fast here.
        let x2 = x * x;
        let mut term = x; // (−1)^k x^{2k+1} / k!
        let mut sum = x;
        for k in 1..60 {
            term *= -x2 / k as f64;
            let add = term / (2 * k + 1) as f64;
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        return 1.0 - FRAC_2_SQRT_PI * sum;
    }
    if x > 27.3 {
        return 0.0;
    }
    // erfc(x) = 2x·e^{−x²}/√π · 1/(2x²+1 − 1·2/(2x²+5 − 3·4/(2x²+9 − …))), modified Lentz.
    let t = 2.0 * x * x;
    let tiny = 1e-300;
    let (mut f, mut c, mut d) = (tiny, tiny, 0.0f64);
    for k in 1..400u32 {
        let b = t + (4 * k) as f64 - 3.0;
        let a = if k == 1 {
            1.0
        } else {
            -(((2 * k - 3) * (2 * k - 2)) as f64)
        };
        d = b + a * d;
        if d == 0.0 {
            d = tiny;
        }
        c = b + a / c;
        if c == 0.0 {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    f * x * FRAC_2_SQRT_PI * (-x * x).exp()
}

/// Two-sided normal p-value `2·Φ(−|z|) = erfc(|z|/√2)`, clamped to [0, 1].
pub fn two_sided_normal_p(z: f64) -> f64 {
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

/// Two-sided p-value of the normal approximation for `summary`, with the null variance
/// multiplied by `variance_inflation` (≥ 1; 1 for independent samples). Fully tied pooled
/// data (σ = 0) give 1.
pub fn normal_p_value(summary: &RankSummary, variance_inflation: f64) -> f64 {
    let sigma = (summary.variance() * variance_inflation).sqrt();
    if sigma <= 0.0 || !sigma.is_finite() {
        return 1.0;
    }
    two_sided_normal_p(normal_z(summary.u(), summary.n, summary.m, sigma))
}

/// Turns `poly = [1, 0, 0, …]` (length `half + 1`) into the coefficients of degree ≤ `half`
/// of `[small+large choose small]_q = Π_{i=1}^{small} (1 − q^{large+i})/(1 − q^i)`, with
/// wrapping arithmetic. Works on blocks of the stride so that the inner loops are
/// bounds-check free and independent.
macro_rules! gaussian_binomial_half {
    ($poly:ident, $small:expr, $large:expr, $half:expr) => {{
        let len = $half + 1;
        for i in 1..=$small {
            // Multiply by (1 − q^s): new[u] = old[u] − old[u − s], top block first so that
            // the sources are still old values.
            let s = $large + i;
            let mut c = len;
            while c > s {
                let start = (c - s).max(s);
                let (left, right) = $poly.split_at_mut(start);
                let dst = &mut right[..c - start];
                let src = &left[start - s..c - s];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = d.wrapping_sub(v);
                }
                c = start;
            }
            // Divide by (1 − q^i): new[u] = old[u] + new[u − i], bottom block first.
            let mut c = i;
            while c < len {
                let end = (c + i).min(len);
                let (left, right) = $poly.split_at_mut(c);
                let src = &left[c - i..end - i];
                for (d, &v) in right[..end - c].iter_mut().zip(src) {
                    *d = d.wrapping_add(v);
                }
                c = end;
            }
        }
    }};
}

/// The exact null distribution of U for sample sizes `n` and `m` (no ties), lower half.
///
/// `counts[u]` is the number of the `C(n+m, n)` equally likely rank assignments with
/// `U = u`, for `u ≤ ⌊nm/2⌋`; the upper half follows from the symmetry `U ↔ nm − U`.
#[derive(Debug, Clone)]
pub struct NullDistribution {
    n: usize,
    m: usize,
    /// Cumulative counts: `cum[u] = #{U ≤ u}` for `u ≤ ⌊nm/2⌋`.
    cum: Vec<u128>,
    /// Point counts for `u ≤ ⌊nm/2⌋`.
    counts: Vec<u128>,
    /// `C(n+m, n)`.
    total: u128,
}

impl NullDistribution {
    /// Builds the distribution, or `None` when `C(n+m, n)` does not fit in 128 bits
    /// (n + m above about 130) or a sample is empty.
    pub fn new(n: usize, m: usize) -> Option<Self> {
        if n == 0 || m == 0 {
            return None;
        }
        let (small, large) = (n.min(m), n.max(m));
        // C(n+m, small), exact; every prefix C(large+i, i) is an integer.
        let mut total: u128 = 1;
        for i in 1..=small {
            total = total.checked_mul((large + i) as u128)? / i as u128;
        }
        let nm = n.checked_mul(m)?;
        let half = nm / 2;
        // Wrapping arithmetic is exact here: the intermediate polynomials may have negative
        // coefficients, but every result is a non-negative count below 2^64 (resp. 2^128), and
        // wrapping addition and subtraction are exact modulo that power of two.
        let counts: Vec<u128> = if u64::try_from(total).is_ok() {
            let mut poly = vec![0u64; half + 1];
            poly[0] = 1;
            gaussian_binomial_half!(poly, small, large, half);
            poly.into_iter().map(u128::from).collect()
        } else {
            let mut poly = vec![0u128; half + 1];
            poly[0] = 1;
            gaussian_binomial_half!(poly, small, large, half);
            poly
        };
        let mut cum = Vec::with_capacity(counts.len());
        let mut acc = 0u128;
        for &c in &counts {
            acc += c;
            cum.push(acc);
        }
        Some(NullDistribution {
            n,
            m,
            cum,
            counts,
            total,
        })
    }

    /// `C(n+m, n)`, the number of equally likely arrangements.
    pub fn total(&self) -> u128 {
        self.total
    }

    /// Number of arrangements with `U = u` (R's `cwilcox(u, n, m)`).
    pub fn count(&self, u: u64) -> u128 {
        let nm = (self.n * self.m) as u64;
        if u > nm {
            return 0;
        }
        let u = u.min(nm - u) as usize;
        self.counts[u]
    }

    /// Number of arrangements with `U ≤ q`.
    pub fn count_le(&self, q: u64) -> u128 {
        let nm = (self.n * self.m) as u64;
        if q >= nm {
            return self.total;
        }
        let half = self.cum.len() as u64 - 1;
        if q <= half {
            self.cum[q as usize]
        } else {
            // #{U ≤ q} = total − #{U ≥ q+1} = total − #{U ≤ nm − q − 1}.
            self.total - self.cum[(nm - q - 1) as usize]
        }
    }

    /// `P(U ≤ q)` (R's `pwilcox(q, n, m)`).
    pub fn cdf(&self, q: u64) -> f64 {
        self.count_le(q) as f64 / self.total as f64
    }

    /// R's `qwilcox(p, n, m)` for `p ≤ ½`: the smallest q with `P(U ≤ q) ≥ p − 10·ε`, the
    /// probabilities summed term by term in double precision exactly as R does.
    pub fn quantile_lower(&self, p: f64) -> u64 {
        let target = p - 10.0 * f64::EPSILON;
        let total = self.total as f64;
        let mut acc = 0.0;
        let nm = (self.n * self.m) as u64;
        for q in 0..=nm {
            acc += self.count(q) as f64 / total;
            if acc >= target {
                return q;
            }
        }
        nm
    }

    /// Exact two-sided p-value of an observed integer U (R's rule):
    /// `min(1, 2·(q > nm/2 ? P(U ≥ q) : P(U ≤ q)))`.
    pub fn two_sided_p(&self, q: u64) -> f64 {
        let nm = (self.n * self.m) as u64;
        let q = q.min(nm);
        // P(U ≥ q) = P(U ≤ nm − q) by symmetry.
        let tail = if 2 * q > nm {
            self.count_le(nm - q)
        } else {
            self.count_le(q)
        };
        (2.0 * (tail as f64 / self.total as f64)).min(1.0)
    }
}

/// Exact two-sided p-value for an observed `U` (must be an integer, i.e. no ties) with sample
/// sizes n and m, or `None` when the exact distribution is too large (see
/// [`NullDistribution::new`]).
pub fn exact_p_value(u: f64, n: usize, m: usize) -> Option<f64> {
    let dist = NullDistribution::new(n, m)?;
    Some(dist.two_sided_p(u.max(0.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(v: &[f64]) -> Vec<f64> {
        let mut v = v.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        v
    }

    /// R's cwilcox recursion, memoised naively, as an independent reference.
    fn cwilcox(
        u: i64,
        n: usize,
        m: usize,
        memo: &mut std::collections::HashMap<(i64, usize, usize), u128>,
    ) -> u128 {
        let nm = (n * m) as i64;
        if u < 0 || u > nm {
            return 0;
        }
        if n == 0 || m == 0 {
            return u128::from(u == 0);
        }
        if let Some(&v) = memo.get(&(u, n, m)) {
            return v;
        }
        let v = cwilcox(u - m as i64, n - 1, m, memo) + cwilcox(u, n, m - 1, memo);
        memo.insert((u, n, m), v);
        v
    }

    #[test]
    fn gaussian_binomial_matches_cwilcox_recursion() {
        let mut memo = std::collections::HashMap::new();
        for (n, m) in [(1, 1), (2, 3), (5, 4), (7, 7), (10, 3), (12, 15), (20, 9)] {
            let d = NullDistribution::new(n, m).unwrap();
            let mut sum = 0u128;
            for u in 0..=(n * m) as u64 {
                let c = cwilcox(u as i64, n, m, &mut memo);
                assert_eq!(d.count(u), c, "n={n} m={m} u={u}");
                sum += c;
                assert_eq!(d.count_le(u), sum);
            }
            assert_eq!(sum, d.total());
        }
    }

    #[test]
    fn wide_counts_match_the_recursion() {
        // C(70, 34) > 2^64: the 128-bit path. The recursion is cheap for small u only.
        let mut memo = std::collections::HashMap::new();
        let d = NullDistribution::new(34, 36).unwrap();
        let mut sum = 0u128;
        for u in 0..=60u64 {
            let c = cwilcox(u as i64, 34, 36, &mut memo);
            assert_eq!(d.count(u), c, "u={u}");
            sum += c;
            assert_eq!(d.count_le(u), sum);
        }
        // Symmetry and the total.
        let nm = 34 * 36;
        assert_eq!(d.count(nm - 5), d.count(5));
        assert_eq!(d.count_le(nm), d.total());
        assert_eq!(d.count_le(nm / 2) + d.count_le(nm / 2 - 1), d.total());
    }

    #[test]
    fn largest_exact_size_fits() {
        let d = NullDistribution::new(49, 49).unwrap();
        // C(98, 49)
        assert_eq!(d.total(), 25_477_612_258_980_856_902_730_428_600);
        assert_eq!(d.count_le(49 * 49), d.total());
        assert!(NullDistribution::new(200, 200).is_none());
    }

    #[test]
    fn known_values() {
        // scipy / statrs docs: males vs females.
        let x = sorted(&[19.0, 22.0, 16.0, 29.0, 24.0]);
        let y = sorted(&[20.0, 11.0, 17.0, 12.0]);
        let s = rank_summary(&x, &y);
        assert_eq!(s.u(), 17.0);
        assert!(!s.has_ties);
        let p = exact_p_value(s.u(), 5, 4).unwrap();
        assert!((p - 0.1111111111111111).abs() < 1e-15, "{p}");
        // Normal with continuity: 0.11134688653314041.
        let pn = normal_p_value(&s, 1.0);
        assert!((pn - 0.11134688653314041).abs() < 1e-14, "{pn}");

        let x = sorted(&[5.0, 2.0, 7.0, 8.0, 9.0, 3.0, 11.0, 12.0]);
        let y = sorted(&[1.0, 6.0, 10.0, 4.0]);
        let s = rank_summary(&x, &y);
        assert_eq!(s.u(), 21.0);
        let p = exact_p_value(s.u(), 8, 4).unwrap();
        assert!((p - 0.46060606060606063).abs() < 1e-15, "{p}");
        let d = NullDistribution::new(8, 4).unwrap();
        // exact "less" = P(U ≤ 21)
        assert!((d.cdf(21) - 0.8161616161616161).abs() < 1e-15);
        // exact "greater" = P(U ≥ 21) = 1 − P(U ≤ 20)
        assert!((1.0 - d.cdf(20) - 0.23030303030303031).abs() < 1e-15);
    }

    #[test]
    fn ties_and_rank_sum() {
        let x = sorted(&[1.0, 2.0, 2.0, 3.0]);
        let y = sorted(&[2.0, 3.0, 3.0, 4.0, -0.0]);
        let s = rank_summary(&x, &y);
        // pooled: -0,1,2,2,2,3,3,3,4 → ranks 1,2,4,4,4,7,7,7,9; canary ranks 2,4,4,7 = 17
        assert_eq!(s.rank_sum(), 17.0);
        assert_eq!(s.u(), 17.0 - 10.0);
        assert!(s.has_ties);
        assert_eq!(s.pooled_ties, 24 + 24);
        assert_eq!(s.within_ties, 6 + 6);
        assert!((s.cles() - 7.0 / 20.0).abs() < 1e-15);
        // Signed zeros tie.
        let s = rank_summary(&[-0.0], &[0.0]);
        assert_eq!(s.u_twice, 1);
        assert!(s.has_ties);
    }

    #[test]
    fn untied_merge_matches_general_merge() {
        let mut seed = 3u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for (n, m, levels) in [
            (1, 1, 0.0),
            (3, 9, 0.0),
            (7, 5, 0.0),
            (257, 300, 0.0),
            (1000, 999, 0.0),
            (4, 1000, 0.0),
            (1000, 4, 0.0),
            (300, 200, 50.0),
            (300, 200, 1e6),
        ] {
            let mut draw = |k: usize| -> Vec<f64> {
                let v: Vec<f64> = (0..k)
                    .map(|_| {
                        let u = next();
                        if levels > 0.0 {
                            (u * levels).floor()
                        } else {
                            u
                        }
                    })
                    .collect();
                sorted(&v)
            };
            let (x, y) = (draw(n), draw(m));
            let general = rank_summary_shifted(&x, 0.0, &y);
            assert_eq!(rank_summary(&x, &y), general, "n={n} m={m}");
            if let Some(fast) = rank_summary_untied(&x, &y) {
                assert_eq!(fast, general);
            } else {
                assert!(general.has_ties);
            }
        }
        // A cross tie only, at the last canary value and in a tail row.
        let x = [0.5, 1.5, 2.5, 3.5, 4.5, 6.0];
        let y = [1.0, 2.0, 6.0];
        assert!(rank_summary_untied(&x, &y).is_none());
        assert_eq!(rank_summary(&x, &y), rank_summary_shifted(&x, 0.0, &y));
        // Signed zeros tie.
        assert!(rank_summary_untied(&[-0.0, 1.0], &[0.0]).is_none());
    }

    #[test]
    fn a_shifted_summary_counts_every_pair_and_tie_group() {
        // Brute force over the values fl(x_i − d) and y_j.
        fn brute(x: &[f64], d: f64, y: &[f64]) -> RankSummary {
            let xs: Vec<f64> = x.iter().map(|v| v - d).collect();
            let ties = |v: &[f64]| -> u128 {
                let mut seen: Vec<f64> = Vec::new();
                let mut total = 0;
                for &a in v {
                    if !seen.contains(&a) {
                        seen.push(a);
                        let t = v.iter().filter(|&&b| b == a).count() as u128;
                        total += t * t * t - t;
                    }
                }
                total
            };
            let u_twice = xs
                .iter()
                .flat_map(|&a| {
                    y.iter()
                        .map(move |&b| u128::from(a > b) * 2 + u128::from(a == b))
                })
                .sum();
            let pooled: Vec<f64> = xs.iter().chain(y).copied().collect();
            let (within, all) = (ties(&xs) + ties(y), ties(&pooled));
            RankSummary {
                n: x.len(),
                m: y.len(),
                u_twice,
                pooled_ties: all,
                within_ties: within,
                has_ties: all > 0,
            }
        }
        let x = sorted(&[0.5, 1.0, 1.0, 2.0, 2.0, 2.0, 3.5, 5.0, 5.0, 7.0]);
        let y = sorted(&[1.0, 1.5, 2.0, 2.0, 4.0, 4.0, 6.0]);
        let (n, m) = (x.len(), y.len());
        // Inside, at both extremes (every row below or above the baseline but one), and
        // beyond them.
        for d in [
            0.0,
            0.5,
            -1.0,
            1.5,
            x[0] - y[m - 1],
            x[n - 1] - y[0],
            100.0,
            -100.0,
        ] {
            assert_eq!(rank_summary_shifted(&x, d, &y), brute(&x, d, &y), "d = {d}");
        }
        assert_eq!(rank_summary_shifted(&x, 0.0, &[]), brute(&x, 0.0, &[]));
        assert_eq!(rank_summary_shifted(&[], 0.0, &y), brute(&[], 0.0, &y));
    }

    #[test]
    fn a_grown_summary_is_the_summary_of_the_grown_samples() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        // (old n, old m, new n, new m, levels: 0 continuous, else that many distinct values)
        for (n0, m0, dn, dm, levels) in [
            (1, 1, 0, 0, 0.0),
            (1, 1, 1, 0, 0.0),
            (5, 3, 0, 4, 3.0),
            (40, 60, 7, 5, 0.0),
            (40, 60, 7, 5, 4.0),
            (300, 280, 30, 30, 20.0),
            (300, 280, 30, 30, 1.0),
            (200, 200, 31, 0, 1e4),
        ] {
            let mut draw = |k: usize| -> Vec<f64> {
                (0..k)
                    .map(|_| {
                        let u = next();
                        if levels == 0.0 {
                            u
                        } else if u < 0.1 {
                            // Signed zeros among the ties.
                            [-0.0, 0.0][(u * 20.0) as usize % 2]
                        } else {
                            (u * levels).floor()
                        }
                    })
                    .collect()
            };
            let (x, y) = (draw(n0 + dn), draw(m0 + dm));
            let prev = rank_summary(&sorted(&x[..n0]), &sorted(&y[..m0]));
            let (xs, ys) = (sorted(&x), sorted(&y));
            let grown = rank_summary_grown(&prev, &xs, &ys, &x[n0..], &y[m0..]);
            assert_eq!(
                grown,
                rank_summary(&xs, &ys),
                "{n0}+{dn} × {m0}+{dm}, {levels}"
            );
        }
    }

    #[test]
    fn erfc_is_accurate() {
        // Reference values (mpmath, 30 digits).
        let cases = [
            (0.0, 1.0),
            (0.1, 0.887537083981715),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028513),
            (1.2, 0.08968602177036464),
            (1.3, 0.06599205505934755),
            (2.0, 0.004677734981047266),
            (5.0, 1.537459794428035e-12),
            (10.0, 2.088487583762545e-45),
            (26.0, 5.663192408856143e-296),
            (-1.0, 1.8427007929497148),
        ];
        for (x, e) in cases {
            let v = erfc(x);
            assert!(((v - e) / e).abs() < 2e-15, "erfc({x}) = {v}, want {e}");
        }
        assert_eq!(erfc(30.0), 0.0);
        assert_eq!(erfc(f64::INFINITY), 0.0);
    }

    #[test]
    fn fully_tied_is_p_one() {
        let s = rank_summary(&[3.0; 5], &[3.0; 7]);
        assert_eq!(s.variance(), 0.0);
        assert_eq!(normal_p_value(&s, 1.0), 1.0);
        assert_eq!(normal_p_value(&s, 2.0), 1.0);
    }

    #[test]
    fn exact_quantile_matches_r() {
        // R: qwilcox(0.025, 10, 10) = 24.
        let d = NullDistribution::new(10, 10).unwrap();
        assert_eq!(d.quantile_lower(0.025), 24);
        // R: qwilcox(0.005, 5, 5) = 1 ; qwilcox(0.05, 3, 4) = 1
        assert_eq!(
            NullDistribution::new(5, 5).unwrap().quantile_lower(0.005),
            1
        );
        assert_eq!(NullDistribution::new(3, 4).unwrap().quantile_lower(0.05), 1);
        // qwilcox(0.01, 2, 2) = 0
        assert_eq!(NullDistribution::new(2, 2).unwrap().quantile_lower(0.01), 0);
    }
}
