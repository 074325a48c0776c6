// Creating and editing an evaluation: title, end time, access mode, questions (text, code, or
// choice) and proctoring (what the student's desktop app reports). Questions can change only while
// the evaluation is a draft; proctoring can change at any time (students' apps follow live).

import { api, seg } from './api.js';
import { field, h, messageArea, replace, uid } from './dom.js';
import { setEvaluation } from './state.js';
import { fromLocalInput, toLocalInput } from './time.js';

const KINDS = { text: 'Text', code: 'Code', choice: 'Choice' };

/** The proctoring switches, in the contract's order, with what each means for the student. */
export const SETTINGS = [
  ['fullscreen', 'Fullscreen', 'The exam window is fullscreen and stays above other windows; leaving fullscreen is reported.'],
  ['report_focus', 'Report leaving the window', 'Each time the student leaves the exam window is reported, with the time away.'],
  ['block_clipboard', 'Block the clipboard', 'Copying or pasting between the exam and other programs is refused and reported (inside the exam it still works).'],
  ['single_display', 'Single display', 'The number of displays is reported, and the student is asked to disconnect extra ones.'],
];

/** The default and the largest `brief_ms` the server takes. */
export const BRIEF_MS = { default: 2000, max: 60000 };

/** `brief_ms` from the field's text; throws a sentence naming the limits when it is not one. */
export function briefMs(text) {
  const value = text.trim();
  if (!/^\d+$/.test(value) || Number(value) > BRIEF_MS.max) {
    throw new Error(`The brief interruption threshold must be a whole number of milliseconds from 0 to ${BRIEF_MS.max} (now "${value}").`);
  }
  return Number(value);
}

/** Mounts the form into `container`. `evaluation` is null for a new one. `done(evaluation)` is
 *  called after a successful save. */
