// invigil student app. Plain ES module, no build step: talks to the engine through Tauri's
// global API (withGlobalTauri), renders from the engine's overview and events.
//
// The engine is the source of truth for everything but the text being typed: the editors keep
// what the student types and pass every change on (edit_answer); the engine says where each
// answer is (on this computer, on the server).

import { startProctor } from "./proctor.js";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const $ = (id) => document.getElementById(id);

/** Creates an element: h("p", {class: "x"}, "text", child). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------------------------------------------------------------------------------------------
// State

const state = {
  overview: null, // the engine's Overview
  screen: null, // "sign-in" | "list" | "exam" | "blocked" | "ended"
  examId: null, // the open exam
  contents: new Map(), // questionId -> text, for the open exam
  answers: new Map(), // questionId -> AnswerView, for the open exam
  displaced: new Map(), // questionId -> [{revision, content}]: the server's texts an answer replaced
  clock: { serverMs: Date.now(), at: performance.now() },
  signingIn: false,
  signInAgain: false, // the sign-in form asked for from the session-ended screen
  lastSeq: 0, // the number of the newest engine event (or overview) taken in
};

function serverNow() {
  return state.clock.serverMs + (performance.now() - state.clock.at);
}

function setClock(serverMs) {
  state.clock = { serverMs, at: performance.now() };
}

function evaluation(id) {
  return state.overview?.evaluations.find((e) => e.id === id) ?? null;
}

// ---------------------------------------------------------------------------------------------
// Words

const CONNECTION = {
  signed_out: "Not signed in",
  connecting: "Connecting to the server…",
  online: "Online: connected to the server",
  no_network: "No network: this computer is offline",
  unreachable: "Server unreachable",
  session_ended: "Session ended",
};

const ENDED = {
  signed_in_elsewhere: "You signed in on another device, so this computer was signed out.",
  signed_out: "You were signed out.",
  revoked_by_admin: "An administrator ended your session.",
  session_invalidated:
    "Your session was ended while this computer was not connected (for example by a sign-in on another device).",
  session_expired: "Your session expired.",
  unauthenticated: "The server no longer knows this session.",
  sign_in_forgotten: "This computer could not keep your sign-in after the app was closed.",
  insecure_server:
    "The server's address starts with http:// and is not on this computer: the app no longer uses it, because your answers would cross the network unencrypted. Sign in with the server's https:// address; your answers are kept on this computer.",
};

const EXAM_LOCK = {
  closed: "The evaluation is closed: editing is locked. Everything you typed is kept.",
  submitted: "You handed in this evaluation.",
  no_access: "You are no longer on this evaluation's list. What you saved stays with your professor.",
  draft: "This evaluation has not started yet.",
  not_started: "This evaluation is running: press Start to begin.",
};

const REFUSED = {
  blocked: "blocked until your professor unblocks you",
  not_participating: "you are not taking part in this evaluation (anymore)",
  not_on_access_list: "you are no longer on this evaluation's list",
  not_found: "the server does not know this question",
  bad_request: "the server refused it",
  conflict: "the server holds another text for this question; reading it before saving yours above it",
};

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function duration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hours > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${minutes}:${two(seconds)}`;
}

function ago(since) {
  const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return minutes < 60 ? `${minutes} min ${seconds % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function signInMessage(error, serverUrl) {
  switch (error.kind) {
    case "invalid_credentials":
      return "Wrong username or password.";
    case "too_many_attempts":
      return `Too many failed attempts from this computer. ${error.message}`;
    case "network":
      return `Cannot reach the exam server at ${serverUrl}. Check the server address and this computer's network.`;
    case "invalid_server_url":
      return "That server address is not valid: it looks like https://exams.example.org.";
    case "untrusted_certificate":
      // The engine's sentence says what is wrong and what to ask the school for.
      return error.message;
    case "insecure_server":
      return `The app will not use ${serverUrl}: it starts with http:// and is not on this computer, so your password and answers would cross the network unencrypted, where others could read or change them. Use the server's https:// address. If your school runs its exam server without encryption on purpose, the computer must be set up for it (INVIGIL_ALLOW_INSECURE=1).`;
    case "not_a_student":
      return "This app is for students. Professors and administrators use the console in a browser.";
    case "already_signed_in":
      return error.message;
    default:
      return `Sign-in failed: ${error.message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

function show(screen) {
  if (state.screen === screen) return;
  state.screen = screen;
  // Read from the disk each time the sign-in screen appears: someone may have left answers since.
  if (screen === "sign-in") loadLeftBehind();
  else $("left-behind-list").replaceChildren();
  for (const name of ["sign-in", "list", "exam", "blocked", "ended"]) {
    $(`screen-${name}`).hidden = name !== screen;
  }
  const first = {
    "sign-in": $("login-username"),
    list: document.querySelector("#evaluations button"),
    exam: document.querySelector("#questions textarea:not([readonly]), #questions input:not([disabled])"),
    blocked: null,
    ended: $("ended-sign-in"),
  }[screen];
  first?.focus();
}

function render() {
  renderScreens();
  renderCountdown();
}

function renderScreens() {
  const o = state.overview;
  if (!o) return;
  renderChrome(o);
  if (o.session.ended && !state.signInAgain) {
    renderEnded(o);
    show("ended");
    return;
  }
  if (!o.session.signedIn) {
    $("login-server").value ||= o.session.serverUrl;
    show("sign-in");
    return;
  }
  const current = state.examId && evaluation(state.examId);
  if (current && current.exam === "blocked") {
    $("blocked-waiting").textContent = current.pending
      ? `${plural(current.pending, "answer is", "answers are")} waiting on this computer; they are sent once you are unblocked.`
      : "";
    show("blocked");
    return;
  }
  if (current) {
    renderExam(current);
    show("exam");
    return;
  }
  state.examId = null;
  renderList(o);
  show("list");
}

function renderChrome(o) {
  const signedIn = o.session.signedIn;
  $("topbar").hidden = !o.session.user;
  $("sign-out").hidden = !signedIn;
  $("who").textContent = o.session.user ? `${o.session.user.display_name} (${o.session.user.username})` : "";
  renderBanner();
  const notices = [];
  if (o.session.vaultProblem && signedIn) {
    notices.push(
      "This computer's keyring is not available: if the app is closed you will have to sign in again, which blocks a running exam. Keep the app open.",
    );
  }
  if (o.storageProblem) {
    notices.push(
      `Answers cannot be saved on this computer: ${o.storageProblem}. They are kept in this app's memory and still sent to the server; keep the app open until this notice is gone.`,
    );
  }
  $("notices").replaceChildren(...notices.map((n) => h("p", {}, n)));
}

function renderBanner() {
  const o = state.overview;
  const c = o.connection;
  const banner = $("banner");
  banner.hidden = c.state === "signed_out";
  banner.dataset.state = c.state;
  $("banner-state").textContent = CONNECTION[c.state] ?? c.state;
  const since = new Date(c.since).toLocaleTimeString();
  $("banner-since").textContent = c.state === "online" ? `since ${since}` : `since ${since} (${ago(c.since)})`;
  $("waiting-count").textContent =
    o.pending === 0 ? "All answers saved on the server" : `${plural(o.pending, "answer", "answers")} waiting on this computer`;
  $("waiting-count").dataset.count = String(o.pending);
}

function renderList(o) {
  $("list-empty").hidden = o.evaluations.length > 0;
  // Re-render only on a change, so that focus (and a button being clicked) stays put.
  const shape = JSON.stringify(o.evaluations.map((e) => [e.id, e.title, e.exam, e.endsAt, e.pending]));
  if ($("evaluations").dataset.shape === shape) return;
  $("evaluations").dataset.shape = shape;
  const items = o.evaluations.map((e) => {
    const label = {
      open: "In progress",
      not_started: "Running",
      blocked: "Blocked",
      closed: "Closed",
      submitted: "Handed in",
      no_access: "No access",
      draft: "Not started yet",
    }[e.exam];
    const action =
      e.exam === "not_started"
        ? h("button", { type: "button", onclick: () => start(e.id) }, "Start")
        : ["open", "blocked", "closed", "submitted"].includes(e.exam)
          ? h("button", { type: "button", class: e.exam === "open" ? null : "secondary", onclick: () => openExam(e.id) },
              e.exam === "open" ? "Continue" : "Open")
          : null;
    return h("li", { dataset: { evaluation: e.id, exam: e.exam } },
      h("h2", {}, e.title),
      h("div", {}, h("span", { class: `pill ${e.exam}` }, label)),
      h("div", { class: "meta" },
        e.endsAt ? `Ends at ${new Date(e.endsAt).toLocaleString()}` : "No end time",
        e.pending ? ` · ${plural(e.pending, "answer", "answers")} waiting on this computer` : ""),
      action);
  });
  $("evaluations").replaceChildren(...items);
}

function answerStatus(questionId) {
  const a = state.answers.get(questionId);
  if (!a) return { state: "none", text: "Not answered yet" };
  // The disk refused it: it is only in this app's memory until the disk takes it or the server
  // has it, and the screen must not say it is saved on this computer.
  if (a.onlyInMemory) return { state: "memory", text: "Not saved on this computer (its disk refuses it): kept in this app's memory, waiting for the server" };
  if (a.rejected) return { state: "refused", text: `Saved on this computer, not accepted by the server: ${REFUSED[a.rejected] ?? a.rejected}` };
  switch (a.state) {
    case "saved":
      return { state: "saved", text: a.late ? "Saved on the server (after the end: marked late)" : "Saved on the server" };
    case "waiting":
      return { state: "waiting", text: "Saved on this computer, waiting for the server" };
    default:
      return { state: "editing", text: "Saving on this computer…" };
  }
}

function renderAnswerStatus(questionId) {
  const item = document.querySelector(`#questions [data-question="${CSS.escape(questionId)}"]`);
  const el = item?.querySelector(".answer-status");
  if (!el) return;
  const s = answerStatus(questionId);
  el.dataset.state = s.state;
  el.textContent = s.text;
  renderDisplaced(item, questionId);
}

// Texts the server held from another computer (or an earlier install) that this answer was
// saved above: the student is told, and can read (and copy) each of them.
function renderDisplaced(item, questionId) {
  const box = item.querySelector(".displaced");
  const count = state.answers.get(questionId)?.displaced ?? 0;
  box.hidden = count === 0;
  if (count === 0) return;
  const texts = state.displaced.get(questionId) ?? [];
  if (texts.length < count && state.examId && box.dataset.asked !== String(count)) {
    box.dataset.asked = String(count);
    refreshDisplaced(state.examId);
  }
  if (box.dataset.count === String(texts.length)) return;
  box.dataset.count = String(texts.length);
  box.replaceChildren(
    h("p", {},
      "The server held another text for this question, written on another computer or before this app's data was lost. " +
        "Your text here was saved above it; the other text is kept below and in the answers export."),
    ...texts.map((t) =>
      h("details", {},
        h("summary", {}, `The other text (revision ${t.revision})`),
        h("pre", {}, t.content))));
}

let refreshingDisplaced = false;
async function refreshDisplaced(evaluationId) {
  if (refreshingDisplaced) return;
  refreshingDisplaced = true;
  try {
    const exam = await invoke("open_exam", { evaluationId });
    if (state.examId !== evaluationId) return;
    state.displaced = new Map(Object.entries(exam.displaced));
    for (const questionId of state.displaced.keys()) renderAnswerStatus(questionId);
  } catch {
    // Shown again at the next change of the answer.
  } finally {
    refreshingDisplaced = false;
  }
}

function renderExam(e) {
  $("exam-title").textContent = e.title;
  const locked = e.exam !== "open";
  const lock = $("exam-lock");
  lock.hidden = !locked;
  lock.textContent = EXAM_LOCK[e.exam] ?? "";
  $("screen-exam").dataset.exam = e.exam;
  for (const a of e.answers) state.answers.set(a.questionId, a);

  const list = $("questions");
  const existing = [...list.children].map((li) => li.dataset.question).join("\n");
  const wanted = e.questions.map((q) => q.id).join("\n");
  if (list.dataset.evaluation !== e.id || existing !== wanted) {
    list.dataset.evaluation = e.id;
    list.replaceChildren(...e.questions.map((q, i) => questionItem(e, q, i)));
  }
  for (const q of e.questions) {
    const item = list.querySelector(`[data-question="${CSS.escape(q.id)}"]`);
    for (const field of item.querySelectorAll("textarea")) field.readOnly = locked;
    for (const field of item.querySelectorAll("input")) field.disabled = locked;
    renderAnswerStatus(q.id);
  }
  $("submit").hidden = e.exam !== "open";
}

function questionItem(e, q, index) {
  const id = `answer-${index}`;
  const content = state.contents.get(q.id) ?? "";
  let editor;
  if (q.kind === "choice") {
    editor = h("fieldset", { class: "choices", "aria-labelledby": `${id}-prompt` },
      q.choices.map((c) =>
        h("label", {},
          h("input", {
            type: "radio", name: id, value: c.id, checked: content === c.id,
            onchange: () => typed(e.id, q.id, c.id),
          }),
          c.label)));
  } else {
    const area = h("textarea", {
      id, class: q.kind === "code" ? "code" : null, "aria-labelledby": `${id}-prompt`,
      spellcheck: q.kind === "code" ? "false" : "true",
      oninput: (ev) => typed(e.id, q.id, ev.target.value),
    });
    area.value = content;
    if (q.kind === "code") area.addEventListener("keydown", codeKeys);
    editor = h("div", {}, area,
      q.kind === "code" ? h("p", { class: "editor-hint" }, "Tab indents. Press Esc, then Tab, to leave the editor.") : null);
  }
  return h("li", { dataset: { question: q.id, kind: q.kind } },
    h("p", { class: "prompt", id: `${id}-prompt` }, q.prompt),
    editor,
    h("p", { class: "answer-status", role: "status", "aria-live": "polite" }),
    h("div", { class: "displaced notice", hidden: true }));
}

/** In the code editor, Tab indents (four spaces) until Esc is pressed. */
function codeKeys(ev) {
  const area = ev.target;
  if (ev.key === "Escape") {
    area.dataset.escaped = "true";
    return;
  }
  if (ev.key === "Tab" && !ev.shiftKey && area.dataset.escaped !== "true" && !area.readOnly) {
    ev.preventDefault();
    const { selectionStart: start, selectionEnd: end, value } = area;
    area.value = value.slice(0, start) + "    " + value.slice(end);
    area.selectionStart = area.selectionEnd = start + 4;
    area.dispatchEvent(new Event("input"));
    return;
  }
  if (ev.key !== "Tab") delete area.dataset.escaped;
}

