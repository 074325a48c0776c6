// The console's entry: sign-in, the page frame, the routes (#/, #/evaluations/new,
// #/evaluations/ID[/tab], #/users), and the screen shown when the session has ended.

import { api, onSessionEnded } from './api.js';
import { field, h, messageArea, replace } from './dom.js';
import { mountEditor } from './editor.js';
import { PHASES, mountEvaluation } from './evaluation.js';
import { startLive } from './live.js';
import { setEvaluation, state, subscribe } from './state.js';
import { full } from './time.js';
import { mountUsers } from './users.js';

const main = document.getElementById('main');
const bar = document.getElementById('bar');
const liveStatus = document.getElementById('live-status');
let live = null;
let unmount = () => {};
let ended = false;

const LIVE = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', offline: 'Offline' };

function signInScreen(reason) {
  bar.hidden = true;
  const messages = messageArea();
  const [userField, username] = field('Username', h('input', { type: 'text', autocomplete: 'username', required: true }));
  const [passField, password] = field('Password', h('input', { type: 'password', autocomplete: 'current-password', required: true }));
  const form = h('form', { class: 'card sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title', text: 'Sign in to the invigil console' }),
    reason ? h('p', { class: 'hint', text: reason }) : null,
    userField, passField, messages.el,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', text: 'Sign in' })));
  // A busy server (503 `server_busy`, many people signing in at once) is asked again on its own
  // after its Retry-After, plus a random share of it so that a room does not come back at once;
  // the countdown shows meanwhile, and a new submit or an edit cancels it.
  let retry = null;
  const cancelRetry = () => {
    clearInterval(retry);
    retry = null;
  };
  const retryWhenFree = (seconds) => {
    const base = Math.max(1, seconds ?? 5);
    const due = Date.now() + (base + Math.random() * base * 0.5) * 1000;
    const show = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      if (left === 0) {
        cancelRetry();
        signIn();
        return;
      }
      messages.wait(`The server is busy, trying again in ${left} s.`);
    };
    cancelRetry();
    retry = setInterval(show, 250);
    show();
  };
  const signIn = async () => {
    try {
      const login = await api('POST', '/api/login', {
        username: username.value.trim(),
        password: password.value,
        device: 'console',
      }, { quietAuth: true });
      if (login.user.role === 'student') {
        await api('POST', '/api/logout', undefined, { quietAuth: true }).catch(() => {});
        messages.error('The console is for professors and admins; students use the invigil desktop app.');
        return;
      }
      start(login.user);
    } catch (e) {
      if (e.code === 'server_busy') retryWhenFree(e.retryAfter);
      else messages.error(e.message);
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    cancelRetry();
    messages.clear();
    signIn();
  });
  form.addEventListener('input', () => {
    if (retry) {
      cancelRetry();
      messages.clear();
    }
  });
  replace(main, form);
  username.focus();
}

function endedScreen(sentence) {
  if (ended) return;
  ended = true;
  live?.stop();
  unmount();
  bar.hidden = true;
  const again = h('button', { type: 'button', class: 'primary', text: 'Sign in again', onclick: () => location.reload() });
  replace(main, h('section', { class: 'card ended', role: 'alert', 'aria-labelledby': 'ended-title' },
    h('h1', { id: 'ended-title', text: 'Your session has ended' }),
    h('p', { text: sentence }),
    h('p', { text: 'Nothing you saved is lost. Sign in again to go on.' }),
    again));
  again.focus();
}

onSessionEnded((error) => {
  if (state.me) endedScreen(error.message);
});

function start(me) {
  state.me = me;
  ended = false;
  bar.hidden = false;
  document.getElementById('who').textContent = `${me.display_name} (${me.role})`;
  document.getElementById('nav-users').hidden = me.role !== 'admin';
  live = startLive({ onEnded: endedScreen });
  route();
}

subscribe((kind, detail) => {
  if (kind === 'live') {
    liveStatus.textContent = LIVE[detail] ?? detail;
    liveStatus.className = `live ${detail}`;
    liveStatus.title = state.transport === 'stream'
      ? 'Live through the event stream: another tab of this session holds the socket.'
      : 'Live through the socket.';
  }
});

