//! The service's durable state: an embedded SQLite database (rusqlite, bundled) in WAL mode.
//!
//! Two tables hold every kind of run (`analysis` and `rollout`):
//!
//! ```sql
//! runs(id TEXT PRIMARY KEY, kind TEXT, status TEXT, config_json TEXT, request_json TEXT,
//!      state_json TEXT, result_json TEXT, error TEXT, created_at INTEGER, updated_at INTEGER)
//! events(run_id TEXT, seq INTEGER, at INTEGER, kind TEXT, payload_json TEXT,
//!        PRIMARY KEY (run_id, seq))
//! ```
//!
//! An analysis stores each judged interval as the event whose `seq` is the interval index;
//! the primary key makes a second commit of the same interval an error, so no interval is
//! recorded twice. A rollout saves its serialised state in `state_json` and its transitions,
//! step verdicts and manual commands as events; [`Store::commit_state`] writes a state and
//! its new events in one transaction.
//!
//! **Architecture invariant:** every state change is committed here before the service acts
//! on it or reports it. One connection behind a mutex is the single writer; async callers go
//! through `spawn_blocking` (see `service`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended for good.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// One row of `runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    /// `analysis` or `rollout`.
    pub kind: String,
    pub status: RunStatus,
    pub config_json: String,
    pub request_json: String,
    /// Kind-specific resumable state (a rollout's `RolloutState`); `None` for analyses,
    /// whose state is their events.
    pub state_json: Option<String>,
    /// The final report, once there is one.
    pub result_json: Option<String>,
    /// Why the run failed.
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// One row of `events`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub payload_json: String,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: cannot create {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store: run {0} has the unknown status {1:?}")]
    BadStatus(String, String),
    #[error("store: the store's lock was poisoned by a panic")]
    Poisoned,
}

/// The database. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    config_json TEXT NOT NULL,
    request_json TEXT NOT NULL,
    state_json TEXT,
    result_json TEXT,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_kind_status ON runs(kind, status);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
";

const RUN_COLUMNS: &str = "id, kind, status, config_json, request_json, state_json, result_json, error, created_at, updated_at";

