// Load generator worker for bench/realtime/bench.mjs (forked, driven over IPC). Holds
// subscribers (cloud-realtime: `ws` websocket clients with minted tokens; socket.io:
// socket.io-client, websocket transport only), counts deliveries per phase and, in worker 0,
// publishes and measures end-to-end latency with this process's monotonic clock.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { io } from 'socket.io-client';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
let target = null;
let sockets = [];
let phase = null; // {name, expected, received, lat, deadline, lastRecv}
let disconnects = 0;
const PAD = 'x'.repeat(100);

function request(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, agent,
        headers: { ...headers, ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function onEvent(event) {
  const p = phase;
  if (!p || !event || !event.payload || event.payload.p !== p.name) return;
  p.received++;
  p.lastRecv = Date.now();
  if (p.lat && p.latN < p.lat.length) p.lat[p.latN++] = performance.now() - event.payload.t;
  if (p.received >= p.expected) finish();
}

async function connectChatons(base, room, bearer) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await request('GET', `${base}/v1/realtime/token?cloudInstanceId=${room}`, {
      headers: { authorization: `Bearer ${bearer}` },
    });
    if (r.status !== 200) throw new Error(`token ${r.status} ${r.text}`);
    const { token } = JSON.parse(r.text);
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?token=${token}`, { perMessageDeflate: false });
    const ok = await new Promise((resolve) => {
      ws.once('message', () => resolve(true)); // hello
      ws.once('error', () => resolve(false));
      ws.once('close', () => resolve(false));
    });
    if (!ok) continue;
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.seq !== undefined) onEvent(msg);
    });
    ws.on('close', () => { disconnects++; });
    return ws;
  }
  throw new Error('cannot connect');
}

async function connectSio(base, room) {
  const socket = io(base, { transports: ['websocket'], query: { room }, forceNew: true, reconnection: false });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  socket.on('event', onEvent);
  socket.on('disconnect', () => { disconnects++; });
  return socket;
}

async function connect(cmd) {
  target = cmd.target;
  const jobs = [];
  let failed = 0;
  for (let i = 0; i < cmd.count; i++) jobs.push(i);
  const started = Date.now();
  const workers = Array.from({ length: cmd.concurrency }, async () => {
    while (jobs.length) {
      const i = jobs.shift();
      const base = cmd.urls[(cmd.offset + i) % cmd.urls.length];
      const room = cmd.rooms[(cmd.offset + i) % cmd.rooms.length];
      try {
        sockets.push(target === 'chatons' ? await connectChatons(base, room, cmd.bearer) : await connectSio(base, room));
      } catch (e) {
        failed++;
        if (failed < 3) console.error(`connect failed: ${e.message}`);
      }
    }
  });
  await Promise.all(workers);
  process.send({ ev: 'connected', n: sockets.length, failed, ms: Date.now() - started });
}

function finish() {
  const p = phase;
  if (!p || p.done) return;
  p.done = true;
  clearTimeout(p.timer);
  let p50 = null, p99 = null, max = null;
  if (p.lat && p.latN > 0) {
    const l = p.lat.subarray(0, p.latN).sort();
    p50 = l[Math.floor(l.length * 0.5)];
    p99 = l[Math.min(l.length - 1, Math.floor(l.length * 0.99))];
    max = l[l.length - 1];
  }
  process.send({ ev: 'phase-done', name: p.name, expected: p.expected, received: p.received, lastRecv: p.lastRecv, p50, p99, max, samples: p.latN, disconnects });
}

async function publishAll(cmd) {
  const total = cmd.messages;
  let next = 0;
  const one = async (i) => {
    const event = { id: randomUUID(), type: 'bench', ts: '', organizationId: 'org-bench', payload: { p: cmd.name, i, t: performance.now(), pad: PAD } };
    const base = cmd.publishUrls[i % cmd.publishUrls.length];
    const r = target === 'chatons'
      ? await request('POST', `${base}/v1/realtime/events`, { headers: { authorization: `Bearer ${cmd.serviceToken}` }, body: { cloudInstanceId: cmd.room, event } })
      : await request('POST', `${base}/publish`, { body: { room: cmd.room, event } });
    if (r.status !== 202) console.error(`publish ${r.status} ${r.text}`);
  };
  if (cmd.rate) {
    // Fixed rate: message i is due at start + i / rate.
    const start = performance.now();
    const pending = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / cmd.rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pending.push(one(i));
    }
    await Promise.all(pending);
  } else {
    const lanes = Array.from({ length: cmd.inflight }, async () => {
      while (next < total) await one(next++);
    });
    await Promise.all(lanes);
  }
}

process.on('message', async (cmd) => {
  try {
    if (cmd.cmd === 'connect') await connect(cmd);
    else if (cmd.cmd === 'phase') {
      const live = sockets.length;
      phase = {
        name: cmd.name, expected: cmd.messages * live, received: 0, lastRecv: 0, done: false,
        lat: cmd.publish ? new Float64Array(cmd.messages * live) : null, latN: 0,
      };
      phase.timer = setTimeout(finish, cmd.deadlineMs);
      if (cmd.publish) publishAll(cmd).catch((e) => console.error(`publisher: ${e.message}`));
    } else if (cmd.cmd === 'exit') {
      for (const s of sockets) { try { target === 'chatons' ? s.terminate() : s.disconnect(); } catch {} }
      process.exit(0);
    }
  } catch (e) {
    console.error(e);
    process.exit(1);
  }
});
