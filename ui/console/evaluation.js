// One evaluation: its phase (moved with a confirmation), its end time (extended in a click), the
// live board, the audit log with filters, the access list, the editor, the CSV exports and the
// import of answer files from the desktop app.

import { api, seg } from './api.js';
import { mountBoard } from './board.js';
import { ask, field, h, messageArea, replace, show, uid } from './dom.js';
import { SETTINGS, mountEditor } from './editor.js';
import { setEvaluation, state, subscribe } from './state.js';
import { full, later, when } from './time.js';

export const PHASES = {
  draft: 'Draft',
  in_progress: 'In progress',
  grading: 'Grading',
  finished: 'Finished',
};

const MOVES = {
  draft: [['in_progress', 'Start the evaluation', 'Students can join and answer from now on.']],
  in_progress: [['grading', 'Close for grading', 'Answers saved from now on are kept but marked late.']],
  grading: [
    ['in_progress', 'Reopen the evaluation', 'Students can answer again; answers are on time until the end time.'],
    ['finished', 'Finish the evaluation', 'The evaluation is done; it cannot be reopened.'],
  ],
  finished: [],
};

const KINDS = [
  'phase_changed', 'ends_at_changed', 'access_changed', 'joined', 'submitted', 'signed_in',
  'session_invalidated', 'blocked', 'unblocked', 'disconnected', 'reconnected', 'late_answer',
  'answer_imported', 'import_overridden', 'proctoring_changed', 'focus_lost', 'focus_regained',
  'fullscreen_exited', 'clipboard_blocked', 'displays_changed', 'app_restarted', 'capabilities',
  'accommodation_changed',
];

