// Users, for admins: the list with live session counts, creating one user, importing students from
// a CSV roster, resetting a password, ending someone's sessions.

import { api, seg } from './api.js';
import { ask, field, h, messageArea, replace } from './dom.js';

const ROLES = { student: 'Student', professor: 'Professor', admin: 'Admin' };

export function mountUsers(main) {
  const body = h('tbody');
  const listError = messageArea();
  const status = h('p', { class: 'summary', role: 'status', 'aria-live': 'polite' });
  const [findField, find] = field('Find a user', h('input', { type: 'search', placeholder: 'Name or username' }));
  const [roleField, roleFilter] = field('Role', h('select', {},
    h('option', { value: '', text: 'Every role' }),
    Object.entries(ROLES).map(([value, text]) => h('option', { value, text }))));
  let users = [];

  replace(main,
    h('h1', { text: 'Users' }),
    h('div', { class: 'columns' }, createForm(load), importForm(load)),
    h('h2', { text: 'Everyone' }),
    h('div', { class: 'filters' }, findField, roleField,
      h('button', { type: 'button', text: 'Refresh the list', onclick: () => load() })),
    status, listError.el,
    h('div', { class: 'table-wrap' }, h('table', { class: 'users' },
      h('caption', { text: 'Users' }),
      h('thead', {}, h('tr', {}, ['Username', 'Name', 'Role', 'Live sessions', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      body)));

  function draw() {
    const text = find.value.trim().toLowerCase();
    const shown = users.filter((u) => (!roleFilter.value || u.role === roleFilter.value)
      && (!text || `${u.username} ${u.display_name}`.toLowerCase().includes(text)));
    status.textContent = `${shown.length} of ${users.length} users`;
    replace(body, shown.map((u) => h('tr', { 'data-username': u.username },
      h('th', { scope: 'row', text: u.username }),
      h('td', { text: u.display_name }),
      h('td', { text: ROLES[u.role] ?? u.role }),
      h('td', { class: 'num', text: String(u.active_sessions) }),
      h('td', {}, h('div', { class: 'row-actions' },
        h('button', { type: 'button', text: 'Reset password', 'aria-label': `Reset the password of ${u.username}`, onclick: () => resetPassword(u, load) }),
        h('button', { type: 'button', text: 'End sessions', 'aria-label': `End the sessions of ${u.username}`, disabled: u.active_sessions === 0, onclick: () => revoke(u, load) }))))));
  }
  find.addEventListener('input', draw);
  roleFilter.addEventListener('change', draw);

  async function load() {
    try {
      users = await api('GET', '/api/users');
      listError.clear();
      draw();
    } catch (e) {
      listError.error(`The users could not be loaded: ${e.message}`);
    }
  }
  load();
  return () => {};
}

function createForm(reload) {
  const messages = messageArea();
  const [nameField, username] = field('Username', h('input', { type: 'text', required: true, autocomplete: 'off' }));
  const [displayField, display] = field('Display name', h('input', { type: 'text', autocomplete: 'off' }));
  const [roleField, role] = field('Role', h('select', {}, Object.entries(ROLES).map(([value, text]) => h('option', { value, text }))));
  const [passwordField, password] = field('Password', h('input', { type: 'password', required: true, autocomplete: 'new-password' }));
  const form = h('form', { class: 'card', 'aria-labelledby': 'create-user-title' },
    h('h2', { id: 'create-user-title', text: 'Create a user' }),
    nameField, displayField, roleField, passwordField, messages.el,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Create user' })));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    messages.clear();
    try {
      const user = await api('POST', '/api/users', {
        username: username.value.trim(),
        password: password.value,
        role: role.value,
        display_name: display.value.trim() || null,
      });
      messages.ok(`Created ${user.username} (${ROLES[user.role]}).`);
      form.reset();
      reload();
    } catch (e) {
      messages.error(e.message);
    }
  });
  return form;
}

function importForm(reload) {
  const messages = messageArea();
  const [fileField, file] = field('Students CSV file', h('input', { type: 'file', accept: '.csv,text/csv,text/plain', required: true }),
    'Columns username,display_name,password with a header line. All or nothing: any faulty line is reported and nobody is created.');
  const form = h('form', { class: 'card', 'aria-labelledby': 'import-users-title' },
    h('h2', { id: 'import-users-title', text: 'Import students' }),
    fileField, messages.el,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Import students' })));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    messages.clear();
    const chosen = file.files[0];
    if (!chosen) {
      messages.error('Choose a CSV file first.');
      return;
    }
    try {
      const result = await api('POST', '/api/users/import', await chosen.text());
      messages.ok(`Imported ${result.created.length} students.`);
      form.reset();
      reload();
    } catch (e) {
      messages.error(e.message, e.lines);
    }
  });
  return form;
}

function resetPassword(user, reload) {
  const [passwordField, password] = field('New password', h('input', { type: 'password', required: true, autocomplete: 'new-password' }));
  const revoke = h('input', { type: 'checkbox', checked: true });
  const revokeField = h('label', { class: 'choice' }, revoke, ' Also end their sessions (recommended: whoever knew the old password is signed out)');
  return ask({
    title: `Reset the password of ${user.username}`,
    confirm: 'Reset password',
    fields: [passwordField, revokeField],
    action: async () => {
      const done = await api('POST', `/api/users/${seg(user.username)}/password`, {
        password: password.value,
        revoke_sessions: revoke.checked,
      });
      reload();
      return done;
    },
  });
}

function revoke(user, reload) {
  return ask({
    title: `End the sessions of ${user.username}?`,
    body: 'Every device signed in as this user is signed out at once. A student who signs in again during a running evaluation is blocked until unblocked.',
    confirm: 'End sessions',
    danger: true,
    action: async () => {
      await api('POST', `/api/users/${seg(user.username)}/revoke`);
      reload();
    },
  });
}
