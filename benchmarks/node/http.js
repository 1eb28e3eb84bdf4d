// Benchmark peer: Node's `http` with its defaults, answering GET / (and every
// other request) with "Hello, world!" and POST /echo with the request body,
// with the seed's graceful exit (server.close() on SIGINT, exit on 'close').
// node benchmarks/node/http.js --addr 127.0.0.1:0 [--workers N (ignored)]
'use strict';
const http = require('http');

let addr = '127.0.0.1:7878';
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--addr') addr = args[++i];
  else if (args[i] === '--workers') i++; // one event loop; accepted for a uniform command line
}
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));

const body = 'Hello, world!';
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/echo') {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const echoed = Buffer.concat(chunks);
      res.writeHead(200, { 'Content-Length': echoed.length });
      res.end(echoed);
    });
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.listen(port, host, () => {
  process.stdout.write(`listening on ${host}:${server.address().port}\n`);
});
process.on('SIGINT', () => {
  // Node 19+ also closes idle keep-alive connections here.
  server.close(() => process.exit(0));
});
