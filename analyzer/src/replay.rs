//! Offline replay: drives the [`Engine`](crate::engine::Engine) over a recording, as fast as
//! the machine allows. The engine is the same one a live run uses; only where the windows
//! come from differs.

use std::collections::HashMap;
use std::sync::Arc;

use fledge_judges::Side;

use crate::engine::{
    AnalysisReport, AnalysisSpec, Engine, IntervalReport, MetricTest, Millis, Progress, WindowData,
    WindowRef, format_time,
};
use crate::recording::{Recording, Series};

impl WindowData for Recording {
    fn window(&self, metric: &str, side: Side, start: Millis, end: Millis) -> WindowRef<'_> {
        match self.metrics.get(metric) {
            Some(m) => series_window(
                match side {
                    Side::Baseline => &m.baseline,
                    Side::Canary => &m.canary,
                },
                start,
                end,
            ),
            None => WindowRef::default(),
        }
    }
}

/// A recording with the value order of some of its series computed once, so that the
/// window of every interval gets its sorted order by a filter in O(series length) instead of
/// a sort ([`WindowData::window_order`]). The windows themselves are the recording's.
pub struct SortedRecording<'a> {
    rec: &'a Recording,
    /// Per metric, `[baseline, canary]`: the series' indices in ascending value order (ties
    /// by index).
    orders: HashMap<&'a str, [Vec<u32>; 2]>,
}

impl<'a> SortedRecording<'a> {
    /// Sorts the series of the named metrics that the recording has (each once; names
    /// repeated or absent are fine).
    pub fn new<'n>(rec: &'a Recording, names: impl IntoIterator<Item = &'n str>) -> Self {
        let mut orders = HashMap::new();
        for name in names {
            if let Some((key, m)) = rec.metrics.get_key_value(name) {
                orders
                    .entry(key.as_str())
                    .or_insert_with(|| [value_order(&m.baseline.v), value_order(&m.canary.v)]);
            }
        }
        SortedRecording { rec, orders }
    }
}

/// Indices of `v` in ascending [`f64::total_cmp`] order, ties by index.
fn value_order(v: &[f64]) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..v.len() as u32).collect();
    idx.sort_unstable_by(|&a, &b| v[a as usize].total_cmp(&v[b as usize]).then(a.cmp(&b)));
    idx
}

impl WindowData for SortedRecording<'_> {
    fn window(&self, metric: &str, side: Side, start: Millis, end: Millis) -> WindowRef<'_> {
        self.rec.window(metric, side, start, end)
    }

    fn window_order(
        &self,
        metric: &str,
        side: Side,
        start: Millis,
        end: Millis,
    ) -> Option<Vec<u32>> {
        let series = self.rec.metrics.get(metric)?;
        let [ob, oc] = self.orders.get(metric)?;
        let (s, order) = match side {
            Side::Baseline => (&series.baseline, ob),
            Side::Canary => (&series.canary, oc),
        };
        if order.len() != s.t.len() {
            return None;
        }
        let lo = s.t.partition_point(|&t| t < start);
        let hi = lo + s.t[lo..].partition_point(|&t| t < end);
        // The series' order restricted to [lo, hi), shifted to window indices; written
        // without a data-dependent branch per index.
        let mut out = vec![0u32; hi - lo + 1];
        let mut len = 0;
        let (lo, width) = (lo as u32, (hi - lo) as u32);
        for &i in order {
            let w = i.wrapping_sub(lo);
            out[len] = w;
            len += usize::from(w < width);
        }
        out.truncate(len);
        Some(out)
    }

    fn problem(&self, metric: &str) -> Option<String> {
        self.rec.problem(metric)
    }
}

/// The points of a time-sorted series with `start <= t < end`, without copying.
pub fn series_window(s: &Series, start: Millis, end: Millis) -> WindowRef<'_> {
    let lo = s.t.partition_point(|&t| t < start);
    let hi = lo + s.t[lo..].partition_point(|&t| t < end);
    WindowRef {
        t: &s.t[lo..hi],
        v: &s.v[lo..hi],
    }
}

/// The time span a recording covers for the metrics of `spec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Earliest canary timestamp (the analysis start unless one is given).
    pub first: Millis,
    /// Latest timestamp of any point.
    pub last: Millis,
    /// Typical spacing of points (the median gap), used to tell whether the last interval
    /// is fully covered.
    pub step: Millis,
}

