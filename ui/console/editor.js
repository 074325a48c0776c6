// Creating and editing an evaluation: title, end time, access mode and questions (text, code, or
// choice). Questions can change only while the evaluation is a draft.

import { api, seg } from './api.js';
import { field, h, messageArea, replace, uid } from './dom.js';
import { setEvaluation } from './state.js';
import { fromLocalInput, toLocalInput } from './time.js';

const KINDS = { text: 'Text', code: 'Code', choice: 'Choice' };

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
    titleField, endField, access, questionSet, messages.el, h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    messages.clear();
    let body;
    try {
      body = {
        title: title.value.trim(),
        ends_at: fromLocalInput(end.value),
        access: form.querySelector(`input[name="${name}"]:checked`).value,
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