document.getElementById('sign-out').addEventListener('click', async () => {
  live?.stop();
  try {
    await api('POST', '/api/logout', undefined, { quietAuth: true });
  } catch {
    // Already signed out.
  }
  state.me = null;
  unmount();
  signInScreen('You signed out.');
});

async function route() {
  if (!state.me || ended) return;
  unmount();
  unmount = () => {};
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll('nav a')) a.removeAttribute('aria-current');
  if (parts[0] === 'users' && state.me.role === 'admin') {
    document.getElementById('nav-users').setAttribute('aria-current', 'page');
    document.title = 'Users · invigil';
    unmount = mountUsers(main);
  } else if (parts[0] === 'evaluations' && parts[1] === 'new') {
    document.title = 'New evaluation · invigil';
    replace(main, h('h1', { text: 'New evaluation' }), h('div', { id: 'editor' }));
    mountEditor(main.querySelector('#editor'), null, (e) => { location.hash = `#/evaluations/${encodeURIComponent(e.id)}/access`; });
  } else if (parts[0] === 'evaluations' && parts[1]) {
    document.title = 'Evaluation · invigil';
    const cleanup = await mountEvaluation(main, parts[1], parts[2]);
    unmount = cleanup;
    const e = state.evaluations.get(parts[1]);
    if (e) document.title = `${e.title} · invigil`;
  } else {
    document.getElementById('nav-evaluations').setAttribute('aria-current', 'page');
    document.title = 'Evaluations · invigil';
    unmount = await mountList();
  }
  main.focus({ preventScroll: true });
}

async function mountList() {
  const messages = messageArea();
  const body = h('tbody');
  const mine = h('input', { type: 'checkbox', checked: state.me.role !== 'admin' });
  replace(main,
    h('div', { class: 'page-head' },
      h('h1', { text: 'Evaluations' }),
      h('a', { class: 'button primary', href: '#/evaluations/new', text: 'New evaluation' })),
    h('label', { class: 'choice' }, mine, ' Only evaluations I own'),
    messages.el,
    h('div', { class: 'table-wrap' }, h('table', { class: 'evaluations' },
      h('caption', { text: 'Evaluations' }),
      h('thead', {}, h('tr', {}, ['Title', 'Phase', 'Owner', 'End time', 'Access'].map((t) => h('th', { scope: 'col', text: t })))),
      body)));
  const draw = () => {
    const rows = [...state.evaluations.values()]
      .filter((e) => !mine.checked || e.owner === state.me.username)
      .sort((a, b) => a.title.localeCompare(b.title));
    replace(body, rows.length ? rows.map((e) => h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `#/evaluations/${encodeURIComponent(e.id)}`, text: e.title })),
      h('td', {}, h('span', { class: `badge phase ${e.phase}`, text: PHASES[e.phase] })),
      h('td', { text: e.owner }),
      h('td', { text: e.ends_at ? full(e.ends_at) : 'none' }),
      h('td', { text: e.access === 'open' ? 'Every student' : 'Access list' })))
      : h('tr', {}, h('td', { colspan: 5, class: 'empty', text: 'No evaluation yet.' })));
  };
  mine.addEventListener('change', draw);
  const load = async () => {
    try {
      for (const e of await api('GET', '/api/evaluations')) setEvaluation(e);
      draw();
    } catch (e) {
      messages.error(`The evaluations could not be loaded: ${e.message}`);
    }
  };
  const unsubscribe = subscribe((kind) => {
    if (kind === 'evaluation') draw();
    if (kind === 'resync') load();
  });
  draw();
  await load();
  return unsubscribe;
}

window.addEventListener('hashchange', route);

(async () => {
  try {
    const me = await api('GET', '/api/me', undefined, { quietAuth: true });
    if (me.role === 'student') signInScreen('The console is for professors and admins; students use the invigil desktop app.');
    else start(me);
  } catch (e) {
    signInScreen(e.code === 'session_expired' || e.code === 'session_invalidated' ? e.message : null);
  }
})();
