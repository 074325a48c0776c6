// The live board of an evaluation's participants: status, connection, last seen, lost since when,
// answers saved, late answers, blocked reason; sorting, filtering, a summary line; unblocking with
// a note; each student's answers.

import { api, seg } from './api.js';
import { ask, field, h, replace, show } from './dom.js';
import { board, loadBoard, state, subscribe } from './state.js';
import { when } from './time.js';

const STATUS = {
  not_started: 'Not started',
  in_progress: 'In progress',
  submitted: 'Submitted',
  blocked: 'Blocked',
};

const REASON = { second_sign_in: 'Signed in a second time' };

/** Connected, lost (sitting the evaluation without a live connection), or not connected. */
export function connection(row) {
  if (row.connected) return 'Connected';
  if (row.status === 'in_progress') return 'Lost';
  return 'Not connected';
}

/** "212 connected · 3 lost · 1 blocked · …" */
export function summary(rows) {
  const count = (pred) => rows.filter(pred).length;
  const late = rows.reduce((n, r) => n + (r.late_answers ?? 0), 0);
  return [
    `${count((r) => r.connected)} connected`,
    `${count((r) => connection(r) === 'Lost')} lost`,
    `${count((r) => r.status === 'blocked')} blocked`,
    `${count((r) => r.status === 'submitted')} submitted`,
    `${count((r) => r.status === 'not_started')} not started`,
    `${late} late ${late === 1 ? 'answer' : 'answers'}`,
  ].join(' · ');
}

const COLUMNS = [
  { key: 'student', label: 'Student', value: (r) => `${r.display_name} ${r.username}`.toLowerCase() },
  { key: 'status', label: 'Status', value: (r) => ['blocked', 'in_progress', 'not_started', 'submitted'].indexOf(r.status) },
  { key: 'connection', label: 'Connection', value: (r) => ['Lost', 'Connected', 'Not connected'].indexOf(connection(r)) },
  { key: 'last_seen', label: 'Last seen', value: (r) => r.last_seen ?? '' },
  { key: 'lost_since', label: 'Lost since', value: (r) => r.disconnected_since ?? '' },
  { key: 'answered', label: 'Answers', value: (r) => r.answered },
  { key: 'late', label: 'Late', value: (r) => r.late_answers ?? 0 },
  { key: 'reason', label: 'Blocked reason', value: (r) => r.blocked_reason ?? '' },
];

const FILTERS = {
  all: ['Everyone', () => true],
  connected: ['Connected', (r) => r.connected],
  lost: ['Lost', (r) => connection(r) === 'Lost'],
  blocked: ['Blocked', (r) => r.status === 'blocked'],
  in_progress: ['In progress', (r) => r.status === 'in_progress'],
  submitted: ['Submitted', (r) => r.status === 'submitted'],
  not_started: ['Not started', (r) => r.status === 'not_started'],
  late: ['With late answers', (r) => (r.late_answers ?? 0) > 0],
};

