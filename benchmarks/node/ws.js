// Benchmark peer of measurement `long-lived`: Node's `http` with the `ws`
// package (npm, see package.json; `npm ci` in this folder installs it),
// serving the long-lived routes of the crate's HTTP example:
//
//   GET /            'Hello, world!'
//   GET /events?ms=N server-sent events, a tick every N ms [default: 1000]
//   GET /ws          WebSocket echo
//   GET /chat        WebSocket chat: 'someone joined' to every member when one
//                    joins, and each text message, as 'ID: TEXT', to every member
//
// On SIGINT it says goodbye as a user would write it: every event stream gets
// a last 'goodbye' event and ends, every WebSocket gets Close 1001 ('going
// away'), server.close() stops accepting, and the process exits with 0 once
// every connection has closed; after 20 s (the drain deadline of the crate's
// example) it exits with 3 regardless.
//
// node benchmarks/node/ws.js --addr 127.0.0.1:0 [--workers N (ignored)]
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

let addr = '127.0.0.1:8080';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--addr') addr = args[++i];
  else if (args[i] === '--workers') i++; // one event loop; accepted for a uniform command line
}
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));

const DRAIN_TIMEOUT_MS = 20000;
const hello = 'Hello, world!';
// The open event streams: response -> its interval timer.
const streams = new Map();

function events(req, res, query) {
  const given = query.get('ms');
  const ms = given === null ? 1000 : Number(given);
  if (!Number.isInteger(ms) || ms < 10) {
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    res.end('ms must be a number from 10\n');
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
  });
  // Node holds the head back until the first write: send it now, as SSE
  // code for Node does, so that the client sees the stream open at once.
  res.flushHeaders();
  let ticks = 0;
  const timer = setInterval(() => {
    ticks += 1;
    res.write(`id: ${ticks}\ndata: tick ${ticks}\n\n`);
  }, ms);
  streams.set(res, timer);
  res.on('close', () => {
    clearInterval(timer);
    streams.delete(res);
  });
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://bench');
  if (req.method === 'GET' && url.pathname === '/events') {
    events(req, res, url.searchParams);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': hello.length });
  res.end(hello);
});

// One WebSocket server for both routes, routed on the upgrade's path
// (ws's documented way to serve several paths on one http server).
const wss = new WebSocketServer({ noServer: true });
const chat = new Set();
let nextId = 0;

function broadcast(text) {
  for (const member of chat) member.send(text);
}

server.on('upgrade', (req, socket, head) => {
  const path = new URL(req.url, 'http://bench').pathname;
  if (path !== '/ws' && path !== '/chat') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    nextId += 1;
    const id = nextId;
    if (path === '/ws') {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      return;
    }
    chat.add(ws);
    ws.on('close', () => chat.delete(ws));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) broadcast(`${id}: ${data}`);
    });
    broadcast('someone joined');
  });
});

server.listen(port, host, () => {
  process.stdout.write(`listening on ${host}:${server.address().port}\n`);
});

process.on('SIGINT', () => {
  // Stop accepting; the callback runs once every connection, upgraded ones
  // included, has closed (Node 19+ closes idle keep-alive ones at once).
  server.close(() => process.exit(0));
  for (const [res, timer] of streams) {
    clearInterval(timer);
    res.end('event: goodbye\nretry: 2000\ndata: the server is shutting down\n\n');
  }
  streams.clear();
  // ws completes the closing handshake and then closes the socket.
  for (const ws of wss.clients) ws.close(1001, 'going away');
  setTimeout(() => process.exit(3), DRAIN_TIMEOUT_MS).unref();
});