function renderCountdown() {
  const el = $("countdown");
  const e = state.examId && evaluation(state.examId);
  el.hidden = !e || state.screen !== "exam";
  if (!e || !e.endsAt) {
    el.textContent = "No time limit";
    el.dataset.urgent = "false";
    return;
  }
  const left = Date.parse(e.endsAt) - serverNow();
  el.dataset.urgent = String(left < 5 * 60 * 1000);
  el.textContent = left > 0 ? `Time left ${duration(left)}` : "Time is up";
  if (left <= 0 && e.exam === "open") {
    // The engine sends the closed state at ends_at too; lock at once on this side.
    for (const field of document.querySelectorAll("#questions textarea")) field.readOnly = true;
    for (const field of document.querySelectorAll("#questions input")) field.disabled = true;
  }
}

function renderEnded(o) {
  const ended = o.session.ended;
  $("ended-title").textContent = ended.blockedExam
    ? "A second sign-in was detected: ask your professor to unblock you"
    : "Your session has ended";
  $("ended-reason").textContent = ENDED[ended.reason] ?? `The server ended your session (${ended.reason}).`;
  $("ended-next").textContent = ended.blockedExam
    ? `“${ended.blockedExam}” is blocked. Sign in again here, then ask your professor to unblock you.`
    : "Sign in again to continue.";
  $("ended-waiting").textContent = ended.pending
    ? `${plural(ended.pending, "answer is", "answers are")} waiting on this computer. They are sent when you sign in again here; if you cannot, export them for your professor.`
    : "Every answer reached the server.";
  $("export").hidden = ended.pending === 0;
}