/** Mounts the page of evaluation `id` into `main`; returns an unmount function. */
export async function mountEvaluation(main, id, tab = 'board') {
  const cleanups = [];
  let evaluation = state.evaluations.get(id);
  try {
    evaluation = await api('GET', `/api/evaluations/${seg(id)}`);
    setEvaluation(evaluation);
  } catch (e) {
    replace(main, h('h1', { text: 'Evaluation' }),
      h('p', { class: 'message error', role: 'alert', text: `This evaluation cannot be shown: ${e.message}` }));
    return () => {};
  }

  const heading = h('h1');
  const meta = h('p', { class: 'meta' });
  const controls = h('div', { class: 'controls' });
  const notice = messageArea();
  const tabs = [
    ['board', 'Board'],
    ['audit', 'Audit log'],
    ['access', 'Access list'],
    ['edit', 'Edit'],
  ];
  const tabButtons = new Map();
  const panels = new Map();
  const tablist = h('div', { role: 'tablist', 'aria-label': 'Evaluation views' });
  for (const [key, label] of tabs) {
    const tabId = uid('tab');
    const panelId = uid('panel');
    const button = h('button', {
      type: 'button', role: 'tab', id: tabId, 'aria-controls': panelId, text: label,
      onclick: () => select(key, true),
      onkeydown: (event) => {
        const keys = tabs.map(([k]) => k);
        const at = keys.indexOf(key);
        const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: keys.length - 1 }[event.key];
        if (next === undefined) return;
        event.preventDefault();
        select(keys[(next + keys.length) % keys.length], true);
        tabButtons.get(keys[(next + keys.length) % keys.length]).focus();
      },
    });
    tabButtons.set(key, button);
    panels.set(key, h('section', { role: 'tabpanel', id: panelId, 'aria-labelledby': tabId, hidden: true }));
    tablist.append(button);
  }
  replace(main, h('div', { class: 'page-head' }, heading, meta), controls, notice.el, tablist, [...panels.values()]);

  function drawHead() {
    evaluation = state.evaluations.get(id) ?? evaluation;
    replace(heading, evaluation.title, ' ', h('span', { class: `badge phase ${evaluation.phase}`, text: PHASES[evaluation.phase] }));
    replace(meta,
      `Owner ${evaluation.owner} · `,
      evaluation.ends_at ? `Ends ${full(evaluation.ends_at)}` : 'No end time',
      ` · ${evaluation.access === 'open' ? 'Open to every student' : 'Access list only'}`,
      ` · ${evaluation.questions.length} ${evaluation.questions.length === 1 ? 'question' : 'questions'}`,
      ` · ${proctoringLine(evaluation.proctoring)}`);
    drawControls();
  }

  function drawControls() {
    const moves = (MOVES[evaluation.phase] ?? []).map(([to, label, consequence]) => h('button', {
      type: 'button', class: 'primary', text: label,
      onclick: () => ask({
        title: `${label}?`,
        body: `“${evaluation.title}” moves from ${PHASES[evaluation.phase]} to ${PHASES[to]}. ${consequence}`,
        confirm: label,
        danger: to !== 'in_progress',
        action: async () => setEvaluation(await api('POST', `/api/evaluations/${seg(id)}/phase`, { phase: to })),
      }),
    }));
    const extend = (minutes) => h('button', {
      type: 'button', text: `+${minutes} min`, 'aria-label': `Extend the end time by ${minutes} minutes`,
      onclick: async () => {
        notice.clear();
        try {
          const updated = await api('PUT', `/api/evaluations/${seg(id)}/ends_at`, { ends_at: later(evaluation.ends_at, minutes) });
          setEvaluation(updated);
          notice.ok(`The end time is now ${full(updated.ends_at)}.`);
        } catch (e) {
          notice.error(e.message);
        }
      },
    });
    const importInput = h('input', { type: 'file', accept: '.json,application/json', class: 'visually-hidden' });
    const [importField] = field('Import a desktop answers file', importInput);
    importField.classList.add('file-button');
    importInput.addEventListener('change', async () => {
      const file = importInput.files[0];
      importInput.value = '';
      if (file) await importAnswers(id, await file.text(), notice);
    });
    replace(controls,
      h('div', { class: 'group', role: 'group', 'aria-label': 'Phase' }, moves.length ? moves : h('span', { class: 'hint', text: 'This evaluation is finished.' })),
      evaluation.phase === 'finished' ? null : h('div', { class: 'group', role: 'group', 'aria-label': 'End time' }, h('span', { text: 'End time:' }), extend(5), extend(15)),
      h('div', { class: 'group', role: 'group', 'aria-label': 'Files' },
        h('a', { class: 'button', href: `/api/evaluations/${seg(id)}/exports/answers.csv`, download: '', text: 'Export answers (CSV)' }),
        importField));
  }

  const mounted = new Map();
  function select(key, remember) {
    for (const [k, button] of tabButtons) {
      const on = k === key;
      button.setAttribute('aria-selected', String(on));
      button.tabIndex = on ? 0 : -1;
      panels.get(k).hidden = !on;
    }
    if (!mounted.has(key)) {
      const panel = panels.get(key);
      if (key === 'board') mounted.set(key, mountBoard(panel, id));
      if (key === 'audit') mounted.set(key, mountAudit(panel, id));
      if (key === 'access') mounted.set(key, mountAccess(panel, id));
      if (key === 'edit') mounted.set(key, mountEdit(panel));
    }
    if (remember) history.replaceState(null, '', `#/evaluations/${encodeURIComponent(id)}/${key}`);
  }

  function mountEdit(panel) {
    const draw = () => mountEditor(panel, state.evaluations.get(id), () => {});
    draw();
    return () => {};
  }

  drawHead();
  select(tabs.some(([k]) => k === tab) ? tab : 'board', false);
  cleanups.push(subscribe((kind, detail) => {
    if (kind === 'evaluation' && detail === id) drawHead();
  }));
  return () => {
    for (const fn of cleanups) fn();
    for (const fn of mounted.values()) fn?.();
  };
}

/** "Proctoring: fullscreen, report leaving the window (brief under 2000 ms)" or "No proctoring". */
export function proctoringLine(proctoring) {
  const on = SETTINGS.filter(([key]) => proctoring?.[key]).map(([, label]) => label.toLowerCase());
  if (on.length === 0) return 'No proctoring';
  const brief = proctoring.report_focus ? ` (brief under ${proctoring.brief_ms} ms)` : '';
  return `Proctoring: ${on.join(', ')}${brief}`;
}

