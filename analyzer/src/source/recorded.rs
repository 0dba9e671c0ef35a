//! `source: {type: recording, path: …}`: a recorded CSV served as a metric source with
//! history. A fetch returns the recording's points inside the requested windows, so a
//! retrospective analysis over a recording judges exactly what `fledge replay` judges.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

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
        let data = shared_recording(path).map_err(|e| SourceError::Unavailable {
            source_name: format!("recording {}", path.display()),
            message: e,
        })?;
        Ok(RecordingSource::new(
            path.display().to_string(),
            source.step().as_millis() as Millis,
            data,
        ))
    }

    /// A source over an already loaded recording (shared, e.g. by many analyses).
    pub fn new(path: String, step: Millis, data: Arc<Recording>) -> RecordingSource {
        RecordingSource { path, step, data }
    }
}

/// The file a recording was read from, as it was: a changed file is read again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// Recordings in use, by file: many analyses over one recording (a service running the same
/// config many times) share one copy, so memory follows the distinct recordings, not the
/// analyses. Entries are weak: a recording no analysis holds is freed.
static LOADED: Mutex<Vec<(FileKey, Weak<Recording>)>> = Mutex::new(Vec::new());

/// The recording at `path`, shared with the analyses that already hold it.
fn shared_recording(path: &Path) -> Result<Arc<Recording>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let key = FileKey {
        path: path.canonicalize().unwrap_or_else(|_| path.to_owned()),
        len: meta.len(),
        modified: meta.modified().ok(),
    };
    let lookup = |loaded: &mut Vec<(FileKey, Weak<Recording>)>| {
        loaded.retain(|(_, w)| w.strong_count() > 0);
        loaded
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
    };
    if let Some(data) = lookup(&mut LOADED.lock().unwrap_or_else(|p| p.into_inner())) {
        return Ok(data);
    }
    // Read without the lock (a large file takes a while); a concurrent reader of the same
    // file may read it too, and the first one stored is kept.
    let data = Arc::new(read_recording(path).map_err(|e| e.to_string())?);
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = lookup(&mut loaded) {
        return Ok(existing);
    }
    loaded.push((key, Arc::downgrade(&data)));
    Ok(data)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyses_of_one_file_share_its_recording_until_it_changes() {
        let dir = std::env::temp_dir().join(format!("fledge-shared-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.csv");
        std::fs::write(
            &path,
            "timestamp,metric,cohort,value\n0,m,baseline,1\n0,m,canary,2\n",
        )
        .unwrap();
        let a = shared_recording(&path).unwrap();
        let b = shared_recording(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one copy for both");
        // A changed file (another length) is read again; holders of the old copy keep it.
        std::fs::write(
            &path,
            "timestamp,metric,cohort,value\n0,m,baseline,1\n0,m,canary,2\n10,m,canary,3\n",
        )
        .unwrap();
        let c = shared_recording(&path).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.metrics["m"].canary.v, [2.0, 3.0]);
        assert_eq!(a.metrics["m"].canary.v, [2.0]);
        // Once nobody holds a copy it is freed, not kept by the cache.
        let weak = Arc::downgrade(&c);
        drop(c);
        assert!(weak.upgrade().is_none());
        // A missing file is an error, not a stale copy.
        std::fs::remove_file(&path).unwrap();
        assert!(shared_recording(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