// ---------------------------------------------------------------------------------------------
// Actions

// The overview and the events race (an event may be handled before an older overview arrives):
// both are numbered, and the newer wins.
async function refresh() {
  let overview = await invoke("overview");
  while (overview.seq < state.lastSeq) overview = await invoke("overview");
  state.overview = overview;
  state.lastSeq = overview.seq;
  setClock(overview.serverNowMs);
  render();
}

// The server answered 503 `server_busy`: the engine signs in again by itself (same username and
// password) after the wait it announced; this counts it down.
let busyTimer = null;

function showBusy(seconds) {
  clearInterval(busyTimer);
  const el = $("sign-in-busy");
  let left = seconds;
  const draw = () => {
    el.textContent = `The server is busy, trying again in ${left} s. There is nothing to type again: you will be signed in as soon as it has room.`;
  };
  draw();
  el.hidden = false;
  busyTimer = setInterval(() => {
    left = Math.max(0, left - 1);
    draw();
  }, 1000);
}

function hideBusy() {
  clearInterval(busyTimer);
  busyTimer = null;
  $("sign-in-busy").hidden = true;
}

async function signIn(ev) {
  ev.preventDefault();
  if (state.signingIn) return;
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  const serverUrl = $("login-server").value.trim() || null;
  const error = $("sign-in-error");
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    error.hidden = false;
    (username ? $("login-password") : $("login-username")).focus();
    return;
  }
  if (!leaveEndedSession(username, serverUrl)) return;
  state.signingIn = true;
  $("sign-in-button").disabled = true;
  $("sign-in-button").textContent = "Signing in…";
  try {
    await invoke("sign_in", { serverUrl, username, password });
    state.signInAgain = false;
    error.hidden = true;
    $("login-password").value = "";
    await refresh();
  } catch (e) {
    error.textContent = signInMessage(e, serverUrl ?? state.overview?.session.serverUrl);
    error.hidden = false;
    if (e.kind === "network" || e.kind === "insecure_server") $("server-details").open = true;
    $("login-password").select();
    $("login-password").focus();
  } finally {
    hideBusy();
    state.signingIn = false;
    $("sign-in-button").disabled = false;
    $("sign-in-button").textContent = "Sign in";
  }
}

