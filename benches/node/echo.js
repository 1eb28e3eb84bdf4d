// Benchmark peer: the seed's `net` echo server, bytes come back as sent,
// with the seed's graceful exit (server.close() on SIGINT, exit on 'close').
// node benches/node/echo.js --addr 127.0.0.1:0 [--workers N (ignored)]
'use strict';
const net = require('net');

let addr = '127.0.0.1:7878';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--addr') addr = args[++i];
  else if (args[i] === '--workers') i++; // one event loop; accepted for a uniform command line
}
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));

const server = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.pipe(socket);
});
server.listen(port, host, () => {
  process.stdout.write(`listening on ${host}:${server.address().port}\n`);
});
process.on('SIGINT', () => {
  server.close(() => process.exit(0));
});
