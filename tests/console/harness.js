// What the console tests share: the real server binary on a free port with a fresh database and a
// bootstrap admin, the API as a bearer-token client, headless Chromium (Debian's, never a
// downloaded one), and a real student client on the live socket.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, '..', '..');
/** Where screenshots go. */
export const SHOTS = join(ROOT, 'target', 'e2e');
export const ADMIN = { username: 'admin', password: 'admin-password' };
export const PASSWORD = 'correct horse battery';

/** Starts `invigil-server` (INVIGIL_SERVER_BIN, or the debug build) on port 0. */
export async function startServer({ heartbeatMs = 400 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'invigil-console-'));
  const bin = process.env.INVIGIL_SERVER_BIN ?? join(ROOT, 'target', 'debug', 'invigil-server');
  const child = spawn(bin, [
    '--listen', '127.0.0.1:0',
    '--database', `sqlite://${join(dir, 'invigil.db')}`,
    '--heartbeat-ms', String(heartbeatMs),
  ], {
    env: {
      ...process.env,
      INVIGIL_BOOTSTRAP_ADMIN: `${ADMIN.username}:${ADMIN.password}`,
      INVIGIL_LOG: process.env.INVIGIL_LOG ?? 'warn',
      INVIGIL_LISTEN: '',
      INVIGIL_DATABASE_URL: '',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = await new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = line.match(/^invigil-server listening on (http:\/\/\S+)$/);
      if (m) ok(m[1]);
    });
    child.on('exit', (code) => fail(new Error(`invigil-server exited (${code}) before listening`)));
    child.on('error', fail);
  });
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      // Not serving yet.
    }
    await new Promise((r) => setImmediate(r));
  }
  return {
    base,
    dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A bearer-token API client. */
export class Api {
  constructor(base, token = null) {
    this.base = base;
    this.token = token;
  }

  async call(method, path, body) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(`${this.base}${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return data;
  }

  static async login(base, username, password, device) {
    const api = new Api(base);
    const login = await api.call('POST', '/api/login', { username, password, device });
    api.token = login.token;
    api.user = login.user;
    return api;
  }
}

/** Creates a user as the bootstrap admin. */
export async function createUser(base, username, role, displayName) {
  const admin = await Api.login(base, ADMIN.username, ADMIN.password);
  return admin.call('POST', '/api/users', { username, password: PASSWORD, role, display_name: displayName });
}

/** Headless Chromium from Debian, with the flags that work on this kind of machine. */
export async function launch() {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
}

/** A student's app on the live socket: answers heartbeats until told to fall silent. */
export class StudentClient {
  constructor(base, token) {
    this.messages = [];
    this.waiters = [];
    this.silent = false;
    this.closed = null;
    this.ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/ws`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    this.ws.on('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.type === 'WELCOME') {
        this.beat = setInterval(() => this.send({ type: 'HEARTBEAT' }), message.heartbeat_ms / 2);
      }
      this.messages.push(message);
      this.check();
    });
    this.ws.on('close', (code) => {
      clearInterval(this.beat);
      this.closed = code;
      this.check();
    });
  }

  send(message) {
    if (!this.silent && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  check() {
    for (const w of [...this.waiters]) {
      const found = w.pred === 'closed' ? (this.closed !== null ? this.closed : undefined) : this.messages.find(w.pred);
      if (found !== undefined) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(found);
      }
    }
  }

  /** The first message (ever received) that matches. */
  until(pred) {
    return new Promise((resolve) => {
      this.waiters.push({ pred, resolve });
      this.check();
    });
  }

  /** Resolves with the close code once the server closes the socket. */
  whenClosed() {
    return this.until('closed');
  }

  /** Saves an answer and waits for its acknowledgement. */
  async save(evaluationId, questionId, revision, content) {
    this.send({ type: 'ANSWER_SAVE', evaluation_id: evaluationId, question_id: questionId, revision, content });
    return this.until((m) => m.type === 'ANSWER_ACK' && m.question_id === questionId && m.revision === revision);
  }

  /** Stops sending anything, as a frozen or unplugged computer would. */
  fallSilent() {
    this.silent = true;
    clearInterval(this.beat);
  }

  close() {
    clearInterval(this.beat);
    this.ws.terminate();
  }
}