// Signing in as another student, or on another server, after a session ended leaves that
// session's waiting answers behind (listed on this screen, exportable): ask first.
function leaveEndedSession(username, serverUrl) {
  const session = state.overview?.session;
  const pending = session?.ended?.pending ?? 0;
  if (!session?.user || pending === 0) return true;
  const plain = (url) => (url ?? "").trim().replace(/\/+$/, "").toLowerCase();
  const sameServer = serverUrl === null || plain(serverUrl) === plain(session.serverUrl);
  if (sameServer && username === session.user.username) return true;
  return confirm(
    `${plural(pending, "answer", "answers")} of ${session.user.username} on ${session.serverUrl} ${pending === 1 ? "has" : "have"} not reached the server yet. They stay on this computer: they are sent when ${session.user.username} signs in here again, and this screen can export them. Sign in as ${username} anyway?`,
  );
}

// ---------------------------------------------------------------------------------------------
// Answers left on this computer (any student, any server)

async function loadLeftBehind() {
  let waiting;
  try {
    waiting = await invoke("waiting_answers");
  } catch (e) {
    $("left-behind").hidden = false;
    $("left-behind-list").replaceChildren(h("li", {}, `The answers on this computer could not be read: ${e.message}`));
    return;
  }
  $("left-behind").hidden = waiting.length === 0;
  $("left-behind-list").replaceChildren(
    ...waiting.map((w) => {
      const result = h("p", { class: "export-result", role: "status" });
      return h("li", { dataset: { server: w.serverUrl, username: w.username } },
        h("h2", {}, w.username),
        h("div", { class: "meta" }, w.serverUrl),
        h("div", { class: "meta" },
          `${plural(w.answers, "answer", "answers")} waiting since ${new Date(w.since).toLocaleString()} (${ago(w.since)})`),
        h("button", { type: "button", class: "secondary", onclick: () => exportLeftBehind(w, result) },
          "Export for the professor"),
        result);
    }),
  );
}