export function mountEditor(container, evaluation, done) {
  const draft = !evaluation || evaluation.phase === 'draft';
  const messages = messageArea();
  const [titleField, title] = field('Title', h('input', { type: 'text', required: true, maxLength: 200, value: evaluation?.title ?? '' }));
  const [endField, end] = field('End time', h('input', { type: 'datetime-local', value: toLocalInput(evaluation?.ends_at) }),
    'Answers saved after this time are kept and marked late. Leave empty for no end time.');
  const name = uid('access');
  const radio = (value, label) => {
    const input = h('input', { type: 'radio', name, value, checked: (evaluation?.access ?? 'list') === value });
    return h('label', { class: 'choice' }, input, ` ${label}`);
  };
  const access = h('fieldset', {},
    h('legend', { text: 'Who may sit it' }),
    radio('list', 'Only the students on its access list'),
    radio('open', 'Every student'));

  const proctoring = evaluation?.proctoring ?? {};
  const switches = SETTINGS.map(([key, label, hint]) => {
    const input = h('input', { type: 'checkbox', checked: proctoring[key] === true, 'data-setting': key });
    const hintId = uid('hint');
    input.setAttribute('aria-describedby', hintId);
    return [key, input, h('div', { class: 'check' },
      h('label', { class: 'choice' }, input, ` ${label}`),
      h('p', { class: 'hint', id: hintId, text: hint }))];
  });
  const [briefField, brief] = field('Brief interruption threshold (milliseconds)',
    h('input', { type: 'text', inputMode: 'numeric', value: String(proctoring.brief_ms ?? BRIEF_MS.default) }),
    `An absence from the window shorter than this is still reported but counted apart as brief (an OS notification, say). Default ${BRIEF_MS.default}, at most ${BRIEF_MS.max}.`);
  const proctoringSet = h('fieldset', { class: 'proctoring' },
    h('legend', { text: 'Proctoring (desktop app)' }),
    h('p', { class: 'hint', text: 'What the student’s app reports while they sit the exam. It observes and never punishes: no report blocks, ends or submits anything; you judge. The student sees what is reported.' }),
    switches.map(([, , el]) => el),
    briefField);

  const list = h('ol', { class: 'questions' });
  const questions = (evaluation?.questions ?? []).map((q) => ({ ...q }));
  const addButton = h('button', { type: 'button', text: 'Add a question', onclick: () => {
    questions.push({ id: freeId(), prompt: '', kind: 'text' });
    drawQuestions();
    list.lastElementChild?.querySelector('textarea')?.focus();
  } });
  const questionSet = h('fieldset', { class: 'question-set', disabled: !draft },
    h('legend', { text: 'Questions' }),
    draft ? null : h('p', { class: 'hint', text: 'Questions are fixed once the evaluation has started; the title, the end time and the access mode can still change.' }),
    list,
    addButton);

  function freeId() {
    let n = questions.length + 1;
    while (questions.some((q) => q.id === `q${n}`)) n += 1;
    return `q${n}`;
  }

  function drawQuestions() {
    replace(list, questions.map((q, i) => {
      const [promptField, prompt] = field(`Question ${i + 1}`, h('textarea', { rows: 2, value: q.prompt, required: true }));
      prompt.addEventListener('input', () => { q.prompt = prompt.value; });
      const [kindField, kind] = field(`Kind of question ${i + 1}`, h('select', {},
        Object.entries(KINDS).map(([value, label]) => h('option', { value, text: label, selected: q.kind === value }))));
      const [choicesField, choices] = field(`Choices of question ${i + 1}`,
        h('textarea', { rows: 3, value: (q.choices ?? []).map((c) => c.label).join('\n') }),
        'One choice a line; at least two.');
      choicesField.hidden = q.kind !== 'choice';
      kind.addEventListener('change', () => {
        q.kind = kind.value;
        choicesField.hidden = q.kind !== 'choice';
      });
      choices.addEventListener('input', () => {
        const labels = choices.value.split('\n').map((l) => l.trim()).filter(Boolean);
        const old = q.choices ?? [];
        q.choices = labels.map((label, n) => ({ id: old[n]?.id ?? String.fromCharCode(97 + (n % 26)) + (n >= 26 ? n : ''), label }));
      });
      const move = (delta) => {
        const j = i + delta;
        if (j < 0 || j >= questions.length) return;
        [questions[i], questions[j]] = [questions[j], questions[i]];
        drawQuestions();
      };
      return h('li', { class: 'question' },
        promptField, kindField, choicesField,
        h('div', { class: 'row-actions' },
          h('button', { type: 'button', 'aria-label': `Move question ${i + 1} up`, text: 'Up', disabled: i === 0, onclick: () => move(-1) }),
          h('button', { type: 'button', 'aria-label': `Move question ${i + 1} down`, text: 'Down', disabled: i === questions.length - 1, onclick: () => move(1) }),
          h('button', { type: 'button', 'aria-label': `Remove question ${i + 1}`, text: 'Remove', onclick: () => { questions.splice(i, 1); drawQuestions(); } })));
    }));
  }
  drawQuestions();

  const save = h('button', { type: 'submit', class: 'primary', text: evaluation ? 'Save changes' : 'Create evaluation' });
  const form = h('form', { class: 'editor', 'aria-label': evaluation ? 'Edit the evaluation' : 'New evaluation' },
    titleField, endField, access, proctoringSet, questionSet, messages.el, h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    messages.clear();
    let body;
    try {
      body = {
        title: title.value.trim(),
        ends_at: fromLocalInput(end.value),
        access: form.querySelector(`input[name="${name}"]:checked`).value,
        proctoring: {
          ...Object.fromEntries(switches.map(([key, input]) => [key, input.checked])),
          brief_ms: briefMs(brief.value),
        },
      };
      if (draft) {
        body.questions = questions.map((q) => ({
          id: q.id,
          prompt: q.prompt.trim(),
          kind: q.kind,
          ...(q.kind === 'choice' ? { choices: q.choices ?? [] } : {}),
        }));
      }
    } catch (e) {
      messages.error(e.message);
      return;
    }
    save.disabled = true;
    try {
      const saved = evaluation
        ? await api('PATCH', `/api/evaluations/${seg(evaluation.id)}`, body)
        : await api('POST', '/api/evaluations', body);
      setEvaluation(saved);
      messages.ok(evaluation ? 'Saved.' : 'Created.');
      done(saved);
    } catch (e) {
      messages.error(e.message);
    } finally {
      save.disabled = false;
    }
  });
  replace(container, form);
}