/** The refusals of an import that an override with a reason can lift: the student is blocked or has handed in. */
const OVERRIDABLE = new Set(['blocked', 'not_participating']);

async function importAnswers(id, text, notice) {
  notice.clear();
  const path = `/api/evaluations/${seg(id)}/imports/answers`;
  try {
    let report;
    try {
      report = await api('POST', path, text);
    } catch (e) {
      if (!OVERRIDABLE.has(e.code)) throw e;
      report = await askOverride(path, text, e.message);
      if (!report) {
        notice.error(`The file was not imported: ${e.message}`);
        return;
      }
    }
    const item = (a, extra) => h('li', {}, `Question ${a.question_id}, revision ${a.revision}`, extra);
    show({
      title: `Imported answers of ${report.username}`,
      content: h('div', {},
        h('p', { text: `From ${report.device}: ${report.stored.length} stored, ${report.skipped.length} skipped.` }),
        report.stored.length ? [h('h3', { text: 'Stored' }),
          h('ul', {}, report.stored.map((a) => item(a, a.late ? ' (late)' : '')))] : null,
        report.skipped.length ? [h('h3', { text: 'Skipped' }),
          h('ul', {}, report.skipped.map((a) => item(a, `: ${a.reason}`)))] : null),
    });
  } catch (e) {
    notice.error(`The file could not be imported: ${e.message}`);
  }
}

/** Offers to import anyway, with a reason for the audit log; resolves to the report, or null if cancelled. */
function askOverride(path, text, refusal) {
  const [reasonField, reason] = field('Reason for the audit log', h('textarea', { rows: 3, maxlength: 1000, required: true }),
    'Why these answers should be stored anyway, e.g. "The lab computer lost the network; checked with the invigilator." Your name and this reason are kept in the audit log.');
  let report = null;
  return ask({
    title: 'Import anyway?',
    body: refusal,
    confirm: 'Import anyway',
    danger: true,
    fields: [reasonField],
    action: async () => {
      const why = reason.value.trim();
      if (!why) throw new Error('Give a reason: it is kept in the audit log with your name.');
      report = await api('POST', `${path}?override=${encodeURIComponent(why)}`, text);
    },
  }).then((done) => (done ? report : null));
}