async function exportLeftBehind(w, result) {
  try {
    const summary = await invoke("export_waiting_answers", { serverUrl: w.serverUrl, username: w.username });
    result.dataset.path = summary.path;
    result.textContent = `${plural(summary.answers, "answer was", "answers were")} written to ${summary.path}. Give this file to the professor of ${w.username}.`;
  } catch (e) {
    delete result.dataset.path;
    result.textContent = `The export failed: ${e.message}`;
  }
}

async function start(id) {
  try {
    await invoke("join", { evaluationId: id });
  } catch (e) {
    alertNotice(`Could not start: ${e.message}`);
    return;
  }
  await openExam(id);
}

async function openExam(id) {
  let exam;
  try {
    exam = await invoke("open_exam", { evaluationId: id });
  } catch (e) {
    alertNotice(`Could not open the evaluation: ${e.message}`);
    return;
  }
  state.examId = id;
  state.contents = new Map(Object.entries(exam.answers));
  state.answers = new Map(exam.evaluation.answers.map((a) => [a.questionId, a]));
  state.displaced = new Map(Object.entries(exam.displaced));
  $("questions").dataset.evaluation = "";
  state.screen = null;
  render();
}

// Every change goes to the engine; while one call is on its way, later changes of the same
// answer are merged into the next call, so typing never queues up.
const sending = new Map();
function typed(evaluationId, questionId, content) {
  state.contents.set(questionId, content);
  const key = `${evaluationId}\u0000${questionId}`;
  const slot = sending.get(key);
  if (slot) {
    slot.next = content;
    return;
  }
  const entry = { next: null };
  entry.done = new Promise((resolve) => {
    entry.resolve = resolve;
  });
  sending.set(key, entry);
  const send = async (text) => {
    try {
      const view = await invoke("edit_answer", { evaluationId, questionId, content: text });
      if (state.examId === evaluationId) {
        state.answers.set(questionId, view);
        renderAnswerStatus(questionId);
      }
    } catch (e) {
      alertNotice(`This answer could not be taken: ${e.message}`);
    }
    if (entry.next !== null) {
      const next = entry.next;
      entry.next = null;
      await send(next);
    } else {
      sending.delete(key);
      entry.resolve();
    }
  };
  send(content);
}