/// Finds the span of the recording's data for the metrics `spec` names. `None` when the
/// recording has no point for any of them.
pub fn coverage(spec: &AnalysisSpec, rec: &Recording) -> Option<Coverage> {
    let mut first_canary: Option<Millis> = None;
    let mut first_any: Option<Millis> = None;
    let mut last: Option<Millis> = None;
    let mut gaps: Vec<Millis> = Vec::new();
    // The series the metrics read: a proportion reads its numerator and denominator.
    for name in spec.metrics.iter().flat_map(|m| m.series()) {
        let Some(series) = rec.metrics.get(name) else {
            continue;
        };
        for (side, s) in [
            (Side::Baseline, &series.baseline),
            (Side::Canary, &series.canary),
        ] {
            let (Some(&a), Some(&b)) = (s.t.first(), s.t.last()) else {
                continue;
            };
            if side == Side::Canary {
                first_canary = Some(first_canary.map_or(a, |f| f.min(a)));
            }
            first_any = Some(first_any.map_or(a, |f| f.min(a)));
            last = Some(last.map_or(b, |l| l.max(b)));
            gaps.extend(
                s.t.windows(2)
                    .take(64)
                    .map(|w| w[1] - w[0])
                    .filter(|&g| g > 0),
            );
        }
    }
    let first = first_canary.or(first_any)?;
    gaps.sort_unstable();
    let step = gaps.get(gaps.len() / 2).copied().unwrap_or(0);
    Some(Coverage {
        first,
        last: last?,
        step,
    })
}

/// Most intervals [`replay`] judges in one batch ([`Engine::judge_ahead`]): past a decision,
/// at most this many are judged for nothing.
const MAX_BATCH: usize = 32;

