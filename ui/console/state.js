// What the console knows: the signed-in user, the evaluations and their boards, kept current by
// the live connection. Views subscribe and redraw what changed.

export const state = {
  me: null,
  evaluations: new Map(),
  /** evaluation id → Map(username → participant row) */
  boards: new Map(),
  live: 'connecting',
  transport: 'socket',
};

const listeners = new Set();

/** Calls `fn(kind, detail)` on every change; returns the unsubscriber. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Tells every subscriber: `board` (detail: evaluation id), `evaluation` (id), `evaluations`,
 *  `live` (status), `resync`. */
export function notify(kind, detail) {
  for (const fn of [...listeners]) fn(kind, detail);
}

export function board(evaluationId) {
  let rows = state.boards.get(evaluationId);
  if (!rows) {
    rows = new Map();
    state.boards.set(evaluationId, rows);
  }
  return rows;
}

/** Board messages for an evaluation whose rows are being fetched wait here, then apply in order. */
const pending = new Map();

export function applyRow(evaluationId, participant) {
  if (pending.has(evaluationId)) {
    pending.get(evaluationId).push(['row', participant]);
    return;
  }
  board(evaluationId).set(participant.username, participant);
  notify('board', evaluationId);
}

export function removeRow(evaluationId, username) {
  if (pending.has(evaluationId)) {
    pending.get(evaluationId).push(['remove', username]);
    return;
  }
  board(evaluationId).delete(username);
  notify('board', evaluationId);
}

/** Replaces a board with rows fetched over HTTP; the live messages that arrived meanwhile are
 *  applied after them (each carries a full row, so the latest one wins). */
export async function loadBoard(evaluationId, fetchRows) {
  if (!pending.has(evaluationId)) pending.set(evaluationId, []);
  try {
    const rows = await fetchRows();
    const fresh = new Map(rows.map((r) => [r.username, r]));
    for (const [what, value] of pending.get(evaluationId) ?? []) {
      if (what === 'row') fresh.set(value.username, value);
      else fresh.delete(value);
    }
    state.boards.set(evaluationId, fresh);
  } finally {
    pending.delete(evaluationId);
  }
  notify('board', evaluationId);
}

export function setEvaluation(evaluation) {
  state.evaluations.set(evaluation.id, evaluation);
  notify('evaluation', evaluation.id);
}

/** `status`: connecting, live, reconnecting or offline; `transport`: socket or stream. */
export function setLive(status, transport = state.transport) {
  state.live = status;
  state.transport = transport;
  notify('live', status);
}