/** Resolves once every change typed so far has reached the engine. */
async function typingSettled() {
  while (sending.size > 0) await Promise.all([...sending.values()].map((e) => e.done));
}

async function submitExam() {
  const e = evaluation(state.examId);
  if (!e) return;
  const error = $("submit-error");
  if (!confirm(`Hand in “${e.title}”? You cannot change your answers afterwards.`)) return;
  try {
    await invoke("submit", { evaluationId: e.id });
    error.hidden = true;
  } catch (err) {
    error.textContent =
      err.kind === "pending_answers"
        ? "Some answers have not reached the server yet. Wait until every answer says “Saved on the server”, then hand in."
        : `Could not hand in: ${err.message}`;
    error.hidden = false;
  }
}

// Every way out of a session asks first while answers wait: this button (on every screen of a
// signed-in student), and signing in as someone else after a session ended (signIn).
async function signOut() {
  // The count asked about includes what was typed a moment ago.
  await typingSettled();
  await refresh();
  const o = state.overview;
  if (!o.session.signedIn) return;
  const running = o.evaluations.some((e) => e.exam === "open");
  if (running && !confirm("An exam is running. Signing in again later counts as a second sign-in and blocks you until your professor unblocks you. Sign out anyway?")) {
    return;
  }
  if (o.pending > 0 && !confirm(`${plural(o.pending, "answer has", "answers have")} not reached the server yet. They stay on this computer and are sent when you sign in here again; the sign-in screen can export them for your professor. Sign out anyway?`)) {
    return;
  }
  try {
    await invoke("sign_out");
  } catch (e) {
    if (e.kind === "only_in_memory") {
      $("notices").append(
        h("p", {}, `You are still signed in. ${e.message}. `,
          h("button", { type: "button", class: "secondary", onclick: async () => alertNotice(await exportReport()) }, "Export answers")));
    } else {
      alertNotice(`Could not sign out: ${e.message}`);
    }
  }
  state.examId = null;
  await refresh();
}