/** Mounts the board of `evaluationId` into `container`; returns an unmount function. */
export function mountBoard(container, evaluationId) {
  let sort = { key: 'student', dir: 1 };
  const summaryLine = h('p', { class: 'summary', role: 'status', 'aria-live': 'polite' });
  const [searchField, search] = field('Find a student', h('input', { type: 'search', placeholder: 'Name or username' }));
  const [showField, show] = field('Show', h('select', {},
    Object.entries(FILTERS).map(([value, [label]]) => h('option', { value, text: label }))));
  const loadError = h('p', { class: 'message error', role: 'alert', hidden: true });
  const head = h('tr');
  const body = h('tbody');
  const table = h('table', { class: 'board' },
    h('caption', { text: 'Participants' }), h('thead', {}, head), body);
  const empty = h('p', { class: 'empty', hidden: true, text: 'No participant matches.' });

  replace(container,
    summaryLine,
    h('div', { class: 'filters' }, searchField, showField),
    loadError,
    h('div', { class: 'table-wrap' }, table),
    empty);

  function drawHead() {
    replace(head, COLUMNS.map((c) => h('th', {
      scope: 'col',
      'aria-sort': sort.key === c.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none',
    }, h('button', {
      type: 'button',
      class: 'sort',
      text: c.label,
      onclick: () => {
        sort = { key: c.key, dir: sort.key === c.key ? -sort.dir : 1 };
        draw();
      },
    }))), h('th', { scope: 'col', text: 'Actions' }));
  }

  function draw() {
    const rows = [...board(evaluationId).values()];
    summaryLine.textContent = summary(rows);
    const text = search.value.trim().toLowerCase();
    const keep = FILTERS[show.value][1];
    const column = COLUMNS.find((c) => c.key === sort.key);
    const shown = rows
      .filter((r) => keep(r) && (!text || `${r.username} ${r.display_name}`.toLowerCase().includes(text)))
      .sort((a, b) => {
        const x = column.value(a);
        const y = column.value(b);
        const byColumn = x < y ? -1 : x > y ? 1 : 0;
        return byColumn * sort.dir || a.username.localeCompare(b.username);
      });
    drawHead();
    replace(body, shown.map(drawRow));
    empty.hidden = shown.length > 0 || rows.length === 0;
  }

  function drawRow(r) {
    const link = connection(r);
    return h('tr', { 'data-username': r.username, class: `status-${r.status} link-${link.toLowerCase().replace(' ', '-')}` },
      h('th', { scope: 'row' }, h('button', {
        type: 'button',
        class: 'link',
        title: 'Show the answers',
        onclick: () => showAnswers(evaluationId, r),
      }, h('span', { class: 'name', text: r.display_name }), ' ', h('span', { class: 'username', text: r.username }))),
      h('td', {}, h('span', { class: `badge ${r.status}`, text: STATUS[r.status] ?? r.status })),
      h('td', {}, h('span', { class: `dot ${link.toLowerCase().replace(' ', '-')}`, text: link })),
      h('td', { text: when(r.last_seen) }),
      h('td', { text: r.connected ? '—' : when(r.disconnected_since) }),
      h('td', { class: 'num', text: String(r.answered) }),
      h('td', { class: 'num', text: String(r.late_answers ?? 0) }),
      h('td', { text: r.blocked_reason ? (REASON[r.blocked_reason] ?? r.blocked_reason) : '—' }),
      h('td', {}, r.status === 'blocked'
        ? h('button', { type: 'button', 'aria-label': `Unblock ${r.username}`, text: 'Unblock', onclick: () => unblock(evaluationId, r) })
        : null));
  }

  search.addEventListener('input', draw);
  show.addEventListener('change', draw);

  async function refresh() {
    try {
      await loadBoard(evaluationId, () => api('GET', `/api/evaluations/${seg(evaluationId)}/participants`));
      loadError.hidden = true;
    } catch (e) {
      loadError.textContent = `The participants could not be loaded: ${e.message}`;
      loadError.hidden = false;
    }
  }

  const unsubscribe = subscribe((kind, detail) => {
    if (kind === 'board' && detail === evaluationId) draw();
    if (kind === 'resync') refresh();
  });
  draw();
  refresh();
  return unsubscribe;
}

function unblock(evaluationId, row) {
  const [noteField, note] = field('Note for the audit log', h('textarea', { rows: 3 }),
    'Why the student may go on, e.g. "Checked their identity at the desk."');
  return ask({
    title: `Unblock ${row.display_name} (${row.username})`,
    body: `Blocked: ${REASON[row.blocked_reason] ?? row.blocked_reason ?? 'unknown reason'}.`,
    confirm: 'Unblock',
    fields: [noteField],
    action: () => api('POST',
      `/api/evaluations/${seg(evaluationId)}/participants/${seg(row.username)}/unblock`,
      { note: note.value.trim() || null }),
  });
}

/** A dialog with a student's answers, late marks and where each came from. */
export async function showAnswers(evaluationId, row) {
  const content = h('div', { class: 'answers' }, h('p', { text: 'Loading…' }));
  show({ title: `Answers of ${row.display_name} (${row.username})`, content, wide: true });
  const evaluation = state.evaluations.get(evaluationId);
  try {
    const answers = await api('GET', `/api/evaluations/${seg(evaluationId)}/students/${seg(row.username)}/answers`);
    const byQuestion = new Map(answers.map((a) => [a.question_id, a]));
    const questions = evaluation?.questions ?? answers.map((a) => ({ id: a.question_id, prompt: a.question_id, kind: 'text' }));
    replace(content, questions.map((q, i) => {
      const a = byQuestion.get(q.id);
      const label = (id) => q.choices?.find((c) => c.id === id)?.label;
      const shown = (text) => (q.kind === 'choice' && label(text) ? `${label(text)} (${text})` : text);
      return h('section', { class: 'answer', 'aria-label': `Question ${i + 1}` },
        h('h3', {}, `${i + 1}. `, q.prompt),
        a ? [
          h('p', { class: 'meta' },
            `Revision ${a.revision} · saved ${when(a.saved_at)}`,
            a.late ? h('span', { class: 'badge late', text: 'Late' }) : null),
          h('pre', { class: q.kind === 'code' ? 'code' : '', text: shown(a.content) }),
          a.source ? h('p', { class: 'source', text: `Source: ${a.source}` }) : null,
          a.on_time ? h('div', { class: 'on-time' },
            h('p', { class: 'meta', text: `Last on-time revision ${a.on_time.revision}, saved ${when(a.on_time.saved_at)}:` }),
            h('pre', { text: shown(a.on_time.content) })) : null,
        ] : h('p', { class: 'empty', text: 'No answer.' }));
    }));
  } catch (e) {
    replace(content, h('p', { class: 'message error', role: 'alert', text: `The answers could not be loaded: ${e.message}` }));
  }
}
