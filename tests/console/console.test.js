// The console in a real browser against the real server: a professor creates and starts an
// evaluation, watches a real student client go connected → lost → blocked live, unblocks them,
// exports the answers, imports a desktop answers file and reads the audit log; an admin imports
// students and resets a password; a revoked session shows the ended screen. Every wait is on the
// page (Playwright's auto-waiting locators) or on a socket event: no fixed sleeps.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ADMIN, Api, PASSWORD, SHOTS, StudentClient, createUser, launch, startServer } from './harness.js';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page at 1280×800 that fails the test on any script error or refused resource. */
async function openPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Refused|Content Security Policy|Uncaught/.test(m.text())) {
      page.problems.push(`console: ${m.text()}`);
    }
  });
  await page.goto(server.base);
  return page;
}

async function signIn(page, username, password = PASSWORD) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

/** The table row whose row header names `name` (a board's student, a user), and a wait for a
 *  text in it. */
const row = (page, name) => page.getByRole('row')
  .filter({ has: page.getByRole('rowheader', { name, exact: false }) });
const shows = (locator, text) => locator.getByText(text, { exact: true }).first().waitFor();

test('a professor watches a student go connected, lost and blocked live, unblocks them and exports the answers', async () => {
  await createUser(server.base, 'prof1', 'professor', 'Prof One');
  await createUser(server.base, 'alice', 'student', 'Alice Martin');
  await createUser(server.base, 'bob', 'student', 'Bob Stone');
  const page = await openPage();

  // Sign in with the cookie, and create an evaluation.
  await signIn(page, 'prof1');
  await page.getByRole('link', { name: 'New evaluation' }).click();
  await page.getByLabel('Title').fill('Algorithms midterm');
  await page.getByRole('button', { name: 'Add a question' }).click();
  await page.getByLabel('Question 1', { exact: true }).fill('Explain quicksort');
  await page.getByRole('button', { name: 'Add a question' }).click();
  await page.getByLabel('Question 2', { exact: true }).fill('Which is stable?');
  await page.getByLabel('Kind of question 2').selectOption('choice');
  await page.getByLabel('Choices of question 2').fill('Mergesort\nQuicksort');
  await shot(page, 'editor');
  await page.getByRole('button', { name: 'Create evaluation' }).click();

  // The access list: typed usernames.
  await page.getByRole('tab', { name: 'Access list', selected: true }).waitFor();
  await page.getByLabel('Students on the access list').fill('alice\nbob');
  await page.getByRole('button', { name: 'Save the access list' }).click();
  await page.getByText('Saved: 2 students on the list.').waitFor();

  // Start it, with a confirmation.
  await page.getByRole('button', { name: 'Start the evaluation' }).click();
  const confirm = page.getByRole('dialog');
  await confirm.getByText('moves from Draft to In progress').waitFor();
  await confirm.getByRole('button', { name: 'Start the evaluation' }).click();
  await page.getByRole('heading', { name: /Algorithms midterm/ }).getByText('In progress').waitFor();
  await page.getByRole('tab', { name: 'Board' }).click();
  const alice = row(page, 'alice');
  await shows(alice, 'Not started');
  await shows(alice, 'Not connected');
  const evaluationId = decodeURIComponent(page.url().split('#/evaluations/')[1].split('/')[0]);

  // A real student client signs in, joins, connects and saves an answer: connected, live.
  const student = await Api.login(server.base, 'alice', PASSWORD, 'Lab PC 12');
  await student.call('POST', `/api/evaluations/${evaluationId}/join`, {});
  const app = new StudentClient(server.base, student.token);
  await app.until((m) => m.type === 'SNAPSHOT_END');
  await app.save(evaluationId, 'q1', 1, 'Pick a pivot, partition, recurse.');
  await shows(alice, 'Connected');
  await shows(alice, 'In progress');
  await alice.getByRole('cell').nth(4).filter({ hasText: /^1$/ }).waitFor(); // answers saved
  await page.getByText(/^1 connected · 0 lost · 0 blocked/).waitFor();
  await shot(page, 'board-connected');

  // The student's computer goes silent: the server gives up on it and the board shows it lost.
  app.fallSilent();
  assert.equal(await app.whenClosed(), 4008);
  await shows(alice, 'Lost');
  await page.getByText(/^0 connected · 1 lost · 0 blocked/).waitFor();
  await shot(page, 'board-lost');

  // The student signs in again during the exam: blocked, live.
  const again = await Api.login(server.base, 'alice', PASSWORD, 'Lab PC 13');
  await shows(alice, 'Blocked');
  await shows(alice, 'Signed in a second time');
  await page.getByText(/· 1 blocked ·/).waitFor();
  await shot(page, 'board-blocked');

  // Unblock with a note.
  await page.getByRole('button', { name: 'Unblock alice' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Note for the audit log').fill('Identity checked at the desk.');
  await dialog.getByRole('button', { name: 'Unblock' }).click();
  await shows(alice, 'In progress');
  await page.getByText(/· 0 blocked ·/).waitFor();

  // Sorting and filtering the board.
  await page.getByLabel('Show').selectOption('not_started');
  await row(page, 'bob').waitFor();
  await alice.waitFor({ state: 'detached' });
  await page.getByLabel('Show').selectOption('all');
  await page.getByRole('button', { name: 'Status' }).click();
  await page.locator('th[aria-sort="ascending"]').getByText('Status').waitFor();

  // The student's answers, from the board.
  await page.getByRole('button', { name: /Alice Martin/ }).click();
  const answers = page.getByRole('dialog');
  await answers.getByText('Pick a pivot, partition, recurse.').waitFor();
  await answers.getByRole('button', { name: 'Close' }).click();

  // CSV export of the answers.
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Export answers (CSV)' }).click();
  const csv = readFileSync(await (await download).path(), 'utf8');
  assert.match(csv, /^username,display_name,status,question_id,/);
  assert.match(csv, /alice,Alice Martin,in_progress,q1,text,1,[^,]+,false,"?Pick a pivot, partition, recurse\."?/);
  assert.match(csv, /bob,Bob Stone,not_started,q2,choice,,/);

  // The desktop app's answers file, imported and marked with its source.
  const exported = {
    format: 'invigil-answers-export', version: 1, exported_at: new Date().toISOString(),
    server_url: server.base, username: 'alice', device: 'Lab PC 12', session_ended: 'signed_in_elsewhere',
    answers: [
      { evaluation_id: evaluationId, evaluation_title: 'Algorithms midterm', question_id: 'q1', revision: 2,
        content: 'Partition around a pivot, then sort both sides.', edited_at: new Date().toISOString(),
        acknowledged_revision: 1, rejected: null },
      { evaluation_id: evaluationId, evaluation_title: 'Algorithms midterm', question_id: 'q1', revision: 1,
        content: 'old', edited_at: new Date().toISOString(), acknowledged_revision: 1, rejected: null },
    ],
  };
  await page.getByLabel('Import a desktop answers file').setInputFiles({
    name: 'alice-answers.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(exported)),
  });
  const report = page.getByRole('dialog', { name: 'Imported answers of alice' });
  await report.getByText('From Lab PC 12: 1 stored, 1 skipped.').waitFor();
  await shot(page, 'import-report');
  await report.getByRole('button', { name: 'Close' }).click();
  await page.getByRole('button', { name: /Alice Martin/ }).click();
  await page.getByRole('dialog').getByText(/Source: imported from device "Lab PC 12" by prof1/).waitFor();
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();

  // Once she has handed in, the server refuses her file; the console offers to override it with a
  // reason, which the audit log keeps.
  await again.call('POST', `/api/evaluations/${evaluationId}/submit`, {});
  await shows(alice, 'Submitted');
  exported.answers = [{ ...exported.answers[0], revision: 3, content: 'Written after handing in.' }];
  await page.getByLabel('Import a desktop answers file').setInputFiles({
    name: 'alice-answers.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(exported)),
  });
  const anyway = page.getByRole('dialog', { name: 'Import anyway?' });
  await anyway.getByText(/alice has handed in this evaluation, so their answers file is not imported/).waitFor();
  await shot(page, 'import-override');
  await anyway.getByLabel('Reason for the audit log').fill('The lab computer lost the network; checked with the invigilator.');
  await anyway.getByRole('button', { name: 'Import anyway' }).click();
  const overridden = page.getByRole('dialog', { name: 'Imported answers of alice' });
  await overridden.getByText('From Lab PC 12: 1 stored, 0 skipped.').waitFor();
  await overridden.getByRole('button', { name: 'Close' }).click();

  // The audit log, filtered, with the unblock note and the override's reason.
  await page.getByRole('tab', { name: 'Audit log' }).click();
  await page.getByText('Unblocked by prof1: Identity checked at the desk.').waitFor();
  await page.getByText(/Reason: The lab computer lost the network; checked with the invigilator\.$/).waitFor();
  await page.getByLabel('Kind').selectOption('blocked');
  await page.getByText('Unblocked by prof1: Identity checked at the desk.').waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: /^1 entry$/ }).waitFor();
  await shot(page, 'audit-log');
  const auditDownload = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Export audit log (CSV)' }).click();
  const auditCsv = readFileSync(await (await auditDownload).path(), 'utf8');
  assert.match(auditCsv, /^at,kind,username,actor,detail\n/);
  assert.match(auditCsv, /,blocked,alice,,/);
  assert.doesNotMatch(auditCsv, /,unblocked,/);

  // Extending the end time.
  await page.getByRole('button', { name: 'Extend the end time by 15 minutes' }).click();
  await page.getByText(/^The end time is now /).waitFor();

  // An admin ends the professor's sessions: the console says so clearly.
  const admin = await Api.login(server.base, ADMIN.username, ADMIN.password);
  await admin.call('POST', '/api/users/prof1/revoke');
  await page.getByRole('heading', { name: 'Your session has ended' }).waitFor();
  await page.getByText('An admin ended your session.').waitFor();
  await shot(page, 'session-ended');

  assert.deepEqual(page.problems, []);
  app.close();
  await page.context().close();
});

