//! Answers between the outbox and the server: reading the server's answers after every
//! `WELCOME` (reconciling), sending what waits, and taking in acknowledgements and refusals.
//! Proctoring events likewise, from the integrity outbox: sent on every new socket, kept until
//! `INTEGRITY_ACK`, dropped (with the reason in the log) on `INTEGRITY_REJECTED`.
//! Also what the socket tells of the session and the evaluations (the end of a session, the
//! evaluation cache).

use crate::error::Error;
use crate::folder::{self, SessionNote};
use crate::outbox::{self, Displaced, Key, Record};
use crate::show::{answer_event, integrity_count, session_view};
use crate::state::{Draft, FLUSH_DELAY, Held, Link, Shared, State, blocking, connection};
use crate::view::{ConnectionState, Event};
use invigil_protocol::{ClientMessage, ErrorCode, IntegrityRejectCode, ParticipationStatus, Phase};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long reading the server's answers may take.
pub(crate) const ANSWERS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a failed read of the server's answers a `conflict` reads them again.
const RECONCILE_RETRY: Duration = Duration::from_secs(5);

impl Shared {
    /// Takes in the server's copy of an evaluation's answers.
    pub(crate) fn adopt(&self, evaluation_id: &str, answers: &[invigil_protocol::Answer]) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(outbox) = state.outbox.as_mut() else {
            return;
        };
        let typed: Vec<(Key, Option<u64>)> = state
            .drafts
            .keys()
            .filter(|k| k.evaluation_id == evaluation_id)
            .map(|k| (k.clone(), outbox.get(k).map(|r| r.revision)))
            .collect();
        let mut changed = outbox.adopt_server_answers(evaluation_id, answers);
        // Typing not yet written over a text the server got from elsewhere meanwhile: the
        // student did not see that text; it is kept beside theirs.
        for (key, before) in typed {
            let Some(record) = outbox.get(&key).filter(|r| Some(r.revision) != before) else {
                continue;
            };
            let draft = &state.drafts[&key];
            if record.is_pending() || record.content == draft.content {
                continue;
            }
            let text = Displaced {
                revision: record.revision,
                content: record.content.clone(),
            };
            if let Some(record) = outbox.keep_displaced(&key, text) {
                changed.retain(|r| r.key() != key);
                changed.push(record);
            }
        }
        let now = Instant::now();
        let mut restage = Vec::new();
        for record in outbox
            .pending()
            .filter(|r| r.evaluation_id == evaluation_id)
        {
            let key = record.key();
            if outbox.collides(&key) && !state.drafts.contains_key(&key) {
                restage.push((key, record.content.clone()));
            }
        }
        for record in &changed {
            state.write_back.insert(record.key());
        }
        for (key, content) in restage {
            state.drafts.insert(
                key,
                Draft {
                    content,
                    since: now.checked_sub(FLUSH_DELAY).unwrap_or(now),
                },
            );
        }
        for record in &changed {
            let event = answer_event(state, &record.key());
            self.emit(Event::Answer(event));
        }
        self.wake_flusher.notify_one();
    }

    /// Reads the server's answers after a socket's `WELCOME` (or, with `only`, after a
    /// `conflict` in that evaluation), takes them in with [`Shared::adopt`], and then lets the
    /// socket send: numbering is above the server's, answers the server lost go again, and
    /// texts the server got from elsewhere are kept. Covers every evaluation being sat and
    /// every one with answers waiting.
    ///
    /// A read that fails does not hold answers back: the server refuses a save that would
    /// overwrite other text at the same revision (`conflict`), so sending is safe; a conflict
    /// reads again, every [`RECONCILE_RETRY`] while the socket lasts.
    pub(crate) async fn reconcile(self: Arc<Self>, link_id: u64, only: Option<String>) {
        loop {
            let Some((api, token, ids)) = ({
                let state = self.lock();
                let current = state.link.as_ref().is_some_and(|l| l.id == link_id);
                let credentials = state
                    .session
                    .as_ref()
                    .filter(|a| a.ended.is_none())
                    .and_then(|a| Some((a.api.clone(), a.token.clone()?)));
                credentials.filter(|_| current).map(|(api, token)| {
                    let ids: BTreeSet<String> = match &only {
                        Some(id) => BTreeSet::from([id.clone()]),
                        None => reconciled_evaluations(&state),
                    };
                    (api, token, ids)
                })
            }) else {
                return;
            };
            let mut failed = false;
            for id in &ids {
                match tokio::time::timeout(ANSWERS_TIMEOUT, api.answers(&token.0, id)).await {
                    Ok(Ok(answers)) => self.adopt(id, &answers),
                    // No longer eligible: nothing there to read, and the saves say why.
                    Ok(Err(Error::Server {
                        code: ErrorCode::NotFound,
                        ..
                    })) => {}
                    Ok(Err(e)) => {
                        tracing::info!(error = %e, evaluation = %id, "the server's answers were not read");
                        failed = true;
                    }
                    Err(_) => {
                        tracing::info!(evaluation = %id, "the server's answers did not come in time");
                        failed = true;
                    }
                }
            }
            {
                let mut state = self.lock();
                let Some(link) = state.link.as_mut().filter(|l| l.id == link_id) else {
                    return;
                };
                link.reconciled = true;
                match &only {
                    None => self.send_pending(&mut state, None, true),
                    Some(_) if failed => {}
                    Some(id) => self.send_pending(&mut state, Some(id), true),
                }
            }
            if !(failed && only.is_some()) {
                return;
            }
            tokio::time::sleep(RECONCILE_RETRY).await;
        }
    }

    /// Sends, on the open socket, every pending answer not already on its way there. Refused
    /// ones are skipped unless `retry_refused` (a reconnect or an unblock may have changed why).
    pub(crate) fn send_pending(
        &self,
        state: &mut State,
        evaluation: Option<&str>,
        retry_refused: bool,
    ) {
        let (Some(outbox), Some(link)) = (state.outbox.as_mut(), state.link.as_mut()) else {
            return;
        };
        if !link.reconciled {
            return;
        }
        if retry_refused {
            match evaluation {
                Some(id) => outbox.clear_rejections(id),
                None => {
                    let ids: BTreeSet<String> =
                        outbox.pending().map(|r| r.evaluation_id.clone()).collect();
                    for id in ids {
                        outbox.clear_rejections(&id);
                    }
                }
            }
        }
        for record in outbox.pending() {
            if evaluation.is_some_and(|id| id != record.evaluation_id)
                || record.rejected.is_some()
                || outbox.collides(&record.key())
            {
                continue;
            }
            let key = record.key();
            if link.inflight.get(&key) == Some(&record.revision) {
                continue;
            }
            if send_record(link, record, state.frame_limit) {
                link.inflight.insert(key, record.revision);
            } else {
                break;
            }
        }
    }

    /// Sends, on the open socket, every waiting proctoring event not already on its way there,
    /// oldest first. Events need no reconciling: the server stores each `event_id` once, so
    /// sending one again is always safe.
    pub(crate) fn send_integrity(&self, state: &mut State) {
        let (Some(integrity), Some(link)) = (state.integrity.as_ref(), state.link.as_mut()) else {
            return;
        };
        for event in integrity.events() {
            if link.integrity_inflight.contains(&event.event_id) {
                continue;
            }
            let frame = serde_json::to_string(&ClientMessage::IntegrityEvent(event.clone()))
                .expect("client messages serialize");
            if link.tx.try_send(frame).is_err() {
                // The queue is full: the rest go at the next heartbeat.
                break;
            }
            link.integrity_inflight.insert(event.event_id.clone());
        }
    }

    /// Handles `INTEGRITY_ACK` (`refused` is `None`) and `INTEGRITY_REJECTED`: either way the
    /// event leaves this computer. A refused one is never sent again (the student is not, or no
    /// longer, sitting that evaluation: another try would be refused the same way); the log says
    /// which and why.
    pub(crate) fn integrity_answered(
        &self,
        state: &mut State,
        event_id: &str,
        refused: Option<IntegrityRejectCode>,
    ) {
        if let Some(link) = state.link.as_mut() {
            link.integrity_inflight.remove(event_id);
        }
        let Some(integrity) = state.integrity.as_mut() else {
            return;
        };
        let Some(event) = integrity.take(event_id) else {
            return;
        };
        if let Some(code) = refused {
            tracing::warn!(
                event = %event_id,
                evaluation = %event.evaluation_id,
                kind = event.kind.as_str(),
                code = ?code,
                "the server refused a proctoring event; it is dropped"
            );
        }
        let (dir, id) = (integrity.dir().to_owned(), event_id.to_owned());
        tokio::task::spawn_blocking(move || {
            // Left on disk, it is sent again by the next run and acknowledged again: harmless.
            if let Err(e) = crate::integrity::remove(&dir, &id) {
                tracing::warn!(error = %e, "an answered proctoring event could not be removed");
            }
        });
        self.emit(Event::Integrity(integrity_count(
            state,
            &event.evaluation_id,
        )));
    }

    /// Handles `ANSWER_ACK`.
    pub(crate) fn acknowledged(&self, state: &mut State, key: Key, revision: u64, late: bool) {
        let Some(outbox) = state.outbox.as_mut() else {
            return;
        };
        let outcome = outbox.acknowledge(&key, revision, late);
        if let Some(link) = state.link.as_mut()
            && link
                .inflight
                .get(&key)
                .is_some_and(|sent| *sent <= revision)
        {
            link.inflight.remove(&key);
        }
        match outcome {
            outbox::Acked::Unknown => return,
            outbox::Acked::Superseded { server_revision } => {
                tracing::info!(
                    question = %key.question_id,
                    server_revision,
                    "the server holds a newer revision from elsewhere; writing this one above it"
                );
                if !state.drafts.contains_key(&key) {
                    let content = state
                        .outbox
                        .as_ref()
                        .and_then(|o| o.get(&key))
                        .map(|r| r.content.clone())
                        .unwrap_or_default();
                    let now = Instant::now();
                    state.drafts.insert(
                        key.clone(),
                        Draft {
                            content,
                            since: now.checked_sub(FLUSH_DELAY).unwrap_or(now),
                        },
                    );
                }
                self.wake_flusher.notify_one();
            }
            outbox::Acked::Stored | outbox::Acked::Earlier => {
                state.write_back.insert(key.clone());
                self.wake_flusher.notify_one();
            }
        }
        let event = answer_event(state, &key);
        self.emit(Event::Answer(event));
    }

    /// Handles `ANSWER_REJECTED`. A `conflict` (the server holds this revision with other text)
    /// keeps the answer waiting until [`Shared::reconcile`] has read the server's text and the
    /// answer is written again above it.
    pub(crate) fn rejected(
        &self,
        state: &mut State,
        key: Key,
        revision: u64,
        code: invigil_protocol::RejectCode,
    ) {
        if let Some(link) = state.link.as_mut()
            && link.inflight.get(&key) == Some(&revision)
        {
            link.inflight.remove(&key);
        }
        let Some(outbox) = state.outbox.as_mut() else {
            return;
        };
        if outbox.reject(&key, revision, code) {
            tracing::info!(question = %key.question_id, ?code, "a save was refused; kept on this computer");
            let event = answer_event(state, &key);
            self.emit(Event::Answer(event));
        }
    }

    /// The server ended the session: forget the token, keep every answer, stop connecting.
    pub(crate) async fn end_session(&self, reason: String) {
        // Serialised with sign-in and sign-out, which write the same note.
        let _session = self.session_lock.lock().await;
        let (note, account) = {
            let mut state = self.lock();
            let sitting = state
                .evaluations
                .values()
                .find(|h| {
                    h.evaluation.phase == Phase::InProgress
                        && matches!(
                            h.participation.status,
                            ParticipationStatus::InProgress | ParticipationStatus::Blocked
                        )
                })
                .map(|h| h.evaluation.title.clone());
            let url = state.server_url.clone();
            let Some(active) = state.session.as_mut() else {
                return;
            };
            if active.ended.is_some() {
                return;
            }
            active.ended = Some(reason.clone());
            active.token = None;
            active.token_remembered = false;
            if reason == "signed_in_elsewhere" {
                active.ended_exam = sitting;
            }
            let note = SessionNote {
                server_url: url.to_string(),
                user: active.user.clone(),
                session_id: active.session_id.clone(),
                ended: Some(reason.clone()),
            };
            state.link = None;
            state.live = None;
            state.connection = connection(ConnectionState::SessionEnded, Some(reason), None);
            self.emit(Event::Session(session_view(&state)));
            self.emit(Event::Connection(state.connection.clone()));
            (note, self.account(&url))
        };
        let vault = self.vault.clone();
        let data_dir = self.config.data_dir.clone();
        let result = blocking(move || {
            folder::write_note(&data_dir, &note)?;
            vault.delete(&account)
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "the ended session could not be noted");
        }
    }

    /// Writes the evaluation cache (what the app shows when it starts without the server).
    pub(crate) async fn save_cache(&self) {
        let (dir, cache) = {
            let state = self.lock();
            let Some(active) = state.session.as_ref() else {
                return;
            };
            let cache: Vec<Held> = state.evaluations.values().cloned().collect();
            (active.dir.clone(), cache)
        };
        let result = blocking(move || {
            outbox::create_dir_durably(&dir)?;
            let bytes = serde_json::to_vec(&cache).expect("evaluations serialize");
            // Replaced atomically and durably, like an answer: a write torn by a crash, or lost
            // to a power cut, would start the app offline without the exam its waiting answers
            // belong to.
            folder::write_durably(&dir.join("evaluations.json"), &bytes)
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "the evaluation cache could not be written");
        }
    }
}

