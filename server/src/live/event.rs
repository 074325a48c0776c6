//! Events: what a committed change means for live connections.
//!
//! The store publishes them after each commit, in commit order, so that every connection sees
//! changes in the order they happened; the hub routes each to the connections it concerns. They
//! serialize so that a clustered store can carry them from the node that committed to every node.

use invigil_protocol::{
    Evaluation, InvalidationReason, Participant, Participation, ParticipationStatus, Timestamp,
    UpdateReason,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// A committed change that live connections must hear about.
#[derive(Debug, Serialize, Deserialize)]
pub enum Event {
    /// Sessions were revoked: their connections get `SESSION_INVALIDATED`, then close 4001.
    Revoked {
        /// Whose sessions.
        user_id: String,
        /// Which sessions.
        session_ids: Vec<String>,
        /// Why.
        reason: InvalidationReason,
    },
    /// An evaluation changed for some students.
    Evaluation(EvaluationEvent),
    /// A participant row changed (for owners and admins).
    Participant(ParticipantEvent),
    /// A student stopped being a participant (for the owner's and admins' connections that asked
    /// for the additions).
    ParticipantRemoved {
        /// The evaluation.
        evaluation_id: String,
        /// Its owner's user id.
        owner_id: String,
        /// The student.
        username: String,
    },
    /// An evaluation was created or changed, as staff see it (for the owner's and admins'
    /// connections that asked for the additions).
    StaffEvaluation {
        /// The evaluation.
        evaluation: Evaluation,
        /// Its owner's user id.
        owner_id: String,
    },
    /// This node may have missed events (its link to the other nodes was lost): every local
    /// connection is closed with 1012 so that its client reconnects and starts from a fresh
    /// snapshot. Published by a clustered store on its own node only.
    Resync,
    /// A socket of a session opened on the hub `node` as `connection`. Every hub closes its
    /// socket of that session with 4002 if that socket announced itself earlier: one socket per
    /// session across the cluster, the newest by commit order. (A single node replaces at
    /// registration and never publishes this.)
    SocketOpened {
        /// The session.
        session_id: String,
        /// The hub the socket is on.
        node: String,
        /// The socket's id on that hub.
        connection: u64,
    },
    /// A marker the hub resolves when it routes it: everything published before it has been
    /// routed. Local to this node, never stored.
    #[serde(skip)]
    Barrier(Barrier),
}

impl Event {
    /// Bytes it holds as a connection's queue counts them: an evaluation change is the message it
    /// becomes (its prefix, made once for every recipient, plus a participation); anything else
    /// is small.
    pub fn weight(&self) -> usize {
        /// More than any other event's message, far less than a queue's allowance.
        const SMALL: usize = 512;
        match self {
            Event::Evaluation(e) => e.update_prefix().len() + SMALL,
            _ => SMALL,
        }
    }
}

/// The waiting side of [`Event::Barrier`].
#[derive(Debug, Default)]
pub struct Barrier(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Barrier {
    /// A barrier and what resolves when the hub routes it.
    pub fn new() -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self(std::sync::Mutex::new(Some(tx))), rx)
    }

    /// Resolves it (once).
    pub fn pass(&self) {
        let sender = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}

/// Which students an evaluation change concerns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Audience {
    /// Every student (an open evaluation).
    AllStudents,
    /// These students, by user id.
    Students(HashSet<String>),
}

/// An evaluation's new state for its students.
#[derive(Debug, Serialize, Deserialize)]
pub struct EvaluationEvent {
    /// Why.
    pub reason: UpdateReason,
    /// The evaluation as students see it (no questions in draft).
    pub evaluation: Evaluation,
    /// Who hears of it.
    pub audience: Audience,
    /// Participations that changed with it, by user id; any other student's is unchanged.
    pub participations: HashMap<String, Participation>,
    #[serde(skip)]
    json: OnceLock<String>,
}

impl EvaluationEvent {
    /// An evaluation change.
    pub fn new(
        reason: UpdateReason,
        evaluation: Evaluation,
        audience: Audience,
        participations: HashMap<String, Participation>,
    ) -> Self {
        Self {
            reason,
            evaluation,
            audience,
            participations,
            json: OnceLock::new(),
        }
    }

