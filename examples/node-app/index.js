'use strict';
// A tiny HTTP app with one small dependency from the npm registry.
const http = require('http');
const ms = require('ms');

if (process.argv.includes('--selftest')) {
  if (ms('2 days') !== 172800000) throw new Error('ms is broken');
  console.log('selftest ok');
  process.exit(0);
}

const started = Date.now();
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ app: 'node-app', up: ms(Date.now() - started) }) + '\n');
}).listen(process.env.PORT || 8000);
