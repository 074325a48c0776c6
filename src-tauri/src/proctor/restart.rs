//! Whether the previous run of the app ended cleanly, for `app_restarted`.
//!
//! A small file in the data folder says how the last run stands: written as `running` when the
//! app starts, rewritten as `ended` when it exits normally (after the answers were flushed). A
//! run that was killed, crashed or lost its power leaves `running` behind, which the next start
//! reads. Each write goes to a temporary file that is synced and renamed over the old one, so a
//! crash mid-write leaves one state or the other, never a torn file.

use invigil_protocol::Timestamp;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The marker's file name in the data folder.
pub const MARKER_FILE: &str = "last-run.json";

/// How the previous run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "ended")]
pub enum PreviousRun {
    /// No run left a trace in this data folder.
    Unknown,
    /// It exited normally.
    Cleanly {
        /// When, by the device's clock.
        at: Timestamp,
    },
    /// It stopped without exiting (killed, crashed, power lost) or its marker is unreadable.
    Abruptly {
        /// When it had started, if known.
        started_at: Option<Timestamp>,
    },
}

impl PreviousRun {
    /// Whether it ended cleanly; `None` when there is no previous run to speak of.
    pub fn ended_cleanly(&self) -> Option<bool> {
        match self {
            PreviousRun::Unknown => None,
            PreviousRun::Cleanly { .. } => Some(true),
            PreviousRun::Abruptly { .. } => Some(false),
        }
    }

    /// The `detail` of the `app_restarted` signal.
    pub fn detail(&self) -> String {
        match self {
            PreviousRun::Unknown => {
                "the app was started again; this computer has no record of how the previous run ended".into()
            }
            PreviousRun::Cleanly { at } => {
                format!("the app was started again; the previous run ended normally at {at}")
            }
            PreviousRun::Abruptly { started_at: Some(at) } => format!(
                "the app was started again; the previous run (started {at}) did not end normally: it was killed, crashed or the computer stopped"
            ),
            PreviousRun::Abruptly { started_at: None } => {
                "the app was started again; the previous run did not end normally: it was killed, crashed or the computer stopped".into()
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
enum Marker {
    Running { started_at: Timestamp, pid: u32 },
    Ended { at: Timestamp },
}

/// This run's marker (see the module's text).
#[derive(Debug)]
pub struct RunMarker {
    path: PathBuf,
}

impl RunMarker {
    /// Reads how the previous run ended and marks this one as running.
    pub fn begin(data_dir: &Path) -> io::Result<(RunMarker, PreviousRun)> {
        fs::create_dir_all(data_dir)?;
        let path = data_dir.join(MARKER_FILE);
        let previous = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Marker>(&bytes) {
                Ok(Marker::Ended { at }) => PreviousRun::Cleanly { at },
                Ok(Marker::Running { started_at, .. }) => PreviousRun::Abruptly {
                    started_at: Some(started_at),
                },
                Err(_) => PreviousRun::Abruptly { started_at: None },
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => PreviousRun::Unknown,
            Err(e) => return Err(e),
        };
        let marker = RunMarker { path };
        marker.write(&Marker::Running {
            started_at: Timestamp::now(),
            pid: std::process::id(),
        })?;
        Ok((marker, previous))
    }

    /// Marks this run as ended normally.
    pub fn end(&self) -> io::Result<()> {
        self.write(&Marker::Ended {
            at: Timestamp::now(),
        })
    }

    fn write(&self, marker: &Marker) -> io::Result<()> {
        let temporary = self.path.with_extension("json.tmp");
        {
            let mut file = File::create(&temporary)?;
            file.write_all(&serde_json::to_vec(marker).map_err(io::Error::other)?)?;
            file.sync_all()?;
        }
        fs::rename(&temporary, &self.path)?;
        if let Some(folder) = self.path.parent() {
            // The rename itself is durable only once the folder is synced (not possible on
            // every platform: a failure there is not an error).
            let _ = File::open(folder).and_then(|f| f.sync_all());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_run_has_no_previous_run() {
        let dir = tempfile::tempdir().unwrap();
        let (_marker, previous) = RunMarker::begin(dir.path()).unwrap();
        assert_eq!(previous, PreviousRun::Unknown);
        assert_eq!(previous.ended_cleanly(), None);
    }

    #[test]
    fn a_run_that_ended_normally_is_seen_as_clean_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (marker, _) = RunMarker::begin(dir.path()).unwrap();
        marker.end().unwrap();
        let (_next, previous) = RunMarker::begin(dir.path()).unwrap();
        assert_eq!(previous.ended_cleanly(), Some(true));
        assert!(
            previous.detail().contains("ended normally"),
            "{}",
            previous.detail()
        );
    }

    #[test]
    fn a_run_that_never_ended_is_seen_as_abrupt_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (marker, _) = RunMarker::begin(dir.path()).unwrap();
        drop(marker); // killed: nothing ran at exit
        let (next, previous) = RunMarker::begin(dir.path()).unwrap();
        assert!(matches!(
            previous,
            PreviousRun::Abruptly {
                started_at: Some(_)
            }
        ));
        assert!(previous.detail().contains("did not end normally"));
        // And this run, ending normally, leaves a clean marker again.
        next.end().unwrap();
        assert_eq!(
            RunMarker::begin(dir.path()).unwrap().1.ended_cleanly(),
            Some(true)
        );
    }

    #[test]
    fn a_torn_or_foreign_marker_counts_as_an_abrupt_end() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MARKER_FILE), b"{\"state\":").unwrap();
        let (_marker, previous) = RunMarker::begin(dir.path()).unwrap();
        assert_eq!(previous, PreviousRun::Abruptly { started_at: None });
    }

    #[test]
    fn every_detail_fits_the_contract_limit() {
        let at = Timestamp::now();
        for run in [
            PreviousRun::Unknown,
            PreviousRun::Cleanly { at },
            PreviousRun::Abruptly {
                started_at: Some(at),
            },
            PreviousRun::Abruptly { started_at: None },
        ] {
            assert!(run.detail().chars().count() <= invigil_protocol::MAX_INTEGRITY_DETAIL_CHARS);
        }
    }
}
