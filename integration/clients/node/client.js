'use strict';
// The grpc-js-xds member of Switchboard's real-client matrix: a proxyless
// xDS client that calls /grpc.health.v1.Health/Check on an xds:/// target
// and reports which backend answered. Same command line and output as
// ../goclient (see its package comment):
//
//   node client.js --target xds:///NAME [--count N] [--interval-ms M] [--timeout-ms T]
//                  [--header k=v]...   (request metadata sent with every call)
//                  [--cycle-header k=v1,v2,...]  (call n carries k: v[n mod len])
//                  [--concurrency K]   (rounds of K calls started together)
//                  [--stagger-ms S]    (within a round, calls start S ms apart)
//
// One JSON line per call on stdout, written when the call ends:
//   {"seq":<n>,"t":<unix ms>,"backend":"<x-backend header or empty>","code":<grpc code>,"error":"<message or empty>"}
// seq numbers the calls from 0 in the order they started (call n is in round n/K).
// --count 0 runs until SIGINT, SIGTERM or, when stdin is a pipe, its closing.
// The bootstrap comes from the file named by GRPC_XDS_BOOTSTRAP. Everything
// else goes to stderr.

const fs = require('fs');

// Installed before the slow requires below (seconds on a busy machine), so
// that a SIGTERM while loading still ends the program cleanly.
let stopping = false;
const stop = () => { stopping = true; };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const grpc = require('@grpc/grpc-js');
const grpcXds = require('@grpc/grpc-js-xds');

const CHECK_METHOD = '/grpc.health.v1.Health/Check';
const BACKEND_HEADER = 'x-backend';

function usage(msg) {
  process.stderr.write(`node client: ${msg}\n` +
    'usage: node client.js --target xds:///NAME [--count N] [--interval-ms M] [--timeout-ms T] [--header k=v]...\n' +
    '                      [--cycle-header k=v1,v2,...] [--concurrency K] [--stagger-ms S]\n');
  process.exit(2);
}

// parseArgs accepts "--flag value" and "--flag=value", like Go's flag package.
function parseArgs(argv) {
  const opts = { target: '', count: 0, intervalMs: 10, timeoutMs: 1000, headers: [], cycle: null, concurrency: 1, staggerMs: 0 };
  const ints = { '--count': 'count', '--interval-ms': 'intervalMs', '--timeout-ms': 'timeoutMs', '--concurrency': 'concurrency',
    '--stagger-ms': 'staggerMs' };
  for (let i = 0; i < argv.length; i++) {
    let [name, value] = argv[i].split(/=(.*)/s, 2);
    if (name.startsWith('-') && !name.startsWith('--')) name = '-' + name;
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`${name} needs a value`);
      value = argv[++i];
    }
    if (name === '--target') {
      opts.target = value;
    } else if (name === '--header') {
      const eq = value.indexOf('=');
      if (eq <= 0) usage(`--header: ${JSON.stringify(value)} is not k=v`);
      opts.headers.push([value.slice(0, eq), value.slice(eq + 1)]);
    } else if (name === '--cycle-header') {
      const eq = value.indexOf('=');
      if (eq <= 0) usage(`--cycle-header: ${JSON.stringify(value)} is not k=v1,v2,...`);
      opts.cycle = { key: value.slice(0, eq), values: value.slice(eq + 1).split(',') };
    } else if (name in ints) {
      if (!/^\d+$/.test(value)) usage(`${name}: ${JSON.stringify(value)} is not a non-negative integer`);
      opts[ints[name]] = Number(value);
    } else {
      usage(`unknown flag ${name}`);
    }
  }
  if (!opts.target) usage('--target is required');
  if (opts.timeoutMs <= 0) usage('--timeout-ms must be > 0');
  if (opts.concurrency <= 0) usage('--concurrency must be > 0');
  return opts;
}

// headersOf returns the request metadata of call number seq.
function headersOf(opts, seq) {
  if (!opts.cycle) return opts.headers;
  const { key, values } = opts.cycle;
  return [...opts.headers, [key, values[seq % values.length]]];
}

// call makes call number seq, a health check, and resolves with its printed
// result.
function call(client, seq, timeoutMs, headers) {
  return new Promise((resolve) => {
    let backend = '';
    const deadline = new Date(Date.now() + timeoutMs);
    const md = new grpc.Metadata();
    for (const [k, v] of headers) md.add(k, v);
    const c = client.makeUnaryRequest(CHECK_METHOD, (x) => x, (x) => x, Buffer.alloc(0),
      md, { deadline }, (err) => {
        const r = { seq, t: Date.now(), backend, code: 0, error: '' };
        if (err) {
          r.code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
          r.error = err.details || err.message || String(err);
        }
        resolve(r);
      });
    c.on('metadata', (md) => {
      const v = md.get(BACKEND_HEADER);
      if (v.length > 0) backend = String(v[0]);
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  grpcXds.register();

  // Only a pipe: a background job in a script gets /dev/null on stdin.
  if (opts.count === 0 && fs.fstatSync(0).isFIFO()) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }

  const client = new grpc.Client(opts.target, grpc.credentials.createInsecure());
  for (let seq = 0; opts.count === 0 || seq < opts.count;) {
    if (seq > 0 && opts.intervalMs > 0) await sleep(opts.intervalMs);
    if (stopping) break;
    const n = opts.count === 0 ? opts.concurrency : Math.min(opts.concurrency, opts.count - seq);
    // The round's calls start together (or stagger apart) and each is
    // printed as it ends.
    // Writes to pipes and files are synchronous on Linux, so every line is
    // out before the next round starts.
    const round = [];
    for (let i = 0; i < n; i++) {
      if (i > 0 && opts.staggerMs > 0) await sleep(opts.staggerMs);
      round.push(call(client, seq + i, opts.timeoutMs, headersOf(opts, seq + i))
        .then((r) => { process.stdout.write(JSON.stringify(r) + '\n'); }));
    }
    await Promise.all(round);
    seq += n;
  }
  client.close();
  // stdin and the xDS stream would keep the event loop alive.
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`node client: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
