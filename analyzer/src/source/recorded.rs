//! `source: {type: recording, path: …}`: a recorded CSV served as a metric source with
//! history. A fetch returns the recording's points inside the requested windows, so a
//! retrospective analysis over a recording judges exactly what `fledge replay` judges.

use std::sync::Arc;

use fledge_judges::Side;

use super::{BoxFuture, FetchRange, LiveData, MetricSource, SourceError};
use crate::config::Config;
use crate::engine::{Millis, WindowData};
use crate::recording::{MetricSeries, Recording, Series, read_recording};

/// A recording loaded once and shared by every fetch.
pub struct RecordingSource {
    path: String,
    step: Millis,
    data: Arc<Recording>,
}

impl RecordingSource {
    /// Reads the recording the config's `source.path` names.
    pub fn open(config: &Config) -> Result<RecordingSource, SourceError> {
        let source = config.source.as_ref().ok_or(SourceError::NoSource)?;
        let path = source
            .path
            .as_ref()
            .ok_or_else(|| SourceError::Unavailable {
                source_name: "recording".to_owned(),
                message: "source.path is not set".to_owned(),
            })?;
        let data = read_recording(path).map_err(|e| SourceError::Unavailable {
            source_name: format!("recording {}", path.display()),
            message: e.to_string(),
        })?;
        Ok(RecordingSource::new(
            path.display().to_string(),
            source.step().as_millis() as Millis,
            Arc::new(data),
        ))
    }

    /// A source over an already loaded recording (shared, e.g. by many analyses).
    pub fn new(path: String, step: Millis, data: Arc<Recording>) -> RecordingSource {
        RecordingSource { path, step, data }
    }
}

fn cut(s: &Series, (start, end): (Millis, Millis)) -> Series {
    let w = crate::replay::series_window(s, start, end);
    Series {
        t: w.t.to_vec(),
        v: w.v.to_vec(),
    }
}

impl MetricSource for RecordingSource {
    fn describe(&self) -> String {
        format!("recording {}", self.path)
    }

    fn has_history(&self) -> bool {
        true
    }

    fn step(&self) -> Millis {
        self.step
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async { Ok(()) })
    }

    fn fetch(&self, range: FetchRange) -> BoxFuture<'_, LiveData> {
        Box::pin(async move {
            let mut recording = Recording::default();
            for (name, m) in &self.data.metrics {
                recording.metrics.insert(
                    name.clone(),
                    MetricSeries {
                        baseline: cut(&m.baseline, range.side(Side::Baseline)),
                        canary: cut(&m.canary, range.side(Side::Canary)),
                    },
                );
            }
            LiveData {
                recording,
                ..LiveData::default()
            }
        })
    }
}

impl RecordingSource {
    /// The whole recording, for drivers that judge it in place.
    pub fn data(&self) -> &dyn WindowData {
        &*self.data
    }
}
