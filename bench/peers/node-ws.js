// A Node.js server on the `ws` package doing what invigil's fan-out does: check each socket's
// bearer token at the upgrade, greet it, and deliver a broadcast to every open socket when
// GET /broadcast is called. Liveness as the ws documentation shows it: a ping every 30 s, and a
// socket that did not answer the last one is dropped.
'use strict';

const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');
const { peerOptions, welcome } = require('./args');

const options = peerOptions(process.argv.slice(2));
// Encoded once: every socket is sent the same bytes.
const payload = Buffer.from(options.payload);
const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/broadcast') {
    let sent = 0;
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(payload, { binary: false });
        sent += 1;
      }
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${sent}\n`);
    return;
  }
  res.writeHead(404).end();
});

server.on('upgrade', (req, socket, head) => {
  const auth = req.headers.authorization || '';
  const token = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : '';
  if (!options.tokens.has(token)) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.isAlive = true;
    ws.on('pong', () => {
      ws.isAlive = true;
    });
    // The clients' heartbeats need no answer.
    ws.on('message', () => {});
    ws.on('error', () => {});
    ws.send(JSON.stringify(welcome()));
  });
});

const liveness = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, 30000);

server.listen({ host: options.host, port: options.port, backlog: 4096 }, () => {
  const { address, port } = server.address();
  console.log(`node-ws listening on ${address}:${port}`);
});

process.on('SIGTERM', () => {
  clearInterval(liveness);
  for (const ws of wss.clients) ws.close(1001, 'going away');
  server.close();
  process.exit(0);
});