    /// A change of one student's participation.
    pub fn for_student(
        reason: UpdateReason,
        evaluation: Evaluation,
        user_id: &str,
        participation: Participation,
    ) -> Self {
        Self::new(
            reason,
            evaluation,
            Audience::Students(HashSet::from([user_id.to_owned()])),
            HashMap::from([(user_id.to_owned(), participation)]),
        )
    }

    /// The message up to each student's own part, made once however many students receive it:
    /// `{"type":"EVALUATION_UPDATE","reason":…,"evaluation":{…},"participation":` (the rest is
    /// the participation's JSON and the closing brace).
    pub fn update_prefix(&self) -> &str {
        self.json.get_or_init(|| {
            let reason = serde_json::to_string(&self.reason).expect("reasons serialize");
            let evaluation =
                serde_json::to_string(&self.evaluation).expect("evaluations always serialize");
            format!(
                r#"{{"type":"EVALUATION_UPDATE","reason":{reason},"evaluation":{evaluation},"participation":"#
            )
        })
    }
}

/// A participant row. Presence (`connected`, `last_seen`) comes from the store when it tracks it
/// across nodes ([`ParticipantRow::presence`]); otherwise the hub adds it from this node's
/// connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRow {
    /// The student's user id.
    pub user_id: String,
    /// The student.
    pub username: String,
    /// Their name.
    pub display_name: String,
    /// Where they stand.
    pub status: ParticipationStatus,
    /// Why they are blocked.
    pub blocked_reason: Option<invigil_protocol::BlockedReason>,
    /// When the server last heard from them, as stored.
    pub last_seen: Option<invigil_protocol::Timestamp>,
    /// How many questions have a stored answer.
    pub answered: u32,
    /// How many questions' stored answer is late.
    #[serde(default)]
    pub late_answers: u32,
    /// The student's integrity events, summed up.
    #[serde(default)]
    pub integrity: invigil_protocol::IntegritySummary,
    /// The proctoring settings the student is exempt from.
    #[serde(default)]
    pub proctoring_exempt: invigil_protocol::SettingSet,
    /// Presence across every node, computed in the transaction that read the row, when the store
    /// tracks it (a clustered store); `None` when this node's hub is the one that knows.
    pub presence: Option<ClusterPresence>,
}

/// A student's presence as a clustered store sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPresence {
    /// Whether a live connection of their current session is open on a live node.
    pub connected: bool,
    /// When a server last heard from them.
    pub last_seen: Option<Timestamp>,
}

impl ParticipantRow {
    /// The row as the contract shows it, with presence.
    pub fn with_presence(
        &self,
        connected: bool,
        last_seen: Option<invigil_protocol::Timestamp>,
    ) -> Participant {
        Participant {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            status: self.status,
            blocked_reason: self.blocked_reason,
            connected,
            last_seen: last_seen.or(self.last_seen),
            answered: self.answered,
            // The stored last-seen time is written when the student's last connection is lost.
            disconnected_since: if connected { None } else { self.last_seen },
            late_answers: self.late_answers,
            integrity: self.integrity.clone(),
            proctoring_exempt: self.proctoring_exempt,
        }
    }
}

/// A participant row changed.
#[derive(Debug, Serialize, Deserialize)]
pub struct ParticipantEvent {
    /// The evaluation.
    pub evaluation_id: String,
    /// Its owner's user id (they hear of it, as do admins).
    pub owner_id: String,
    /// The row.
    pub row: ParticipantRow,
}

/// Where committed events go: the local hub's dispatcher, in order.
#[derive(Debug, Clone)]
pub struct Bus(mpsc::UnboundedSender<Arc<Event>>);

impl Bus {
    /// A bus and the receiving end for the dispatcher.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Arc<Event>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Publishes events in order. Once the hub is gone (shutdown) they are dropped: nobody listens.
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            let _ = self.0.send(Arc::new(event));
        }
    }
}