async function exportAnswers() {
  const result = $("export-result");
  result.textContent = await exportReport(result);
}

/** Exports the answers waiting and says where; `result`, when given, keeps the file's path. */
async function exportReport(result = null) {
  try {
    const summary = await invoke("export_answers");
    if (result) result.dataset.path = summary.path;
    const events = summary.integrityEvents
      ? ` with ${plural(summary.integrityEvents, "event", "events")} of what the exam reports`
      : "";
    return `${plural(summary.answers, "answer was", "answers were")} written to ${summary.path}${events}. Give this file to your professor.`;
  } catch (e) {
    if (result) delete result.dataset.path;
    return `The export failed: ${e.message}`;
  }
}

function alertNotice(text) {
  $("notices").append(h("p", {}, text));
}

// ---------------------------------------------------------------------------------------------
// Events from the engine

function onEngineEvent({ seq, type, data }) {
  const o = state.overview;
  if (seq <= state.lastSeq) return;
  state.lastSeq = seq;
  if (type === "sign_in_busy") {
    if (state.signingIn) showBusy(data.retryInSecs);
    return;
  }
  if (!o) return;
  switch (type) {
    case "session":
      o.session = data;
      break;
    case "connection":
      o.connection = data;
      break;
    case "evaluations":
      o.evaluations = data;
      o.pending = data.reduce((n, e) => n + e.pending, 0);
      break;
    case "answer": {
      o.pending = data.pendingTotal;
      const e = evaluation(data.evaluationId);
      if (e) {
        e.pending = data.pending;
        const i = e.answers.findIndex((a) => a.questionId === data.answer.questionId);
        if (i >= 0) e.answers[i] = data.answer;
        else e.answers.push(data.answer);
      }
      if (state.examId === data.evaluationId) {
        state.answers.set(data.answer.questionId, data.answer);
        renderAnswerStatus(data.answer.questionId);
      }
      renderBanner();
      if (o.session.ended) renderEnded(o);
      return;
    }
    case "clock":
      setClock(data.serverNowMs);
      return;
    case "storage":
      o.storageProblem = data;
      break;
    default:
      return;
  }
  render();
}

// ---------------------------------------------------------------------------------------------
// Start

$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("back").addEventListener("click", () => {
  state.examId = null;
  render();
  // Proctoring applies only while the exam is on screen.
  invoke("close_exam").catch((e) => console.warn("close_exam", e));
});
$("submit").addEventListener("click", submitExam);
$("export").addEventListener("click", exportAnswers);
// "Sign in again" shows the form without forgetting the ended session: its answers wait on disk
// until the same student signs in here.
$("ended-sign-in").addEventListener("click", () => {
  state.signInAgain = true;
  $("login-username").value = state.overview.session.user?.username ?? "";
  render();
  $("login-password").focus();
});
startProctor({ invoke, listen, root: $("proctor") });
await listen("engine", (event) => onEngineEvent(event.payload));
await listen("engine-resync", () => refresh());
// The app is closing (SIGTERM, SIGHUP): what is still on its way to the engine is handed over,
// and the engine writes it to disk before the app exits.
await listen("app-closing", async () => {
  await typingSettled();
  await invoke("typing_handed_over");
});
await refresh();
setInterval(() => {
  if (!state.overview) return;
  renderCountdown();
  if (state.overview.connection.state !== "online") renderBanner();
}, 1000);
