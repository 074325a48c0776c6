// The live board of an evaluation's participants: status, connection, last seen, lost since when,
// answers saved, late answers, blocked reason, and what proctoring reported (leaving the window,
// time away, longest absence, events, the last event, what the computer can do, accommodations);
// sorting (with "needs review"), filtering, a summary line; unblocking with a note; each
// student's answers and timeline; accommodations.

import { api, seg } from './api.js';
import { ask, field, h, replace, show, uid } from './dom.js';
import { SETTINGS } from './editor.js';
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

/** A duration for people: "850 ms", "4.2 s", "3 min 05 s", "1 h 02 min". */
export function duration(ms) {
  const n = Math.max(0, Math.round(ms ?? 0));
  if (n < 1000) return `${n} ms`;
  if (n < 60_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)} s`;
  const s = Math.floor(n / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

const NO_INTEGRITY = { events: 0, focus_lost: 0, brief: 0, away_ms: 0, longest_away_ms: 0, last: null, capabilities: null };
/** A row's integrity summary (an empty one for a server that sends none). */
export const integrity = (row) => ({ ...NO_INTEGRITY, ...(row.integrity ?? {}) });

/** Absences from the window that were not brief. (`brief` counts the returns shorter than the
 *  evaluation's `brief_ms`; an absence still going on counts as not brief.) */
export const longAbsences = (row) => {
  const i = integrity(row);
  return Math.max(0, i.focus_lost - i.brief);
};

/** "Needs review" order, most first: the absences from the window that were not brief, then the
 *  total time away, then every other event reported (left fullscreen, clipboard refused, displays
 *  changed, restarts), then the username. Brief interruptions alone never put a student above one
 *  with a real absence; a computer's capabilities never count. */
export function needsReview(a, b) {
  const x = integrity(a);
  const y = integrity(b);
  return (longAbsences(b) - longAbsences(a))
    || (y.away_ms - x.away_ms)
    || (y.events - x.events)
    || a.username.localeCompare(b.username);
}

export const KIND = {
  focus_lost: 'Left the window',
  focus_regained: 'Came back',
  fullscreen_exited: 'Left fullscreen',
  clipboard_blocked: 'Clipboard refused',
  displays_changed: 'Displays changed',
  app_restarted: 'App restarted',
  capabilities: 'Capabilities',
};

/** "Left the window 2× (1 brief) · 12 s away", "Left the window 1× · away now, since 10:02:03",
 *  or null when the student never left it. */
export function leftTheWindow(row) {
  const i = integrity(row);
  if (i.focus_lost === 0) return null;
  const brief = i.brief > 0 ? ` (${i.brief} brief)` : '';
  const away = i.last?.kind === 'focus_lost'
    ? `away now, since ${when(i.last.at)}${i.away_ms > 0 ? `; ${duration(i.away_ms)} before` : ''}`
    : `${duration(i.away_ms)} away`;
  return `Left the window ${i.focus_lost}×${brief} · ${away}`;
}

const LEVEL = { enforced: 'enforced', detect_only: 'detect only', unavailable: 'unavailable' };

/** What the student's computer can do, per setting: [setting label, level] pairs, for the
 *  settings the app named. */
export function capabilityList(row) {
  const caps = integrity(row).capabilities;
  if (!caps) return [];
  return SETTINGS.filter(([key]) => caps[key]).map(([key, label]) => [label, LEVEL[caps[key]] ?? caps[key], caps[key]]);
}

/** "Accommodated": the settings the student is exempt from (never why). */
export const exemptLabels = (row) => (row.proctoring_exempt ?? [])
  .map((key) => SETTINGS.find(([k]) => k === key)?.[1] ?? key);

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
    `${count((r) => integrity(r).focus_lost > 0)} left the window`,
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
  { key: 'left', label: 'Left the window', value: (r) => integrity(r).focus_lost },
  { key: 'away', label: 'Time away', value: (r) => integrity(r).away_ms },
  { key: 'longest', label: 'Longest absence', value: (r) => integrity(r).longest_away_ms },
  { key: 'events', label: 'Events', value: (r) => integrity(r).events },
  { key: 'last_event', label: 'Last event', value: (r) => integrity(r).last?.at ?? '' },
  { key: 'computer', label: 'Computer', value: (r) => capabilityList(r).filter(([, , level]) => level !== 'enforced').length },
  { key: 'accommodation', label: 'Accommodation', value: (r) => (r.proctoring_exempt ?? []).length },
];

/** The orders besides a column's: "needs review" (see `needsReview`). */
const ORDERS = { review: ['Needs review', needsReview] };

const FILTERS = {
  all: ['Everyone', () => true],
  connected: ['Connected', (r) => r.connected],
  lost: ['Lost', (r) => connection(r) === 'Lost'],
  blocked: ['Blocked', (r) => r.status === 'blocked'],
  in_progress: ['In progress', (r) => r.status === 'in_progress'],
  submitted: ['Submitted', (r) => r.status === 'submitted'],
  not_started: ['Not started', (r) => r.status === 'not_started'],
  late: ['With late answers', (r) => (r.late_answers ?? 0) > 0],
  left: ['Left the window', (r) => integrity(r).focus_lost > 0],
  accommodated: ['Accommodated', (r) => (r.proctoring_exempt ?? []).length > 0],
};

/** Mounts the board of `evaluationId` into `container`; returns an unmount function. */
export function mountBoard(container, evaluationId) {
  let sort = { key: 'student', dir: 1 };
  const summaryLine = h('p', { class: 'summary', role: 'status', 'aria-live': 'polite' });
  const [searchField, search] = field('Find a student', h('input', { type: 'search', placeholder: 'Name or username' }));
  const [showField, show] = field('Show', h('select', {},
    Object.entries(FILTERS).map(([value, [label]]) => h('option', { value, text: label }))));
  const [orderField, order] = field('Sort by', h('select', {},
    Object.entries(ORDERS).map(([value, [label]]) => h('option', { value, text: label })),
    COLUMNS.map((c) => h('option', { value: c.key, text: c.label }))),
  'Needs review: most absences from the window that were not brief first, then the most time away, then the most other events.');
  const loadError = h('p', { class: 'message error', role: 'alert', hidden: true });
  const head = h('tr');
  const body = h('tbody');
  const table = h('table', { class: 'board' },
    h('caption', { text: 'Participants' }), h('thead', {}, head), body);
  const empty = h('p', { class: 'empty', hidden: true, text: 'No participant matches.' });

  replace(container,
    summaryLine,
    h('div', { class: 'filters' }, searchField, showField, orderField),
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
        order.value = c.key;
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
    const byOrder = ORDERS[sort.key]?.[1];
    const shown = rows
      .filter((r) => keep(r) && (!text || `${r.username} ${r.display_name}`.toLowerCase().includes(text)))
      .sort(byOrder ?? ((a, b) => {
        const x = column.value(a);
        const y = column.value(b);
        const byColumn = x < y ? -1 : x > y ? 1 : 0;
        return byColumn * sort.dir || a.username.localeCompare(b.username);
      }));
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
      ...proctoringCells(r),
      h('td', {}, h('div', { class: 'row-actions' },
        r.status === 'blocked'
          ? h('button', { type: 'button', 'aria-label': `Unblock ${r.username}`, text: 'Unblock', onclick: () => unblock(evaluationId, r) })
          : null,
        h('button', { type: 'button', 'aria-label': `Timeline of ${r.username}`, text: 'Timeline', onclick: () => showTimeline(evaluationId, r) }),
        h('button', { type: 'button', 'aria-label': `Accommodation for ${r.username}`, text: 'Accommodation', onclick: () => accommodate(evaluationId, r) }))));
  }

  function proctoringCells(r) {
    const i = integrity(r);
    const left = leftTheWindow(r);
    const caps = capabilityList(r);
    const limited = caps.filter(([, , level]) => level !== 'enforced');
    const capsText = caps.map(([label, level]) => `${label}: ${level}`).join('; ');
    const capsTitle = [capsText, i.capabilities_detail].filter(Boolean).join('. ');
    const exempt = exemptLabels(r);
    return [
      h('td', { class: left ? 'left-window' : '', text: left ?? '—' }),
      h('td', { class: 'num', text: i.away_ms > 0 ? duration(i.away_ms) : '—' }),
      h('td', { class: 'num', text: i.longest_away_ms > 0 ? duration(i.longest_away_ms) : '—' }),
      h('td', { class: 'num', text: i.brief > 0 ? `${i.events} (${i.brief} brief)` : String(i.events) }),
      h('td', { text: i.last ? `${KIND[i.last.kind] ?? i.last.kind} · ${when(i.last.at)}` : '—' }),
      h('td', {}, caps.length === 0 ? '—' : h('details', { class: 'capabilities' },
        h('summary', { title: capsTitle, text: limited.length === 0 ? 'All enforced' : `${limited.length} not enforced` }),
        h('ul', {}, caps.map(([label, level, raw]) => h('li', { class: `capability ${raw}`, text: `${label}: ${level}` }))),
        i.capabilities_detail ? h('p', { class: 'hint', text: i.capabilities_detail }) : null)),
      h('td', {}, exempt.length === 0 ? '—'
        : h('span', { class: 'badge accommodated', title: `Exempt from: ${exempt.join(', ')}`, text: 'Accommodated' })),
    ];
  }

  search.addEventListener('input', draw);
  show.addEventListener('change', draw);
  order.addEventListener('change', () => {
    sort = { key: order.value, dir: 1 };
    draw();
  });

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

/** Staff's own copy of the accommodations, by evaluation, with their reasons (loaded on demand). */
async function accommodationOf(evaluationId, username) {
  const all = await api('GET', `/api/evaluations/${seg(evaluationId)}/accommodations`);
  return all.find((a) => a.username === username) ?? null;
}

/** Exempts a student from chosen settings, with a reason for the audit log (never shown to the
 *  student or on the board). Unticking every setting removes the accommodation. */
async function accommodate(evaluationId, row) {
  let current = null;
  try {
    current = await accommodationOf(evaluationId, row.username);
  } catch {
    // Shown without the current reason; saving still works.
  }
  const exempt = new Set(current?.exempt ?? row.proctoring_exempt ?? []);
  const boxes = SETTINGS.map(([key, label]) => {
    const input = h('input', { type: 'checkbox', checked: exempt.has(key), 'data-setting': key });
    return [key, input, h('label', { class: 'choice' }, input, ` ${label}`)];
  });
  const legendId = uid('legend');
  const [reasonField, reason] = field('Reason (staff only)', h('textarea', { rows: 3, maxlength: 500 }),
    'Why, e.g. "Uses a screen reader (NVDA): needs the clipboard." Kept in the audit log with your name; the student and the board never see it. At most 500 characters.');
  return ask({
    title: `Accommodation for ${row.display_name} (${row.username})`,
    body: current
      ? `Now exempt from ${current.exempt.join(', ')} (set by ${current.actor}, ${when(current.at)}: "${current.reason}"). Untick every setting to remove it.`
      : 'Exempt this student from the settings ticked below; their app applies the others. Possible before or during the exam.',
    confirm: 'Save the accommodation',
    fields: [h('fieldset', { 'aria-labelledby': legendId },
      h('legend', { id: legendId, text: 'Exempt from' }), boxes.map(([, , el]) => el)), reasonField],
    action: async () => {
      const why = reason.value.trim();
      if (!why) throw new Error('Give a reason: it is kept in the audit log with your name.');
      if (why.length > 500) throw new Error(`The reason may be at most 500 characters long (now ${why.length}).`);
      await api('PUT', `/api/evaluations/${seg(evaluationId)}/participants/${seg(row.username)}/accommodation`, {
        exempt: boxes.filter(([, input]) => input.checked).map(([key]) => key),
        reason: why,
      });
    },
  });
}

/** The kinds of the audit log that are integrity events (the timeline reads them, with both
 *  times, from the integrity endpoint instead). */
const EVENT_KINDS = new Set(Object.keys(KIND));

/** A dialog with a student's timeline: each integrity event with the device's time and the
 *  server's, the other audit entries about them, and their accommodation with its reason. */
export async function showTimeline(evaluationId, row) {
  const content = h('div', { class: 'timeline' }, h('p', { text: 'Loading…' }));
  show({ title: `Timeline of ${row.display_name} (${row.username})`, content, wide: true });
  const base = `/api/evaluations/${seg(evaluationId)}`;
  try {
    const [events, audit, accommodation] = await Promise.all([
      api('GET', `${base}/integrity?username=${seg(row.username)}`),
      api('GET', `${base}/audit?username=${seg(row.username)}`),
      accommodationOf(evaluationId, row.username),
    ]);
    const lines = [
      ...events.map((e) => ({
        server: e.received_at,
        device: e.at,
        what: KIND[e.kind] ?? e.kind,
        kind: e.kind,
        detail: eventDetail(e),
      })),
      ...audit.filter((a) => !EVENT_KINDS.has(a.kind)).map((a) => ({
        server: a.at,
        device: null,
        what: a.kind.replaceAll('_', ' '),
        kind: a.kind,
        detail: a.actor && a.actor !== row.username ? `${a.detail} (by ${a.actor})` : a.detail,
      })),
    ].sort((a, b) => a.server.localeCompare(b.server));
    const i = integrity(row);
    replace(content,
      h('p', { class: 'summary', text: `${leftTheWindow(row) ?? 'Never left the window'} · longest absence ${duration(i.longest_away_ms)} · ${i.events} events` }),
      accommodation
        ? h('p', { class: 'accommodation', text: `Accommodated: exempt from ${exemptLabels({ proctoring_exempt: accommodation.exempt }).join(', ')}. Reason: ${accommodation.reason} (set by ${accommodation.actor}, ${when(accommodation.at)}).` })
        : null,
      lines.length === 0 ? h('p', { class: 'empty', text: 'Nothing recorded yet.' }) : h('div', { class: 'table-wrap' },
        h('table', { class: 'timeline' },
          h('caption', { text: `Timeline of ${row.username}` }),
          h('thead', {}, h('tr', {}, ['Server time', 'Device time', 'Event', 'Detail'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', {}, lines.map((l) => h('tr', { class: `kind-${l.kind}` },
            h('td', { text: when(l.server) }),
            h('td', { text: l.device ? when(l.device) : '—' }),
            h('th', { scope: 'row', text: l.what }),
            h('td', { text: l.detail })))))));
  } catch (e) {
    replace(content, h('p', { class: 'message error', role: 'alert', text: `The timeline could not be loaded: ${e.message}` }));
  }
}

function eventDetail(e) {
  const parts = [];
  if (e.away_ms !== undefined && e.away_ms !== null) parts.push(`${duration(e.away_ms)} away`);
  if (e.displays !== undefined && e.displays !== null) parts.push(`${e.displays} ${e.displays === 1 ? 'display' : 'displays'}`);
  if (e.capabilities) {
    parts.push(SETTINGS.filter(([key]) => e.capabilities[key])
      .map(([key, label]) => `${label}: ${LEVEL[e.capabilities[key]] ?? e.capabilities[key]}`).join('; '));
  }
  if (e.detail) parts.push(e.detail);
  return parts.join(' · ') || '—';
}