/** Waits until the users table shows `count` live sessions for `username`. */
const liveSessions = (page, username, count) => row(page, username)
  .getByRole('cell').nth(2).filter({ hasText: new RegExp(`^${count}$`) }).waitFor();

test('an admin imports students from a CSV file, sees per-line errors, resets a password and ends sessions', async () => {
  const page = await openPage();
  await signIn(page, ADMIN.username, ADMIN.password);
  await page.getByRole('link', { name: 'Users' }).click();
  await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();

  // A faulty file: every bad line is named, and nobody is created.
  await page.getByLabel('Students CSV file').setInputFiles({
    name: 'bad.csv', mimeType: 'text/csv',
    buffer: Buffer.from('username,display_name,password\ncarol,Carol,pw1\nbad name,X,pw\ncarol,Again,pw\n'),
  });
  await page.getByRole('button', { name: 'Import students' }).click();
  await page.getByText('2 lines have errors; nothing was imported.', { exact: false }).waitFor();
  await page.getByText(/^Line 3: /).waitFor();
  await page.getByText(/^Line 4: .*already on line 2/).waitFor();
  await shot(page, 'users-import-errors');

  await page.getByLabel('Students CSV file').setInputFiles({
    name: 'students.csv', mimeType: 'text/csv',
    buffer: Buffer.from('username,display_name,password\ncarol,Carol King,pw-carol\ndave,Dave Hill,pw-dave\n'),
  });
  await page.getByRole('button', { name: 'Import students' }).click();
  await page.getByText('Imported 2 students.').waitFor();
  await row(page, 'dave').getByRole('cell', { name: 'Dave Hill' }).waitFor();

  // Reset Carol's password; her old session ends.
  const carol = await Api.login(server.base, 'carol', 'pw-carol');
  await page.getByRole('button', { name: 'Reset the password of carol' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('New password').fill('new-secret');
  await dialog.getByRole('button', { name: 'Reset password' }).click();
  await dialog.waitFor({ state: 'detached' });
  await assert.rejects(carol.call('GET', '/api/me'), /session_invalidated/);
  await liveSessions(page, 'carol', 0);
  await Api.login(server.base, 'carol', 'new-secret');

  // End Dave's sessions.
  const dave = await Api.login(server.base, 'dave', 'pw-dave');
  await page.getByLabel('Find a user').fill('dave');
  await page.getByRole('button', { name: 'Refresh the list' }).click();
  await liveSessions(page, 'dave', 1);
  await row(page, 'carol').waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'End the sessions of dave' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'End sessions' }).click();
  await liveSessions(page, 'dave', 0);
  await assert.rejects(dave.call('GET', '/api/me'), /session_invalidated/);
  await shot(page, 'users');

  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a second tab of the same session takes the socket and the first stays live on the event stream', async () => {
  await createUser(server.base, 'prof3', 'professor', 'Prof Three');
  await createUser(server.base, 'erin', 'student', 'Erin Wood');
  const prof = await Api.login(server.base, 'prof3', PASSWORD);
  const evaluation = await prof.call('POST', '/api/evaluations', {
    title: 'Two tabs', questions: [{ id: 'q1', prompt: 'Anything', kind: 'text' }],
  });
  await prof.call('PUT', `/api/evaluations/${evaluation.id}/access`, { students: ['erin'] });
  await prof.call('POST', `/api/evaluations/${evaluation.id}/phase`, { phase: 'in_progress' });

  const first = await openPage();
  await signIn(first, 'prof3');
  await first.goto(`${server.base}/#/evaluations/${evaluation.id}/board`);
  await shows(row(first, 'erin'), 'Not started');
  await first.getByTitle('Live through the socket.').waitFor();

  // The same browser (the same cookie, so the same session) opens a second tab: one socket per
  // session, so the first tab's socket is replaced (4002) and it listens on the event stream.
  const second = await first.context().newPage();
  await second.goto(`${server.base}/#/evaluations/${evaluation.id}/board`);
  await second.getByTitle('Live through the socket.').waitFor();
  await first.getByTitle(/^Live through the event stream/).filter({ hasText: 'Live' }).waitFor();

  const erin = await Api.login(server.base, 'erin', PASSWORD);
  await erin.call('POST', `/api/evaluations/${evaluation.id}/join`, {});
  await shows(row(first, 'erin'), 'In progress');
  await shows(row(second, 'erin'), 'In progress');
  await shot(first, 'second-tab-event-stream');

  assert.deepEqual(first.problems, []);
  await first.context().close();
});

