// The command line every peer takes: --listen HOST:PORT --tokens FILE --payload FILE.
'use strict';

const fs = require('node:fs');

function peerOptions(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!['listen', 'tokens', 'payload'].includes(name) || argv[i + 1] === undefined) {
      throw new Error(`usage: --listen HOST:PORT --tokens FILE --payload FILE (at ${argv[i]})`);
    }
    options[name] = argv[i + 1];
  }
  const cut = options.listen.lastIndexOf(':');
  return {
    host: options.listen.slice(0, cut),
    port: Number(options.listen.slice(cut + 1)),
    // One session token a line: the tokens invigil issued to the bench's students.
    tokens: new Set(fs.readFileSync(options.tokens, 'utf8').split('\n').filter(Boolean)),
    // What a broadcast delivers: the EVALUATION_UPDATE invigil sends on a phase change.
    payload: fs.readFileSync(options.payload, 'utf8'),
  };
}

// The first frame, as invigil's WELCOME starts a socket.
function welcome() {
  return { type: 'WELCOME', server_time: new Date().toISOString(), heartbeat_ms: 5000 };
}

module.exports = { peerOptions, welcome };
