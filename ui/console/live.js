// The live connection: the socket (`/api/ws?additions=1`, signed in by the cookie; the browser
// sends this page's Origin), kept alive with heartbeats and reopened after a loss. The server
// sends a snapshot of the boards after every (re)connection, then every change: no polling.
// If another tab of this session takes the socket over (close 4002: one socket per session), this
// tab listens on the event stream instead, which any number of tabs may hold.

import { api } from './api.js';
import { applyRow, board, notify, removeRow, setEvaluation, setLive } from './state.js';

const TYPES = [
  'WELCOME', 'SNAPSHOT_END', 'PARTICIPANT_UPDATE', 'PARTICIPANT_REMOVED', 'EVALUATION_CHANGED',
  'SESSION_INVALIDATED', 'HEARTBEAT', 'ERROR', 'EVALUATION_UPDATE',
];

const REASONS = {
  signed_out: 'You signed out.',
  signed_in_elsewhere: 'Your account signed in somewhere else.',
  revoked_by_admin: 'An admin ended your session.',
};

/** Starts listening; `onEnded(sentence)` is called once the session is over. */
export function startLive({ onEnded }) {
  let socket = null;
  let stream = null;
  let heartbeat = null;
  let retry = null;
  let backoff = 500;
  let stopped = false;
  let snapshot = null;

  const end = (sentence) => {
    if (stopped) return;
    stop();
    onEnded(sentence);
  };

  function handle(message) {
    switch (message.type) {
      case 'WELCOME':
        backoff = 500;
        snapshot = new Map();
        setLive('live', socket ? 'socket' : 'stream');
        if (socket) {
          clearInterval(heartbeat);
          heartbeat = setInterval(() => send({ type: 'HEARTBEAT' }), message.heartbeat_ms);
        }
        break;
      case 'PARTICIPANT_UPDATE':
        if (snapshot) {
          if (!snapshot.has(message.evaluation_id)) snapshot.set(message.evaluation_id, new Set());
          snapshot.get(message.evaluation_id).add(message.participant.username);
        }
        applyRow(message.evaluation_id, message.participant);
        break;
      case 'SNAPSHOT_END':
        // For each evaluation the snapshot covered, rows it did not name are gone.
        for (const [id, names] of snapshot ?? []) {
          for (const username of [...board(id).keys()]) {
            if (!names.has(username)) removeRow(id, username);
          }
        }
        snapshot = null;
        notify('resync');
        break;
      case 'PARTICIPANT_REMOVED':
        removeRow(message.evaluation_id, message.username);
        break;
      case 'EVALUATION_CHANGED':
        setEvaluation(message.evaluation);
        break;
      case 'SESSION_INVALIDATED':
        end(REASONS[message.reason] ?? 'Your session was ended.');
        break;
      case 'HEARTBEAT':
        send({ type: 'HEARTBEAT' });
        break;
      case 'ERROR':
        console.warn('invigil: the server refused a frame:', message.code, message.message);
        break;
      default:
        break;
    }
  }

  function send(message) {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function connect() {
    if (stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/api/ws?additions=1`);
    socket.addEventListener('message', (event) => {
      try {
        handle(JSON.parse(event.data));
      } catch (e) {
        console.warn('invigil: an unreadable frame', e);
      }
    });
    socket.addEventListener('close', (event) => {
      clearInterval(heartbeat);
      socket = null;
      if (stopped) return;
      if (event.code === 4001) {
        end('Your session was ended.');
      } else if (event.code === 4002) {
        listen();
      } else {
        later();
      }
    });
  }

  /** The event stream, for a tab whose socket another tab took over. */
  function listen() {
    if (stopped) return;
    setLive('reconnecting', 'stream');
    stream = new EventSource('/api/events?additions=1');
    for (const type of TYPES) {
      stream.addEventListener(type, (event) => handle(JSON.parse(event.data)));
    }
    stream.addEventListener('error', () => {
      if (stream?.readyState === EventSource.CLOSED) {
        stream = null;
        later(listen);
      } else {
        setLive('reconnecting');
      }
    });
  }

  /** Tries again after a pause, once the session is known to be alive. */
  function later(again = connect) {
    setLive('reconnecting');
    clearTimeout(retry);
    retry = setTimeout(async () => {
      try {
        await api('GET', '/api/me');
      } catch (e) {
        if (e.code === 'network') {
          backoff = Math.min(backoff * 2, 10_000);
          later(again);
        }
        // Any other answer means the session is over: the API's handler shows it.
        return;
      }
      again();
    }, backoff);
    backoff = Math.min(backoff * 2, 10_000);
  }

  function stop() {
    stopped = true;
    clearTimeout(retry);
    clearInterval(heartbeat);
    socket?.close(1000);
    stream?.close();
    setLive('offline');
  }

  connect();
  return { stop };
}
