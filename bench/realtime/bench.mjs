// Orchestrator of bench/realtime/run: runs cloud-realtime and socket.io (+ Redis adapter) side by
// side on the same machine, each as two replicas on one private Redis, and measures
//   1. fan-out: N subscribers of one instance/room spread over both replicas; a fixed-rate
//      phase (latency at equal load) and a max-throughput phase (bounded publishers in flight):
//      delivered msgs/s, end-to-end latency p50/p99, server CPU per delivered message;
//   2. idle memory: RSS growth of one replica per idle connection at BENCH_IDLE_CONNS.
// Bounded counts and durations, loopback only. Writes JSON results to BENCH_OUT.
import { spawn, fork } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

const env = process.env;
const cfg = {
  subs: Number(env.BENCH_SUBS || 1000),
  workers: Number(env.BENCH_WORKERS || 4),
  rate: Number(env.BENCH_RATE || 20),
  rateSeconds: Number(env.BENCH_RATE_SECONDS || 10),
  // Extra fixed-rate phases (msgs/s) for the latency-against-offered-load plot.
  sweep: (env.BENCH_SWEEP_RATES ?? '5,10,40,80').split(',').filter(Boolean).map(Number),
  sweepSeconds: Number(env.BENCH_SWEEP_SECONDS || 4),
  maxMessages: Number(env.BENCH_MAX_MESSAGES || 1000),
  inflight: Number(env.BENCH_INFLIGHT || 16),
  idleConns: Number(env.BENCH_IDLE_CONNS || 10000),
  idleRooms: Number(env.BENCH_IDLE_ROOMS || 100),
  redisUrl: env.BENCH_REDIS_URL,
  redisPid: Number(env.BENCH_REDIS_PID || 0),
  bin: env.BENCH_REALTIME_BIN,
  out: env.BENCH_OUT || 'results.json',
  targets: (env.BENCH_TARGETS || 'chatons,socketio').split(','),
  parts: (env.BENCH_PARTS || 'fanout,idle').split(','),
};
const TICK = 100; // clock ticks per second (/proc/<pid>/stat)
const here = new URL('.', import.meta.url).pathname;
const log = (...a) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pid) {
  if (!pid) return 0;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}
function rssKib(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(s)[1]);
}

// A stand-in for cloud-api's internal realtime access endpoint: every bench user may watch
// every instance (the access check itself is not what is measured).
const serviceToken = `bench-${process.pid}-${Date.now()}`;
const access = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      userId: 'bench-user', cloudInstanceId: body.cloudInstanceId,
      organizationId: 'org-bench', organizationIds: ['org-bench'],
    }));
  });
});
access.listen(0, '127.0.0.1');
await once(access, 'listening');
const accessUrl = `http://127.0.0.1:${access.address().port}`;