impl Store {
    /// Opens (creating) `fledge.db` under `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(dir.join("fledge.db"))?;
        Store::init(conn)
    }

    /// A store in memory, for tests.
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        // WAL: readers do not block the writer; `synchronous = FULL` makes each commit
        // durable before it returns (the service acts only on committed state).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(f(&conn)?)
    }

    /// Inserts a new run.
    pub fn insert_run(&self, run: &Run) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    run.id,
                    run.kind,
                    run.status.as_str(),
                    run.config_json,
                    run.request_json,
                    run.state_json,
                    run.result_json,
                    run.error,
                    run.created_at,
                    run.updated_at
                ],
            )
            .map(|_| ())
        })
    }

    /// Moves a run that has not ended to `status`, with its result or error when given.
    /// Returns whether it moved: false when the run is unknown or has already ended (so a
    /// cancel and a completion racing each other leave exactly one final status).
    pub fn set_status(
        &self,
        id: &str,
        status: RunStatus,
        result_json: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = ?2, result_json = COALESCE(?3, result_json),
                 error = COALESCE(?4, error), updated_at = ?5
                 WHERE id = ?1 AND status IN ('pending', 'running')",
                params![id, status.as_str(), result_json, error, now],
            )
            .map(|n| n > 0)
        })
    }

    /// Stores a result for a run that has none yet (a cancelled run's partial report).
    pub fn set_result_if_missing(
        &self,
        id: &str,
        result_json: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET result_json = ?2, updated_at = ?3 WHERE id = ?1 AND result_json IS NULL",
                params![id, result_json, now],
            )
            .map(|n| n > 0)
        })
    }

    /// Saves a run's kind-specific state (a rollout's).
    pub fn set_state(&self, id: &str, state_json: &str, now: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET state_json = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, state_json, now],
            )
            .map(|n| n > 0)
        })
    }

    /// Appends an event. A second event with the same `seq` is an error (the primary key),
    /// so a step is never recorded twice.
    pub fn append_event(&self, run_id: &str, event: &Event) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO events (run_id, seq, at, kind, payload_json) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, event.seq, event.at, event.kind, event.payload_json],
            )?;
            tx.execute(
                "UPDATE runs SET updated_at = ?2 WHERE id = ?1",
                params![run_id, event.at],
            )?;
            tx.commit()
        })
    }

    /// Saves a run's state and the events it brings, in one transaction, unless the run has
    /// ended (then nothing is written and `Ok(None)` is returned, so a cancelled run can never
    /// commit, and so never act, again). `new_events` is given how many events of each of
    /// `kinds` the run already has and returns the events to append; they get the next
    /// `seq`s. Returns the events appended.
    pub fn commit_state(
        &self,
        id: &str,
        state_json: &str,
        now: i64,
        kinds: &[&str],
        new_events: impl FnOnce(&[usize]) -> Vec<(String, String)>,
    ) -> Result<Option<Vec<Event>>, StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let live = tx.execute(
                "UPDATE runs SET state_json = ?2, updated_at = ?3
                 WHERE id = ?1 AND status IN ('pending', 'running')",
                params![id, state_json, now],
            )?;
            if live == 0 {
                return Ok(None);
            }
            let mut counts = Vec::with_capacity(kinds.len());
            for kind in kinds {
                let n: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM events WHERE run_id = ?1 AND kind = ?2",
                    params![id, kind],
                    |r| r.get(0),
                )?;
                counts.push(usize::try_from(n).unwrap_or(0));
            }
            let mut appended = Vec::new();
            for (seq, (kind, payload_json)) in (next_seq(&tx, id)?..).zip(new_events(&counts)) {
                tx.execute(
                    "INSERT INTO events (run_id, seq, at, kind, payload_json) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, seq, now, kind, payload_json],
                )?;
                appended.push(Event {
                    seq,
                    at: now,
                    kind,
                    payload_json,
                });
            }
            tx.commit()?;
            Ok(Some(appended))
        })
    }

    /// Appends an event of `kind` with the next `seq`, if `check` accepts the run as it is
    /// in the same transaction: `check` returns the payload, or a refusal that is handed back
    /// (`Ok(Err(_))`) with nothing written. `Ok(Ok(None))` when the run is unknown.
    pub fn append_checked<E>(
        &self,
        id: &str,
        kind: &str,
        now: i64,
        check: impl FnOnce(&Run) -> Result<String, E>,
    ) -> Result<Result<Option<i64>, E>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.unchecked_transaction()?;
        let raw = tx
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
            .query_row(params![id], raw_run)
            .optional()?;
        let Some(run) = raw.map(finish_run).transpose()? else {
            return Ok(Ok(None));
        };
        let payload = match check(&run) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let seq = next_seq(&tx, id)?;
        tx.execute(
            "INSERT INTO events (run_id, seq, at, kind, payload_json) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, seq, now, kind, payload],
        )?;
        tx.commit()?;
        Ok(Ok(Some(seq)))
    }

    /// How many runs of `kind` have each status.
    pub fn count_by_status(&self, kind: &str) -> Result<Vec<(RunStatus, u64)>, StoreError> {
        let raw = self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT status, COUNT(*) FROM runs WHERE kind = ?1 GROUP BY status",
            )?;
            stmt.query_map(params![kind], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(raw
            .into_iter()
            .filter_map(|(s, n)| Some((RunStatus::parse(&s)?, u64::try_from(n).unwrap_or(0))))
            .collect())
    }

    /// A run's events, by `seq`.
    pub fn events(&self, run_id: &str) -> Result<Vec<Event>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, at, kind, payload_json FROM events WHERE run_id = ?1 ORDER BY seq",
            )?;
            stmt.query_map(params![run_id], |r| {
                Ok(Event {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    kind: r.get(2)?,
                    payload_json: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    /// One run.
    pub fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let raw = self.with(|c| {
            c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                .query_row(params![id], raw_run)
                .optional()
        })?;
        raw.map(finish_run).transpose()
    }

    /// The runs of `kind`, newest first; only those with one of `statuses` when it is not
    /// empty.
    pub fn runs(&self, kind: &str, statuses: &[RunStatus]) -> Result<Vec<Run>, StoreError> {
        let raw = self.with(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE kind = ?1 ORDER BY created_at DESC, id"
            ))?;
            stmt.query_map(params![kind], raw_run)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            let run = finish_run(r)?;
            if statuses.is_empty() || statuses.contains(&run.status) {
                out.push(run);
            }
        }
        Ok(out)
    }
}

fn next_seq(c: &Connection, id: &str) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE run_id = ?1",
        params![id],
        |r| r.get(0),
    )
}

type RawRun = (Run, String);

