//! The views of [`crate::view`] built from the engine's [`State`]: what an answer, an
//! evaluation, the session show, and how many answers wait.

use crate::outbox::{Key, Record};
use crate::state::{Held, State, server_now_ms};
use crate::view::*;
use invigil_protocol::{ParticipationStatus, Phase, Proctoring};
use std::collections::BTreeSet;

/// The session, as the front end shows it.
pub(crate) fn session_view(state: &State) -> SessionView {
    let active = state.session.as_ref();
    SessionView {
        server_url: state.server_url.to_string(),
        user: active.map(|a| a.user.clone()),
        signed_in: active.is_some_and(|a| a.ended.is_none()),
        token_remembered: active.is_some_and(|a| a.token_remembered),
        vault_problem: state.vault_problem.clone(),
        ended: active.and_then(|a| {
            a.ended.as_ref().map(|reason| EndedView {
                reason: reason.clone(),
                blocked_exam: a.ended_exam.clone(),
                pending: pending_total(state),
            })
        }),
    }
}

pub(crate) fn pending_total(state: &State) -> usize {
    let on_disk = state.outbox.as_ref().map_or(0, |o| o.pending_count());
    let typing = state
        .drafts
        .keys()
        .filter(|k| {
            state
                .outbox
                .as_ref()
                .and_then(|o| o.get(k))
                .is_none_or(|r| !r.is_pending())
        })
        .count();
    on_disk + typing
}

pub(crate) fn pending_in(state: &State, evaluation_id: &str) -> usize {
    let on_disk = state.outbox.as_ref().map_or(0, |o| {
        o.pending()
            .filter(|r| r.evaluation_id == evaluation_id)
            .count()
    });
    let typing = state
        .drafts
        .keys()
        .filter(|k| k.evaluation_id == evaluation_id)
        .filter(|k| {
            state
                .outbox
                .as_ref()
                .and_then(|o| o.get(k))
                .is_none_or(|r| !r.is_pending())
        })
        .count();
    on_disk + typing
}

pub(crate) fn answer_view(state: &State, key: &Key) -> AnswerView {
    let record = state.outbox.as_ref().and_then(|o| o.get(key));
    let drafting = state.drafts.contains_key(key);
    let answer_state = match record {
        _ if drafting => AnswerState::Editing,
        Some(r) if r.is_pending() => AnswerState::Waiting,
        Some(_) => AnswerState::Saved,
        None => AnswerState::Editing,
    };
    AnswerView {
        question_id: key.question_id.clone(),
        revision: record.map_or(0, |r| r.revision),
        state: answer_state,
        late: record.is_some_and(|r| r.late),
        rejected: record.and_then(|r| r.rejected),
        only_in_memory: answer_state == AnswerState::Waiting && state.unwritten.contains(key),
        displaced: record.map_or(0, |r| r.displaced.len()),
    }
}

pub(crate) fn answer_event(state: &State, key: &Key) -> AnswerEvent {
    AnswerEvent {
        evaluation_id: key.evaluation_id.clone(),
        answer: answer_view(state, key),
        pending: pending_in(state, &key.evaluation_id),
        pending_total: pending_total(state),
    }
}

/// What the exam screen shows for `held` at the server's time `now_ms`.
pub(crate) fn exam_state(held: &Held, now_ms: i64) -> ExamState {
    let (evaluation, participation) = (&held.evaluation, &held.participation);
    if !participation.access {
        return ExamState::NoAccess;
    }
    if evaluation.phase == Phase::Draft {
        return ExamState::Draft;
    }
    if participation.status == ParticipationStatus::Submitted {
        return ExamState::Submitted;
    }
    if evaluation.phase != Phase::InProgress {
        return ExamState::Closed;
    }
    if participation.status == ParticipationStatus::Blocked {
        return ExamState::Blocked;
    }
    if evaluation.ends_at.is_some_and(|t| t.unix_ms() <= now_ms) {
        return ExamState::Closed;
    }
    match participation.status {
        ParticipationStatus::NotStarted => ExamState::NotStarted,
        _ => ExamState::Open,
    }
}

pub(crate) fn evaluation_view(state: &State, held: &Held) -> EvaluationView {
    let evaluation = &held.evaluation;
    let mut keys: BTreeSet<Key> = BTreeSet::new();
    if let Some(outbox) = &state.outbox {
        keys.extend(
            outbox
                .records()
                .filter(|r| r.evaluation_id == evaluation.id)
                .map(Record::key),
        );
    }
    keys.extend(
        state
            .drafts
            .keys()
            .filter(|k| k.evaluation_id == evaluation.id)
            .cloned(),
    );
    EvaluationView {
        id: evaluation.id.clone(),
        title: evaluation.title.clone(),
        phase: evaluation.phase,
        ends_at: evaluation.ends_at,
        owner: evaluation.owner.clone(),
        status: held.participation.status,
        blocked_reason: held.participation.blocked_reason,
        access: held.participation.access,
        exam: exam_state(held, server_now_ms(state)),
        questions: evaluation.questions.iter().map(QuestionView::new).collect(),
        answers: keys.iter().map(|k| answer_view(state, k)).collect(),
        pending: pending_in(state, &evaluation.id),
        proctoring: effective_proctoring(held),
        integrity_pending: state
            .integrity
            .as_ref()
            .map_or(0, |i| i.count_in(&evaluation.id)),
    }
}

