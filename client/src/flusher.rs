//! The flusher: turns typing into durable outbox records within [`FLUSH_DELAY`] of the first
//! unsaved keystroke, sends them, and keeps trying what the disk refused. Also the deadline task,
//! which re-evaluates exam states when an `ends_at` passes.

use crate::delivery::send_record;
use crate::error::{Error, Result};
use crate::outbox::{self, Key, Record};
use crate::show::{answer_event, evaluation_views};
use crate::state::{FLUSH_DELAY, Shared, blocking, server_now_ms};
use crate::view::Event;
use invigil_protocol::Phase;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a failed disk write waits before it is tried again.
pub(crate) const STORAGE_RETRY: Duration = Duration::from_secs(1);

impl Shared {
    /// One pass of the flusher: writes due typing (all of it with `all`), acknowledgements, and
    /// records the disk refused before, then sends what is new. Returns when the next typing
    /// (or the next try of a refused write) falls due.
    pub(crate) async fn write_pass(&self, all: bool) -> Option<Instant> {
        let _writer = self.write_lock.lock().await;
        let now = Instant::now();
        let (dir, staged, write_back) = {
            let mut state = self.lock();
            let state = &mut *state;
            let Some(outbox) = state.outbox.as_ref() else {
                state.drafts.clear();
                state.write_back.clear();
                return None;
            };
            let due: Vec<Key> = state
                .drafts
                .iter()
                .filter(|(_, d)| all || d.since + FLUSH_DELAY <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let staged: Vec<Record> = due
                .iter()
                .filter_map(|k| {
                    let draft = state.drafts.remove(k)?;
                    // Unchanged typing (the same text again) needs no new revision.
                    let same = outbox
                        .get(k)
                        .is_some_and(|r| r.content == draft.content && !outbox.collides(k));
                    (!same).then(|| outbox.stage(k, draft.content))
                })
                .collect();
            let mut keys = std::mem::take(&mut state.write_back);
            if all || state.retry_at.is_some_and(|at| at <= now) {
                keys.extend(state.unwritten.iter().cloned());
            }
            let write_back: Vec<Record> = keys
                .into_iter()
                .filter(|k| !due.contains(k))
                .filter_map(|k| outbox.get(&k).cloned())
                .collect();
            for key in &due {
                if !staged.iter().any(|r| &r.key() == key) {
                    let event = answer_event(state, key);
                    self.emit(Event::Answer(event));
                }
            }
            (outbox.dir().to_owned(), staged, write_back)
        };
        if !staged.is_empty() || !write_back.is_empty() {
            let results = blocking(move || {
                let write = |records: Vec<Record>| -> Vec<(Record, Result<()>)> {
                    records
                        .into_iter()
                        .map(|r| {
                            let result = outbox::persist(&dir, &r);
                            (r, result)
                        })
                        .collect()
                };
                let staged = write(staged);
                let written_back = write(write_back);
                Ok((dir, staged, written_back))
            })
            .await;
            if let Ok((dir, staged, written_back)) = results {
                self.committed(&dir, staged, written_back);
            }
        }
        self.write_integrity(all, now).await;
        let state = self.lock();
        let typing = state.drafts.values().map(|d| d.since + FLUSH_DELAY).min();
        let events = state.integrity.as_ref().map_or(0, |i| i.unwritten_count());
        let retry = state
            .retry_at
            .filter(|_| !state.unwritten.is_empty() || events > 0);
        typing.into_iter().chain(retry).min()
    }

    /// Writes again the proctoring events the disk refused (all of them with `all`, otherwise
    /// once the retry is due). Called by [`Shared::write_pass`], under its write lock.
    async fn write_integrity(&self, all: bool, now: Instant) {
        let (dir, events) = {
            let state = self.lock();
            let Some(integrity) = state.integrity.as_ref() else {
                return;
            };
            if !(all || state.retry_at.is_some_and(|at| at <= now)) {
                return;
            }
            (integrity.dir().to_owned(), integrity.unwritten())
        };
        if events.is_empty() {
            return;
        }
        let results = {
            let dir = dir.clone();
            blocking(move || {
                Ok(events
                    .into_iter()
                    .map(|e| {
                        let result = crate::integrity::persist(&dir, &e);
                        (e.event_id, result)
                    })
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default()
        };
        let mut gone = Vec::new();
        {
            let mut state = self.lock();
            let state = &mut *state;
            let Some(integrity) = state.integrity.as_mut().filter(|i| i.dir() == dir) else {
                return;
            };
            for (id, result) in results {
                match result {
                    Ok(()) if integrity.events().any(|e| e.event_id == id) => {
                        integrity.written(&id)
                    }
                    // Answered while it was being written: the file must go again.
                    Ok(()) => gone.push(id),
                    Err(e) => {
                        tracing::warn!(error = %e, "a proctoring event could not be written to disk; retrying");
                        state.retry_at = Some(Instant::now() + STORAGE_RETRY);
                    }
                }
            }
        }
        if !gone.is_empty() {
            let _ = blocking(move || {
                for id in gone {
                    crate::integrity::remove(&dir, &id)?;
                }
                Ok(())
            })
            .await;
        }
    }

    /// Takes in records the flusher wrote (or the disk refused), sends the new ones, and keeps
    /// the notice of disk trouble up while any record is only in memory.
    ///
    /// A record the disk refused is taken in and sent all the same, from memory: the network
    /// may work while the disk is full, and the server's copy is then the safe one. It is
    /// written again every [`STORAGE_RETRY`]; until it is on disk or acknowledged, signing
    /// out and signing in are refused ([`Error::OnlyInMemory`]).
    fn committed(
        &self,
        dir: &Path,
        staged: Vec<(Record, Result<()>)>,
        written_back: Vec<(Record, Result<()>)>,
    ) {
        let mut state = self.lock();
        let state = &mut *state;
        if state.outbox.as_ref().map(|o| o.dir()) != Some(dir) {
            // Signed out (or in as someone else) meanwhile: the files are in their folder.
            return;
        }
        let mut refused = None;
        for (record, result) in staged {
            let key = record.key();
            let outbox = state.outbox.as_mut().expect("checked above");
            outbox.commit(record);
            match result {
                Ok(()) => {
                    state.unwritten.remove(&key);
                }
                Err(e) => {
                    tracing::error!(error = %e, "typing could not be written to disk; sending it from memory");
                    refused = Some(e);
                    state.unwritten.insert(key.clone());
                }
            }
            let outbox = state.outbox.as_ref().expect("checked above");
            if let (Some(link), Some(record)) = (state.link.as_mut(), outbox.get(&key))
                && link.reconciled
                && record.is_pending()
                && !outbox.collides(&key)
                && send_record(link, record, state.frame_limit)
            {
                link.inflight.insert(key.clone(), record.revision);
            }
            let event = answer_event(state, &key);
            self.emit(Event::Answer(event));
        }
        for (record, result) in written_back {
            let key = record.key();
            match result {
                Ok(()) => {
                    let current = state.outbox.as_ref().and_then(|o| o.get(&key));
                    if current == Some(&record) {
                        // Now on disk: a waiting answer may be shown as "Saved on this
                        // computer" again (for any other, the screen shows nothing new).
                        if state.unwritten.remove(&key) && record.is_pending() {
                            let event = answer_event(state, &key);
                            self.emit(Event::Answer(event));
                        }
                    } else {
                        // Changed while it was being written (an acknowledgement came in).
                        state.write_back.insert(key);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "an answer could not be written to disk; retrying");
                    refused = Some(e);
                    state.unwritten.insert(key);
                }
            }
        }
        if refused.is_some() {
            state.retry_at = Some(Instant::now() + STORAGE_RETRY);
        }
        let problem = if state.unwritten.is_empty() {
            None
        } else {
            match refused {
                Some(e) => Some(storage_notice(&e)),
                None => state.storage_problem.clone(),
            }
        };
        if state.storage_problem != problem {
            state.storage_problem.clone_from(&problem);
            self.emit(Event::Storage(problem));
        }
    }

    pub(crate) async fn flusher(self: Arc<Self>) {
        loop {
            let notified = self.wake_flusher.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.write_pass(false).await {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Re-sends the evaluations when the next `ends_at` passes, so that editing locks on time.
    pub(crate) async fn deadlines(self: Arc<Self>) {
        loop {
            let notified = self.wake_deadlines.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let state = self.lock();
                let now = server_now_ms(&state);
                state
                    .evaluations
                    .values()
                    .filter(|h| h.evaluation.phase == Phase::InProgress)
                    .filter_map(|h| h.evaluation.ends_at.map(|t| t.unix_ms()))
                    .filter(|at| *at > now)
                    .min()
                    .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)))
            };
            match next {
                Some(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {
                            let state = self.lock();
                            self.emit(Event::Evaluations(evaluation_views(&state)));
                        }
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// What the student is told when the disk refuses a write: the cause, never a path (the data
/// folder's hex-named folders mean nothing to them).
fn storage_notice(error: &Error) -> String {
    use std::io::ErrorKind;
    match error {
        Error::Storage { source, .. } => match source.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
                "this computer's disk is full".to_owned()
            }
            ErrorKind::ReadOnlyFilesystem => "this computer's disk is read-only".to_owned(),
            ErrorKind::PermissionDenied => "the app may not write to its data folder".to_owned(),
            _ => format!("this computer's disk failed ({})", source.kind()),
        },
        other => format!("this computer's disk failed ({})", other.kind()),
    }
}