function mountAudit(panel, id) {
  const [kindField, kind] = field('Kind', h('select', {},
    h('option', { value: '', text: 'Every kind' }),
    KINDS.map((k) => h('option', { value: k, text: k.replaceAll('_', ' ') }))));
  const [studentField, student] = field('Student', h('input', { type: 'search', placeholder: 'username' }));
  const [actorField, actor] = field('Actor', h('input', { type: 'search', placeholder: 'username' }));
  const exportLink = h('a', { class: 'button', download: '', text: 'Export audit log (CSV)' });
  const refreshButton = h('button', { type: 'button', text: 'Refresh', onclick: () => load() });
  const status = h('p', { class: 'summary', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody');
  const error = h('p', { class: 'message error', role: 'alert', hidden: true });
  replace(panel,
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Audit filters', onsubmit: (e) => { e.preventDefault(); load(); } },
      kindField, studentField, actorField, refreshButton, exportLink),
    status, error,
    h('div', { class: 'table-wrap' }, h('table', { class: 'audit' },
      h('caption', { text: 'Audit log' }),
      h('thead', {}, h('tr', {}, ['Time', 'Kind', 'Student', 'Actor', 'Detail'].map((t) => h('th', { scope: 'col', text: t })))),
      body)));

  function query() {
    const params = new URLSearchParams();
    if (kind.value) params.set('kind', kind.value);
    if (student.value.trim()) params.set('username', student.value.trim());
    if (actor.value.trim()) params.set('actor', actor.value.trim());
    const text = params.toString();
    return text ? `?${text}` : '';
  }

  let loading = null;
  async function load() {
    exportLink.href = `/api/evaluations/${seg(id)}/exports/audit.csv${query()}`;
    const mine = Symbol('load');
    loading = mine;
    try {
      const entries = await api('GET', `/api/evaluations/${seg(id)}/audit${query()}`);
      if (loading !== mine) return;
      error.hidden = true;
      status.textContent = `${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}`;
      replace(body, entries.slice().reverse().map((e) => h('tr', {},
        h('td', { text: when(e.at) }),
        h('td', { text: e.kind.replaceAll('_', ' ') }),
        h('td', { text: e.username ?? '—' }),
        h('td', { text: e.actor ?? 'server' }),
        h('td', { text: e.detail }))));
    } catch (e) {
      error.textContent = `The audit log could not be loaded: ${e.message}`;
      error.hidden = false;
    }
  }
  kind.addEventListener('change', load);
  student.addEventListener('input', debounce(load, 300));
  actor.addEventListener('input', debounce(load, 300));
  // New entries come with the changes the live connection reports: load again after them.
  const reload = debounce(() => { if (!panel.hidden) load(); }, 400);
  const unsubscribe = subscribe((what, detail) => {
    if ((what === 'board' || what === 'evaluation') && detail === id) reload();
  });
  const visible = new MutationObserver(() => { if (!panel.hidden) load(); });
  visible.observe(panel, { attributes: true, attributeFilter: ['hidden'] });
  load();
  return () => { unsubscribe(); visible.disconnect(); };
}

function mountAccess(panel, id) {
  const messages = messageArea();
  const [listField, list] = field('Students on the access list', h('textarea', { rows: 10, spellcheck: false }),
    'Usernames, one a line (commas and spaces separate them too).');
  const upload = h('input', { type: 'file', accept: '.csv,.txt,text/csv,text/plain' });
  const [uploadField] = field('Add usernames from a CSV file', upload,
    'The column named "username", or else the first column, is read.');
  const save = h('button', { type: 'submit', class: 'primary', text: 'Save the access list' });
  const note = h('p', { class: 'hint' });
  const form = h('form', { class: 'access', 'aria-label': 'Access list' }, note, listField, uploadField, messages.el, h('div', { class: 'actions' }, save));
  replace(panel, form);

  const names = () => [...new Set(list.value.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];
  const drawNote = () => {
    const evaluation = state.evaluations.get(id);
    note.textContent = evaluation?.access === 'open'
      ? 'This evaluation is open to every student; the list applies if it goes back to list mode.'
      : 'Only these students may join.';
  };
  upload.addEventListener('change', async () => {
    const file = upload.files[0];
    upload.value = '';
    if (!file) return;
    const added = usernamesFromCsv(await file.text());
    list.value = [...new Set([...names(), ...added])].join('\n');
    messages.ok(`${added.length} usernames read from ${file.name}; save to apply.`);
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    messages.clear();
    save.disabled = true;
    try {
      const result = await api('PUT', `/api/evaluations/${seg(id)}/access`, { students: names() });
      list.value = result.students.join('\n');
      messages.ok(`Saved: ${result.students.length} ${result.students.length === 1 ? 'student' : 'students'} on the list.`);
    } catch (e) {
      messages.error(e.message);
    } finally {
      save.disabled = false;
    }
  });
  drawNote();
  const unsubscribe = subscribe((kind, detail) => { if (kind === 'evaluation' && detail === id) drawNote(); });
  api('GET', `/api/evaluations/${seg(id)}/access`)
    .then((result) => { list.value = result.students.join('\n'); })
    .catch((e) => messages.error(`The access list could not be loaded: ${e.message}`));
  return unsubscribe;
}

/** The usernames of a CSV file: its `username` column, or else its first column. */
export function usernamesFromCsv(text) {
  const rows = text.replace(/^\uFEFF/, '').split(/\r?\n/).map((line) => line.split(/[,;\t]/).map((c) => c.trim().replace(/^"|"$/g, '')));
  const header = rows[0]?.map((c) => c.toLowerCase()) ?? [];
  const at = header.indexOf('username');
  const data = at >= 0 ? rows.slice(1) : rows;
  return data.map((r) => r[Math.max(at, 0)]).filter(Boolean);
}

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}