fn raw_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
    let status: String = r.get(2)?;
    Ok((
        Run {
            id: r.get(0)?,
            kind: r.get(1)?,
            status: RunStatus::Pending,
            config_json: r.get(3)?,
            request_json: r.get(4)?,
            state_json: r.get(5)?,
            result_json: r.get(6)?,
            error: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
        },
        status,
    ))
}

fn finish_run((mut run, status): RawRun) -> Result<Run, StoreError> {
    run.status =
        RunStatus::parse(&status).ok_or_else(|| StoreError::BadStatus(run.id.clone(), status))?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, created_at: i64) -> Run {
        Run {
            id: id.into(),
            kind: "analysis".into(),
            status: RunStatus::Pending,
            config_json: "{}".into(),
            request_json: "{}".into(),
            state_json: None,
            result_json: None,
            error: None,
            created_at,
            updated_at: created_at,
        }
    }

    #[test]
    fn runs_and_events_round_trip_and_a_step_is_never_recorded_twice() {
        let store = Store::in_memory().unwrap();
        store.insert_run(&run("a", 1)).unwrap();
        store.insert_run(&run("b", 2)).unwrap();
        let ev = |seq| Event {
            seq,
            at: 10 + seq,
            kind: "interval".into(),
            payload_json: format!("{{\"index\":{seq}}}"),
        };
        store.append_event("a", &ev(0)).unwrap();
        store.append_event("a", &ev(1)).unwrap();
        assert!(store.append_event("a", &ev(1)).is_err());
        assert_eq!(store.events("a").unwrap(), vec![ev(0), ev(1)]);
        assert!(
            store
                .set_status("a", RunStatus::Running, None, None, 20)
                .unwrap()
        );
        assert!(
            !store
                .set_status("zz", RunStatus::Running, None, None, 20)
                .unwrap()
        );
        assert!(
            store
                .set_status("b", RunStatus::Cancelled, None, None, 21)
                .unwrap()
        );
        // An ended run stays ended.
        assert!(
            !store
                .set_status("b", RunStatus::Completed, Some("{}"), None, 22)
                .unwrap()
        );
        assert_eq!(
            store.run("b").unwrap().unwrap().status,
            RunStatus::Cancelled
        );
        let ids: Vec<String> = store
            .runs("analysis", &[])
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["b", "a"]);
        let running = store.runs("analysis", &[RunStatus::Running]).unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].updated_at, 20);
        assert!(store.run("nope").unwrap().is_none());
    }

    #[test]
    fn a_state_and_its_events_commit_together_and_not_after_the_run_ended() {
        let store = Store::in_memory().unwrap();
        store.insert_run(&run("r", 1)).unwrap();
        let got = store
            .commit_state("r", "{\"n\":1}", 5, &["transition"], |counts| {
                assert_eq!(counts, [0]);
                vec![
                    ("transition".into(), "0".into()),
                    ("transition".into(), "1".into()),
                ]
            })
            .unwrap()
            .unwrap();
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1]);
        let seq = store
            .append_checked("r", "command", 6, |_| Ok::<_, ()>("promote".into()))
            .unwrap()
            .unwrap();
        assert_eq!(seq, Some(2));
        assert!(matches!(
            store.append_checked("r", "command", 6, |_| Err::<String, _>("no")),
            Ok(Err("no"))
        ));
        let got = store
            .commit_state("r", "{\"n\":2}", 7, &["transition", "command"], |counts| {
                assert_eq!(counts, [2, 1]);
                vec![("transition".into(), "2".into())]
            })
            .unwrap()
            .unwrap();
        assert_eq!(got[0].seq, 3);
        assert!(
            store
                .set_status("r", RunStatus::Cancelled, None, None, 8)
                .unwrap()
        );
        assert!(
            store
                .commit_state("r", "{\"n\":3}", 9, &[], |_| vec![(
                    "transition".into(),
                    "3".into()
                )])
                .unwrap()
                .is_none()
        );
        let r = store.run("r").unwrap().unwrap();
        assert_eq!(r.state_json.as_deref(), Some("{\"n\":2}"));
        assert_eq!(store.events("r").unwrap().len(), 4);
        assert_eq!(
            store.count_by_status("analysis").unwrap(),
            vec![(RunStatus::Cancelled, 1)]
        );
    }

    #[test]
    fn state_survives_reopening_the_database() {
        let dir = std::env::temp_dir().join(format!("fledge-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).unwrap();
            store.insert_run(&run("a", 1)).unwrap();
            store.set_state("a", "{\"step\":2}", 5).unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert_eq!(
            store.run("a").unwrap().unwrap().state_json.as_deref(),
            Some("{\"step\":2}")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