async function startReplica(target, prefix) {
  let child;
  if (target === 'chatons') {
    child = spawn(cfg.bin, [], {
      env: {
        PATH: env.PATH, PORT: '0', LOG_FORMAT: 'json', RUST_LOG: 'warn,cloud_common::server=info,cloud_realtime::serve=info',
        REDIS_URL: cfg.redisUrl, CHATONS_REALTIME_CHANNEL_PREFIX: prefix,
        CHATONS_INTERNAL_SERVICE_TOKEN: serviceToken, CHATONS_CLOUD_API_URL: accessUrl,
        CHATONS_REALTIME_MAX_SOCKETS_PER_INSTANCE: '100000',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  } else {
    child = spawn(process.execPath, [`${here}sio-server.mjs`], {
      env: { PATH: env.PATH, PORT: '0', REDIS_URL: cfg.redisUrl },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
  }
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${target} did not start`)), 30000);
    lines.on('line', (line) => {
      try {
        const v = JSON.parse(line);
        if (v.listening) { clearTimeout(t); resolve(v.listening); }
        if (v.message === 'Listening.' || v.fields?.message === 'Listening.') {
          const addr = v.addr || v.fields?.addr;
          clearTimeout(t);
          resolve(Number(addr.split(':').pop()));
        }
      } catch { /* not JSON */ }
    });
  });
  lines.on('line', () => {}); // keep draining
  return { child, pid: child.pid, url: `http://127.0.0.1:${port}` };
}

async function stop(replica) {
  replica.child.kill('SIGTERM');
  await Promise.race([once(replica.child, 'exit'), sleep(15000)]);
}

function startWorkers(n) {
  return Array.from({ length: n }, () => {
    const w = fork(`${here}loadgen.mjs`, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    w.setMaxListeners(50);
    return w;
  });
}
const next = (w, ev) => new Promise((resolve) => {
  const h = (m) => { if (m.ev === ev) { w.off('message', h); resolve(m); } };
  w.on('message', h);
});

async function connectAll(workers, target, urls, total, rooms) {
  const per = Math.ceil(total / workers.length);
  const waits = workers.map((w, k) => {
    const p = next(w, 'connected');
    w.send({ cmd: 'connect', target, urls, rooms, count: Math.min(per, total - k * per), offset: k * per, concurrency: 50, bearer: 'bench-user-token' });
    return p;
  });
  const res = await Promise.all(waits);
  return { connected: res.reduce((a, r) => a + r.n, 0), failed: res.reduce((a, r) => a + r.failed, 0), ms: Math.max(...res.map((r) => r.ms)) };
}

async function runPhase(workers, replicas, target, spec) {
  const pids = replicas.map((r) => r.pid);
  const cpu0 = pids.map(cpuTicks);
  const clientCpu0 = workers.map((w) => cpuTicks(w.pid));
  const redis0 = cpuTicks(cfg.redisPid);
  const started = Date.now();
  const waits = workers.map((w, k) => {
    const p = next(w, 'phase-done');
    w.send({
      cmd: 'phase', name: spec.name, messages: spec.messages, deadlineMs: spec.deadlineMs,
      publish: k === 0, rate: spec.rate, inflight: cfg.inflight, room: 'bench-room',
      publishUrls: replicas.map((r) => r.url), serviceToken,
    });
    return p;
  });
  const res = await Promise.all(waits);
  const end = Math.max(...res.map((r) => r.lastRecv || started));
  const cpu = pids.map(cpuTicks).reduce((a, v, i) => a + v - cpu0[i], 0) / TICK;
  const clientCpu = workers.map((w) => cpuTicks(w.pid)).reduce((a, v, i) => a + v - clientCpu0[i], 0) / TICK;
  const redisCpu = (cpuTicks(cfg.redisPid) - redis0) / TICK;
  const delivered = res.reduce((a, r) => a + r.received, 0);
  const expected = res.reduce((a, r) => a + r.expected, 0);
  const lat = res[0];
  const seconds = Math.max(0.001, (end - started) / 1000);
  return {
    phase: spec.name, rate: spec.rate || null, messages: spec.messages, subscribers: cfg.subs, expected, delivered,
    seconds, deliveredPerSecond: delivered / seconds,
    p50ms: lat.p50, p99ms: lat.p99, maxMs: lat.max, latencySamples: lat.samples,
    serverCpuSeconds: cpu, serverCpuUsPerDelivery: delivered ? (cpu * 1e6) / delivered : null,
    redisCpuSeconds: redisCpu, disconnects: Math.max(...res.map((r) => r.disconnects)),
    clientCpuSeconds: clientCpu, clientCpuUsPerDelivery: delivered ? (clientCpu * 1e6) / delivered : null,
  };
}

async function fanout(target) {
  const prefix = `bench:${target}:${Date.now()}:`;
  const replicas = [await startReplica(target, prefix), await startReplica(target, prefix)];
  await sleep(500);
  const workers = startWorkers(cfg.workers);
  const c = await connectAll(workers, target, replicas.map((r) => r.url), cfg.subs, ['bench-room']);
  log(`${target}: ${c.connected} subscribers connected in ${c.ms} ms (${c.failed} failed)`);
  await sleep(1000);
  const results = [];
  const rateMessages = cfg.rate * cfg.rateSeconds;
  results.push(await runPhase(workers, replicas, target, { name: 'rate', messages: rateMessages, rate: cfg.rate, deadlineMs: cfg.rateSeconds * 1000 + 30000 }));
  log(`${target} rate:`, JSON.stringify(results.at(-1)));
  await sleep(1000);
  results.push(await runPhase(workers, replicas, target, { name: 'max', messages: cfg.maxMessages, deadlineMs: 120000 }));
  log(`${target} max:`, JSON.stringify(results.at(-1)));
  for (const rate of cfg.sweep) {
    await sleep(1000);
    const name = `sweep-${rate}`;
    results.push(await runPhase(workers, replicas, target, { name, messages: Math.max(1, Math.round(rate * cfg.sweepSeconds)), rate, deadlineMs: cfg.sweepSeconds * 1000 + 30000 }));
    log(`${target} ${name}:`, JSON.stringify(results.at(-1)));
  }
  for (const w of workers) w.send({ cmd: 'exit' });
  await sleep(500);
  for (const r of replicas) await stop(r);
  return { connected: c.connected, connectFailed: c.failed, phases: results };
}

async function idle(target) {
  const prefix = `bench:${target}:idle:${Date.now()}:`;
  const replica = await startReplica(target, prefix);
  await sleep(1500);
  const rss0 = rssKib(replica.pid);
  const workers = startWorkers(cfg.workers);
  const rooms = Array.from({ length: cfg.idleRooms }, (_, i) => `idle-room-${i}`);
  const c = await connectAll(workers, target, [replica.url], cfg.idleConns, rooms);
  log(`${target}: ${c.connected} idle connections in ${c.ms} ms (${c.failed} failed)`);
  await sleep(5000);
  const rss1 = rssKib(replica.pid);
  for (const w of workers) w.send({ cmd: 'exit' });
  await sleep(1000);
  await stop(replica);
  return {
    connections: c.connected, failed: c.failed, connectMs: c.ms, rssBeforeKib: rss0, rssAfterKib: rss1,
    kibPerConnection: c.connected ? (rss1 - rss0) / c.connected : null,
  };
}

const results = { config: cfg, targets: {} };
for (const target of cfg.targets) {
  let f = { connected: 0, connectFailed: 0, phases: [] };
  let i = null;
  if (cfg.parts.includes('fanout')) {
    log(`=== ${target}: fan-out over two replicas`);
    f = await fanout(target);
  }
  if (cfg.parts.includes('idle')) {
    log(`=== ${target}: idle memory at ${cfg.idleConns} connections`);
    i = await idle(target);
    log(`${target} idle:`, JSON.stringify(i));
  }
  results.targets[target] = { fanout: f, idle: i };
}
access.close();
fs.writeFileSync(cfg.out, JSON.stringify(results, null, 2));
log(`results written to ${cfg.out}`);
process.exit(0);