/// The proctoring settings that apply to the student in `held`: the one place where what the
/// evaluation asks for becomes what this student's app does (the desktop shell proctors by
/// [`EvaluationView::proctoring`], which comes from here).
pub(crate) fn effective_proctoring(held: &Held) -> Proctoring {
    crate::view::effective_proctoring(
        held.evaluation.proctoring,
        held.participation.proctoring_exempt,
    )
}

/// How many proctoring events wait for the server, in all evaluations.
pub(crate) fn integrity_total(state: &State) -> usize {
    state.integrity.as_ref().map_or(0, |i| i.count())
}

/// The count of waiting proctoring events after a change in `evaluation_id`.
pub(crate) fn integrity_count(state: &State, evaluation_id: &str) -> IntegrityCount {
    IntegrityCount {
        evaluation_id: evaluation_id.to_owned(),
        pending: state
            .integrity
            .as_ref()
            .map_or(0, |i| i.count_in(evaluation_id)),
        pending_total: integrity_total(state),
    }
}

pub(crate) fn evaluation_views(state: &State) -> Vec<EvaluationView> {
    let mut views: Vec<EvaluationView> = state
        .evaluations
        .values()
        .map(|h| evaluation_view(state, h))
        .collect();
    views.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)));
    views
}

pub(crate) fn title_of(state: &State, evaluation_id: &str) -> Option<String> {
    state
        .evaluations
        .get(evaluation_id)
        .map(|h| h.evaluation.title.clone())
}

pub(crate) fn unreachable_view(id: &str) -> EvaluationView {
    EvaluationView {
        id: id.to_owned(),
        title: String::new(),
        phase: Phase::Draft,
        ends_at: None,
        owner: String::new(),
        status: ParticipationStatus::NotStarted,
        blocked_reason: None,
        access: false,
        exam: ExamState::NoAccess,
        questions: Vec::new(),
        answers: Vec::new(),
        pending: 0,
        proctoring: Proctoring::default(),
        integrity_pending: 0,
    }
}

/// How many answers (and proctoring events) exist only in memory: refused by the disk and not
/// acknowledged.
pub(crate) fn only_in_memory(state: &State) -> usize {
    let refused = state.outbox.as_ref().map_or(0, |o| {
        state
            .unwritten
            .iter()
            .filter(|k| o.get(k).is_some_and(Record::is_pending))
            .count()
    });
    let events = state.integrity.as_ref().map_or(0, |i| i.unwritten_count());
    refused + state.drafts.len() + events
}

#[cfg(test)]
mod tests {
    use super::*;
    use invigil_protocol::{Access, BlockedReason, Evaluation, Participation, Timestamp};

    fn held(phase: Phase, status: ParticipationStatus, ends_at: Option<i64>) -> Held {
        Held {
            evaluation: Evaluation {
                id: "e1".into(),
                title: "Midterm".into(),
                phase,
                ends_at: ends_at.and_then(Timestamp::from_unix_ms),
                access: Access::List,
                owner: "prof".into(),
                questions: vec![],
                proctoring: Default::default(),
            },
            participation: Participation {
                evaluation_id: "e1".into(),
                username: "alice".into(),
                status,
                blocked_reason: (status == ParticipationStatus::Blocked)
                    .then_some(BlockedReason::SecondSignIn),
                access: true,
                proctoring_exempt: Default::default(),
            },
        }
    }

    #[test]
    fn editing_is_open_only_while_running_joined_unblocked_and_before_the_end() {
        use ExamState::*;
        use ParticipationStatus as S;
        let now = 1_000_000;
        let cases = [
            (Phase::InProgress, S::InProgress, None, Open),
            (Phase::InProgress, S::InProgress, Some(now + 1), Open),
            (Phase::InProgress, S::InProgress, Some(now), Closed),
            (Phase::InProgress, S::Blocked, None, Blocked),
            (Phase::Grading, S::InProgress, None, Closed),
            (Phase::Grading, S::Blocked, None, Closed),
            (Phase::Finished, S::InProgress, None, Closed),
            (Phase::InProgress, S::NotStarted, None, NotStarted),
            (Phase::InProgress, S::Submitted, None, Submitted),
            (Phase::Draft, S::NotStarted, None, Draft),
        ];
        for (phase, status, ends_at, expected) in cases {
            assert_eq!(
                exam_state(&held(phase, status, ends_at), now),
                expected,
                "{phase:?} {status:?} {ends_at:?}"
            );
        }
        let mut removed = held(Phase::InProgress, S::InProgress, None);
        removed.participation.access = false;
        assert_eq!(exam_state(&removed, now), NoAccess);
    }
}
