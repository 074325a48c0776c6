// Building the page safely: text always goes in as text (never as HTML), so nothing a student
// writes can run in the console.

/** Creates an element: `attrs` sets properties, attributes (`aria-*`, `data-*`, `role`, …) and
 *  `on…` listeners; children are nodes, strings or arrays of them (null and false are skipped). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'text') {
      el.textContent = value;
    } else if (key === 'for') {
      el.htmlFor = value;
    } else if (key in el && !key.includes('-') && key !== 'list' && key !== 'form') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A fresh id for label/aria wiring. */
export function uid(prefix = 'id') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled form field; returns [wrapper, input]. */
export function field(label, input, hint) {
  const id = input.id || uid('field');
  input.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${id}-hint`, text: hint });
    input.setAttribute('aria-describedby', hintEl.id);
  }
  return [h('div', { class: 'field' }, h('label', { for: id, text: label }), input, hintEl), input];
}

/** An area where errors and results are announced. */
export function messageArea() {
  const el = h('div', { class: 'message', role: 'alert', hidden: true });
  return {
    el,
    error(text, lines) {
      el.className = 'message error';
      replace(el, h('p', { text }));
      if (lines?.length) {
        el.append(h('ul', {}, lines.map((l) => h('li', { text: `Line ${l.line}: ${l.message}` }))));
      }
      el.hidden = false;
    },
    ok(text) {
      el.className = 'message ok';
      replace(el, h('p', { text }));
      el.hidden = false;
    },
    wait(text) {
      el.className = 'message wait';
      replace(el, h('p', { text }));
      el.hidden = false;
    },
    clear() {
      el.hidden = true;
      el.replaceChildren();
    },
  };
}

/** A modal dialog asking to confirm. `fields` adds inputs (built by the caller) whose values are
 *  read by `collect`. Resolves with `collect()`'s result (or true), or null when cancelled. The
 *  `action` runs before the dialog closes; an error it throws is shown in the dialog. */
export function ask({ title, body, confirm, danger = false, fields = [], action }) {
  return new Promise((resolve) => {
    const titleId = uid('dialog-title');
    const messages = messageArea();
    const confirmButton = h('button', {
      type: 'submit',
      class: danger ? 'danger' : 'primary',
      text: confirm,
    });
    const cancel = h('button', { type: 'button', text: 'Cancel' });
    const form = h('form', { method: 'dialog' },
      h('h2', { id: titleId, text: title }),
      body ? h('p', { text: body }) : null,
      fields,
      messages.el,
      h('div', { class: 'actions' }, cancel, confirmButton));
    const dialog = h('dialog', { 'aria-labelledby': titleId }, form);
    let result = null;
    const close = () => {
      dialog.close();
    };
    cancel.addEventListener('click', () => { result = null; close(); });
    dialog.addEventListener('close', () => { dialog.remove(); resolve(result); });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      confirmButton.disabled = true;
      try {
        result = action ? await action() : true;
        if (result === undefined) result = true;
        close();
      } catch (e) {
        messages.error(e.message, e.lines);
        confirmButton.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Shows a modal dialog with content and a Close button. */
export function show({ title, content, wide = false }) {
  const titleId = uid('dialog-title');
  const dialog = h('dialog', { 'aria-labelledby': titleId, class: wide ? 'wide' : '' },
    h('div', { class: 'dialog-head' },
      h('h2', { id: titleId, text: title }),
      h('button', { type: 'button', text: 'Close', onclick: () => dialog.close() })),
    content);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}