test('a sign-in the server is too busy for shows a countdown and is tried again on its own', async () => {
  await createUser(server.base, 'prof4', 'professor', 'Prof Four');
  const page = await openPage();
  // The first sign-in meets a server busy with a room signing in (503 `server_busy`, as the
  // contract answers when a sign-in would wait too long for hashing); the next reaches it.
  let refused = 0;
  await page.route('**/api/login', async (route) => {
    if (refused === 0) {
      refused += 1;
      await route.fulfill({
        status: 503,
        headers: { 'Retry-After': '1', 'Content-Type': 'application/json' },
        body: JSON.stringify({ error: { code: 'server_busy', message: 'The server is busy.' } }),
      });
    } else {
      await route.continue();
    }
  });
  await page.getByLabel('Username').fill('prof4');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText(/^The server is busy, trying again in \d+ s\.$/).waitFor();
  await shot(page, 'sign-in-busy');
  // Nobody clicks again: the console tries once more by itself and is signed in.
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
  assert.equal(refused, 1);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

/** Waits until the board's rows are, top to bottom, these usernames. */
const boardOrder = (page, names) => page.waitForFunction(
  (want) => [...document.querySelectorAll('table.board tbody tr')].map((r) => r.dataset.username).join(',') === want,
  names.join(','),
);

test('a professor sets proctoring, sees integrity live on the board, sorts, filters, reads a timeline and accommodates a student', async () => {
  await createUser(server.base, 'prof5', 'professor', 'Prof Five');
  await createUser(server.base, 'gina', 'student', 'Gina Park');
  await createUser(server.base, 'hal', 'student', 'Hal Ito');
  await createUser(server.base, 'ivy', 'student', 'Ivy Roe');
  const prof = await Api.login(server.base, 'prof5', PASSWORD);
  const page = await openPage();
  await signIn(page, 'prof5');

  // The settings when creating: a bad threshold is refused with a sentence naming the limits.
  await page.getByRole('link', { name: 'New evaluation' }).click();
  await page.getByLabel('Title').fill('Proctored quiz');
  await page.getByRole('button', { name: 'Add a question' }).click();
  await page.getByLabel('Question 1', { exact: true }).fill('Define a heap');
  await page.getByLabel('Report leaving the window').check();
  await page.getByLabel('Block the clipboard').check();
  const brief = page.getByLabel('Brief interruption threshold (milliseconds)');
  for (const bad of ['two seconds', '70000', '-1']) {
    await brief.fill(bad);
    await page.getByRole('button', { name: 'Create evaluation' }).click();
    await page.getByText(`The brief interruption threshold must be a whole number of milliseconds from 0 to 60000 (now "${bad}").`).waitFor();
  }
  await brief.fill('3000');
  await shot(page, 'proctoring-settings');
  await page.getByRole('button', { name: 'Create evaluation' }).click();
  await page.getByRole('tab', { name: 'Access list', selected: true }).waitFor();
  await page.getByText('Proctoring: report leaving the window, block the clipboard (brief under 3000 ms)').waitFor();
  const evaluationId = decodeURIComponent(page.url().split('#/evaluations/')[1].split('/')[0]);
  const stored = async () => (await prof.call('GET', `/api/evaluations/${evaluationId}`)).proctoring;
  assert.deepEqual(await stored(), {
    fullscreen: false, report_focus: true, block_clipboard: true, single_display: false, brief_ms: 3000,
  });
  await page.getByLabel('Students on the access list').fill('gina\nhal\nivy');
  await page.getByRole('button', { name: 'Save the access list' }).click();
  await page.getByText('Saved: 3 students on the list.').waitFor();
  await page.getByRole('button', { name: 'Start the evaluation' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Start the evaluation' }).click();
  await page.getByRole('heading', { name: /Proctored quiz/ }).getByText('In progress').waitFor();

  // The settings when editing, during the exam.
  await page.getByRole('tab', { name: 'Edit' }).click();
  await page.getByLabel('Fullscreen').check();
  await page.getByLabel('Block the clipboard').uncheck();
  await page.getByLabel('Brief interruption threshold (milliseconds)').fill('2500');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Saved.').waitFor();
  await page.getByText('Proctoring: fullscreen, report leaving the window (brief under 2500 ms)').waitFor();
  assert.deepEqual(await stored(), {
    fullscreen: true, report_focus: true, block_clipboard: false, single_display: false, brief_ms: 2500,
  });

  // The students join; Gina's app is on the live socket.
  const students = {};
  for (const name of ['gina', 'hal', 'ivy']) {
    students[name] = await Api.login(server.base, name, PASSWORD, 'Lab PC');
    await students[name].call('POST', `/api/evaluations/${evaluationId}/join`, {});
  }
  const ginaApp = new StudentClient(server.base, students.gina.token);
  await ginaApp.until((m) => m.type === 'SNAPSHOT_END');
  await page.getByRole('tab', { name: 'Board' }).click();
  const gina = row(page, 'gina');
  const hal = row(page, 'hal');
  await shows(gina, 'In progress');

  // Integrity events reach the board live (no reload): Gina's device clock is an hour behind.
  const hourAgo = (ms = 0) => new Date(Date.now() - 3_600_000 + ms).toISOString();
  const report = (who, event) => students[who].call('POST', `/api/evaluations/${evaluationId}/integrity`, {
    evaluation_id: evaluationId, event_id: randomUUID(), at: hourAgo(), ...event,
  });
  await report('gina', {
    kind: 'capabilities',
    capabilities: { fullscreen: 'detect_only', report_focus: 'enforced', block_clipboard: 'enforced', single_display: 'unavailable' },
    detail: 'always-on-top refused by a Wayland compositor',
  });
  await report('gina', { kind: 'focus_lost' });
  await report('gina', { kind: 'focus_regained', away_ms: 4200, at: hourAgo(4200) });
  await gina.getByText('Left the window 1× · 4.2 s away').waitFor();
  await report('hal', { kind: 'focus_lost' });
  await report('hal', { kind: 'focus_regained', away_ms: 800 });
  await hal.getByText('Left the window 1× (1 brief) · 800 ms away').waitFor();
  await hal.getByText('2 (1 brief)').waitFor();
  await gina.getByText(/^Came back · /).waitFor();
  await gina.getByText('2 not enforced').waitFor();
  assert.match(await gina.getByText('2 not enforced').getAttribute('title'), /Fullscreen: detect only.*always-on-top refused by a Wayland compositor/);
  await gina.getByText('2 not enforced').click();
  await gina.getByText('Single display: unavailable').waitFor();
  await page.getByText(/· 2 left the window$/).waitFor();
  await shot(page, 'board-proctoring');

  // "Needs review": a real absence first, then a brief one, then nobody; the filter keeps those who left.
  await page.getByLabel('Sort by').selectOption('review');
  await boardOrder(page, ['gina', 'hal', 'ivy']);
  await report('hal', { kind: 'focus_lost' });
  await report('hal', { kind: 'focus_regained', away_ms: 9000 });
  await boardOrder(page, ['hal', 'gina', 'ivy']);
  await page.getByLabel('Show').selectOption('left');
  await boardOrder(page, ['hal', 'gina']);
  await page.getByLabel('Show').selectOption('all');
  await boardOrder(page, ['hal', 'gina', 'ivy']);

  // Gina's timeline: each event with the device's time and the server's, beside the audit entries.
  await page.getByRole('button', { name: 'Timeline of gina' }).click();
  const timeline = page.getByRole('dialog', { name: 'Timeline of Gina Park (gina)' });
  const cameBack = timeline.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'Came back' }) });
  await cameBack.getByText('4.2 s away').waitFor();
  const [serverTime, deviceTime] = await cameBack.getByRole('cell').allTextContents();
  assert.notEqual(serverTime, deviceTime, 'the device clock is an hour behind');
  await timeline.getByRole('rowheader', { name: 'joined' }).waitFor();
  await timeline.getByText(/Fullscreen: detect only.*always-on-top refused by a Wayland compositor/).waitFor();
  await shot(page, 'timeline');
  await timeline.getByRole('button', { name: 'Close' }).click();

  // An accommodation: a reason is required; the board says "Accommodated", never why; Gina's app is told.
  await page.getByRole('button', { name: 'Accommodation for gina' }).click();
  const dialog = page.getByRole('dialog', { name: 'Accommodation for Gina Park (gina)' });
  await dialog.getByLabel('Fullscreen').check();
  await dialog.getByLabel('Single display').check();
  await dialog.getByRole('button', { name: 'Save the accommodation' }).click();
  await dialog.getByText('Give a reason: it is kept in the audit log with your name.').waitFor();
  await dialog.getByLabel('Reason (staff only)').fill('Magnifier on a second display');
  await shot(page, 'accommodation');
  await dialog.getByRole('button', { name: 'Save the accommodation' }).click();
  await dialog.waitFor({ state: 'detached' });
  await shows(gina, 'Accommodated');
  assert.doesNotMatch(await gina.textContent(), /Magnifier/);
  const told = await ginaApp.until((m) => m.type === 'EVALUATION_UPDATE' && m.reason === 'accommodation_changed');
  assert.deepEqual(told.participation.proctoring_exempt, ['fullscreen', 'single_display']);
  assert.equal(JSON.stringify(told).includes('Magnifier'), false);
  await page.getByLabel('Show').selectOption('accommodated');
  await boardOrder(page, ['gina']);
  await page.getByLabel('Show').selectOption('all');

  // Staff read the reason in the timeline and in the audit log, with who set it.
  await page.getByRole('button', { name: 'Timeline of gina' }).click();
  const again = page.getByRole('dialog', { name: 'Timeline of Gina Park (gina)' });
  await again.getByText(/^Accommodated: exempt from Fullscreen, Single display\. Reason: Magnifier on a second display \(set by prof5, /).waitFor();
  await again.getByRole('button', { name: 'Close' }).click();
  await page.getByRole('tab', { name: 'Audit log' }).click();
  await page.getByLabel('Kind', { exact: true }).selectOption('accommodation_changed');
  await page.getByText('Accommodation: exempt from fullscreen, single_display. Reason: Magnifier on a second display').waitFor();

  assert.deepEqual(page.problems, []);
  ginaApp.close();
  await page.context().close();
});