/// Replays `rec` through the engine. `start` overrides the analysis start (default: the
/// earliest canary point). `on_interval` sees each interval as soon as it is judged.
pub fn replay(
    spec: Arc<AnalysisSpec>,
    rec: &Recording,
    start: Option<Millis>,
    mut on_interval: impl FnMut(&IntervalReport),
) -> AnalysisReport {
    // A live source's metric with several series was recorded as sub-metrics `name{…}`.
    let spec = Arc::new(crate::source::expand_spec(&spec, rec.metric_names()));
    let coverage = coverage(&spec, rec);
    let Some(start) = start.or(coverage.map(|c| c.first)) else {
        let engine = Engine::new(spec, 0);
        return engine.finish(Some(
            "the recording has no data for any metric of the config".to_string(),
        ));
    };
    // Data is available up to one step past the last point.
    let available_until = coverage.map_or(start, |c| c.last + c.step.max(1));
    let names: Vec<&str> = spec
        .metrics
        .iter()
        .filter(|m| m.test == MetricTest::MannWhitney)
        .map(|m| m.name.as_str())
        .collect();
    let data = SortedRecording::new(rec, names.iter().copied());
    let mut engine = Engine::new(spec.clone(), start);
    let mut why_unfinished = None;
    let mut batch = 1;
    while let Some(next) = engine.next().copied() {
        if next.end > available_until {
            // Sequential metrics may have decided within the data there is.
            if let Progress::Decided(_) = engine.watch(&data, available_until) {
                if let Some(last) = engine.judged().last() {
                    on_interval(last);
                }
                break;
            }
            why_unfinished = Some(format!(
                "the recording ends at {}, before interval {} ends at {}",
                format_time(coverage.map_or(start, |c| c.last)),
                next.index,
                format_time(next.end)
            ));
            break;
        }
        // The intervals ahead whose data is all there are judged together (split across the
        // cores by metric); the batch doubles, so an early abort wastes little.
        let ready = engine.plan()[engine.judged().len()..]
            .iter()
            .take_while(|p| p.end <= available_until)
            .count();
        let seen = engine.judged().len();
        let progress = engine.judge_ahead(&data, ready.min(batch));
        batch = (batch * 2).min(MAX_BATCH);
        for report in &engine.judged()[seen..] {
            on_interval(report);
        }
        if let Progress::Decided(_) = progress {
            break;
        }
    }
    engine.finish(why_unfinished)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::IntervalPlan;
    use crate::recording::parse_recording;
    use fledge_judges::Verdict;

    /// The engine seeds each interval's selections with the previous interval's estimates
    /// ([`crate::engine::judge_interval_after`]); the reports must be those of intervals
    /// judged cold, one by one, bit for bit, under `assume` and `auto` alike.
    #[test]
    fn warm_started_intervals_equal_intervals_judged_cold() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rec = crate::recording::read_recording(&root.join("testdata/recordings/healthy.csv"))
            .unwrap();
        for independence in ["assume", "auto"] {
            let yaml = format!(
                "name: warm\nthresholds: {{pass: 90, marginal: 70}}\ngroups: {{latency: 60, errors: 40}}\n\
                 analysis: {{lifetime: 60m, interval: 5m, lookback: 0m}}\nmetrics:\n\
                 \x20 - {{name: latency_p99, group: latency, direction: increase, independence: {independence}}}\n\
                 \x20 - {{name: error_rate, group: errors, direction: increase, independence: {independence}}}\n"
            );
            let cfg = crate::config::from_yaml_str(&yaml, "warm.yaml").unwrap();
            let spec = Arc::new(cfg.to_spec().unwrap());
            let report = replay(Arc::clone(&spec), &rec, None, |_| {});
            assert!(report.intervals.len() >= 6, "{independence}: {report:?}");
            let data = SortedRecording::new(&rec, ["latency_p99", "error_rate"]);
            for warm in &report.intervals {
                let plan = IntervalPlan {
                    index: warm.index,
                    start: warm.start,
                    end: warm.end,
                    baseline_start: warm.baseline_start,
                    baseline_end: warm.baseline_end,
                };
                let cold = crate::engine::judge_interval(&spec, &plan, &data);
                assert_eq!(
                    serde_json::to_string(&cold).unwrap(),
                    serde_json::to_string(warm).unwrap(),
                    "{independence}, interval {}",
                    warm.index
                );
            }
            let judged: Vec<_> = report
                .intervals
                .iter()
                .flat_map(|i| &i.metrics)
                .filter(|m| m.result.ci.is_some())
                .collect();
            assert!(judged.len() >= 10, "{independence}: the selections ran");
        }
    }

    /// [`replay`] judges the intervals ahead in batches ([`Engine::judge_ahead`]), split
    /// across threads by metric; it must give the reports of judging them one by one
    /// ([`Engine::judge_next`]), stopping at the same interval when one aborts (the batch's
    /// later intervals are dropped) and with sequential metrics' early stops alike.
    #[test]
    fn batched_replays_equal_intervals_judged_one_by_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut verdicts = Vec::new();
        for config in ["checkout-replay.yaml", "checkout-sequential.yaml"] {
            let cfg = crate::config::load(&root.join("configs").join(config)).unwrap();
            let spec = Arc::new(cfg.to_spec().unwrap());
            for recording in [
                "healthy",
                "latency-p99-up20",
                "slow-start",
                "errors-x3-sparse",
            ] {
                let path = root.join(format!("testdata/recordings/{recording}.csv"));
                let rec = crate::recording::read_recording(&path).unwrap();
                let mut seen = 0;
                let batched = replay(Arc::clone(&spec), &rec, None, |_| seen += 1);
                assert_eq!(seen, batched.intervals.len(), "{config} {recording}");
                let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
                let data = SortedRecording::new(&rec, names.iter().copied());
                let start = batched.intervals.first().map(|i| i.start).unwrap();
                let mut engine = Engine::new(Arc::clone(&spec), start);
                let mut one_by_one = Vec::new();
                while engine
                    .next()
                    .is_some_and(|p| p.index <= batched.intervals.len())
                {
                    engine.judge_next(&data);
                    one_by_one.push(engine.judged().last().unwrap().clone());
                }
                assert!(engine.next().is_none() || batched.verdict != Verdict::Abort);
                assert_eq!(
                    serde_json::to_string(&one_by_one).unwrap(),
                    serde_json::to_string(&batched.intervals).unwrap(),
                    "{config} {recording}"
                );
                verdicts.push(batched.verdict);
            }
        }
        // Both an abort (its batch cut short) and a run to the end are among them.
        assert!(verdicts.contains(&Verdict::Abort), "{verdicts:?}");
        assert!(
            verdicts.iter().any(|v| *v != Verdict::Abort),
            "{verdicts:?}"
        );
    }

    #[test]
    fn window_orders_sort_every_window_like_a_fresh_sort() {
        // Values with ties, −0.0 and +0.0, at a 10 s step; a few gaps in time.
        let mut csv = String::from("timestamp,metric,cohort,value\n");
        let mut s = 12345u64;
        for i in 0..400i64 {
            if i % 37 == 5 {
                continue;
            }
            for cohort in ["baseline", "canary"] {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let v = match (s >> 33) % 7 {
                    0 => "-0.0".to_string(),
                    1 => "0.0".to_string(),
                    r => format!("{}", (r as f64) * 1.5 - ((s >> 40) % 3) as f64),
                };
                csv.push_str(&format!("{},lat,{cohort},{v}\n", 1_767_225_600 + 10 * i));
            }
        }
        let rec = parse_recording(csv.as_bytes(), "test").unwrap();
        let data = SortedRecording::new(&rec, ["lat", "lat", "absent"]);
        let start = 1_767_225_600_000;
        for (a, b) in [
            (0, 4_000),
            (0, 100),
            (370, 2_080),
            (1_000, 1_010),
            (3_990, 9_999),
        ] {
            let (from, to) = (start + a * 1_000, start + b * 1_000);
            for side in [Side::Baseline, Side::Canary] {
                let w = data.window("lat", side, from, to);
                let order = data.window_order("lat", side, from, to).unwrap();
                let mut want: Vec<u32> = (0..w.v.len() as u32).collect();
                want.sort_by(|&i, &j| w.v[i as usize].total_cmp(&w.v[j as usize]));
                assert_eq!(order, want, "{a}..{b} {side:?}");
            }
        }
        assert!(
            data.window_order("absent", Side::Canary, start, start + 1)
                .is_none()
        );
    }
}