/// Queues a save of `record`: on the socket when its frame is shorter than `frame_limit`,
/// otherwise on the `PUT` lane (a frame that large would close the socket with 1009, and
/// sending it again would close the next one the same way). False when the queue is full: it
/// is sent again at the next heartbeat.
pub(crate) fn send_record(link: &mut Link, record: &Record, frame_limit: usize) -> bool {
    let frame = ClientMessage::AnswerSave {
        evaluation_id: record.evaluation_id.clone(),
        question_id: record.question_id.clone(),
        revision: record.revision,
        content: record.content.clone(),
    };
    let frame = serde_json::to_string(&frame).expect("client messages serialize");
    if frame.len() >= frame_limit {
        return link.large.try_send(record.clone()).is_ok();
    }
    link.tx.try_send(frame).is_ok()
}

/// The evaluations whose answers are read after a `WELCOME`: every one being sat (where the
/// server may hold answers from another device, or have lost some) and every one with answers
/// waiting here.
fn reconciled_evaluations(state: &State) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = state
        .evaluations
        .values()
        .filter(|h| {
            h.participation.access
                && h.evaluation.phase == Phase::InProgress
                && matches!(
                    h.participation.status,
                    ParticipationStatus::InProgress | ParticipationStatus::Blocked
                )
        })
        .map(|h| h.evaluation.id.clone())
        .collect();
    if let Some(outbox) = &state.outbox {
        ids.extend(outbox.pending().map(|r| r.evaluation_id.clone()));
    }
    ids
}
