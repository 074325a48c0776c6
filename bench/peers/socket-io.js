// A Socket.IO server doing what invigil's fan-out does: check each connection's token (sent in
// the namespace's `auth`, as Socket.IO clients do) in a middleware, greet it, and emit a
// broadcast to every connected socket when GET /broadcast is called. Socket.IO's own heartbeat
// (a ping every 25 s) keeps connections alive; the defaults are otherwise left as they are.
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');
const { peerOptions, welcome } = require('./args');

const options = peerOptions(process.argv.slice(2));
const payload = JSON.parse(options.payload);

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/broadcast') {
    io.emit('EVALUATION_UPDATE', payload);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${io.engine.clientsCount}\n`);
    return;
  }
  res.writeHead(404).end();
});

const io = new Server(server, { serveClient: false, maxHttpBufferSize: 1024 * 1024 });

io.use((socket, next) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (options.tokens.has(token)) {
    next();
  } else {
    next(new Error('unauthorized'));
  }
});

io.on('connection', (socket) => {
  socket.emit('WELCOME', welcome());
});

server.listen({ host: options.host, port: options.port, backlog: 4096 }, () => {
  const { address, port } = server.address();
  console.log(`socket.io listening on ${address}:${port}`);
});

process.on('SIGTERM', () => {
  io.close();
  process.exit(0);
});
