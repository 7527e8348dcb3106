/**
 * Fault injection: restart Redis (which keeps nothing on disk) while a run trains, and check what
 * survives.
 *
 *   npm run build && node --import tsx faults/fault-redis-restart.ts
 *
 * Builds nothing (runs dist/main.js). Starts a PRIVATE Redis (`redis-server --port 6391`, no RDB, no
 * AOF, in a temporary directory — the shared one on 6379 is never touched) and, on loopback only,
 * `node dist/main.js all` (migrations, API, one worker) on a private PostgreSQL schema of the shared
 * PostgreSQL and the committed fixture (DATA_DIR=test/fixtures). Submits a 24-epoch run (~1 s an epoch here) (batch 32,
 * emnist-mini) and follows its SSE stream like EventSource does (reconnect with Last-Event-ID when a
 * connection ends). Once epoch 2 is stored: `redis-cli shutdown nosave`, REDIS_DOWN_MS (default
 * 1000) down, start again on the same port — empty: the BullMQ job, its lock and the queue are gone.
 * Then checks:
 *   - Redis really came back empty;
 *   - the run reaches `succeeded` in PostgreSQL (within 120 s), trained to its end;
 *   - its epoch rows are exactly 1..24, each once; its checkpoint row is gone;
 *   - its stored events: seq 1..K without gap, createdAt in order, one started, one completed
 *     (last), epoch events 1..24 each once;
 *   - the SSE client received every stored event, in order, none twice, none missing;
 *   - the service still works afterwards: /readyz is 200 and a new 1-epoch run succeeds.
 * It reports (without judging) what BullMQ knows of the job afterwards and the service's error logs.
 * Prints what it did and what it checked; exit code 0 when every check passed, 1 otherwise.
 * Bounded: FAULT_TIMEOUT_MS (default 300000); it cleans up (service, private Redis and its
 * directory, schema) in every case.
 *
 * Environment: FAULT_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/regula_bench),
 * FAULT_REDIS_PORT (default 6391; must be free), REDIS_DOWN_MS (default 1000).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import pg from 'pg';
import {
  runFaultScript,
  MAIN,
  ROOT,
  assertLoopback,
  check,
  checkStoredEvents,
  describeEvents,
  follow,
  json,
  request,
  say,
  sleep,
  startProc,
  stopProc,
  until,
  type Proc,
} from './support.js';

const EPOCHS = 24;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 300_000);
const DOWN_MS = Number(process.env.REDIS_DOWN_MS ?? 1000);
const DB = process.env.FAULT_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/regula_bench';
const REDIS_PORT = Number(process.env.FAULT_REDIS_PORT ?? 6391);
const REDIS = `redis://127.0.0.1:${REDIS_PORT}`;
assertLoopback('FAULT_DATABASE_URL', DB);
if (REDIS_PORT === 6379) {
  console.error('FAULT_REDIS_PORT must not be 6379: this script restarts its Redis');
  process.exit(1);
}
if (!existsSync(MAIN)) {
  console.error('dist/main.js is missing: run `npm run build` first');
  process.exit(1);
}

const id = randomBytes(4).toString('hex');
const schema = `fault_${id}`;
const prefix = `fault-${id}`;
const port = 4100 + Math.floor(Math.random() * 800);
const base = `http://127.0.0.1:${port}`;
const redisDir = mkdtempSync(path.join(os.tmpdir(), 'regula-fault-redis-'));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  DATABASE_URL: `${DB}?schema=${schema}`,
  REDIS_URL: REDIS,
  QUEUE_PREFIX: prefix,
  DATA_DIR: path.join(ROOT, 'test', 'fixtures'),
  HOST: '127.0.0.1',
  PORT: String(port),
  TFJS_BACKEND: 'auto',
  WORKER_CONCURRENCY: '1',
  LOG_LEVEL: 'info',
  SHUTDOWN_GRACE_MS: '5000',
  PROGRESS_INTERVAL_MS: '1000',
  AUTH: 'off',
};

function redisCli(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(REDIS_PORT), ...args], { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: (r.stdout + r.stderr).trim() };
}

function portOpen(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

let redisStarted = false;
function startRedis(): void {
  const r = spawnSync(
    'redis-server',
    ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--daemonize', 'yes', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--pidfile', path.join(redisDir, 'redis.pid'), '--logfile', path.join(redisDir, 'redis.log')],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (r.status !== 0) throw new Error(`redis-server failed: ${r.stderr || r.stdout}`);
  redisStarted = true;
}

async function waitRedis(up: boolean): Promise<void> {
  await until(`private Redis ${up ? 'up' : 'down'}`, async () => ((await portOpen(REDIS_PORT)) === up && (!up || redisCli('ping').out === 'PONG') ? true : undefined), 15_000);
}

let service: Proc | undefined;

async function cleanup(): Promise<void> {
  await stopProc(service);
  if (redisStarted) {
    redisCli('shutdown', 'nosave');
    await waitRedis(false).catch(() => {});
  }
  rmSync(redisDir, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: DB });
  await client.connect().catch(() => {});
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await client.end().catch(() => {});
}

async function main(): Promise<void> {
  if (await portOpen(REDIS_PORT)) throw new Error(`port ${REDIS_PORT} is already in use: not starting a private Redis there`);
  startRedis();
  await waitRedis(true);
  say(`private Redis on 127.0.0.1:${REDIS_PORT} (no RDB, no AOF, dir ${redisDir}); schema ${schema}, queue prefix ${prefix}, API ${base}`);

  service = startProc('service', 'all', env);
  await until('the API', async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined), 90_000);
  await until('the worker', () => (service!.logs.some((l) => l.msg === 'regula all started') ? true : undefined), 60_000);
  say('service ready (API + one worker)');

  const submitted = await json<{ id: string }>(`${base}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request(EPOCHS, 'fault: restart Redis')) });
  if (submitted.status !== 202) throw new Error(`POST /v1/runs answered ${submitted.status}: ${JSON.stringify(submitted.body)}`);
  const runId = submitted.body.id;
  say(`submitted run ${runId} (${EPOCHS} epochs, batch 32, emnist-mini)`);

  const abort = new AbortController();
  const sse = follow(base, runId, abort.signal);
  const u = new URL(REDIS);
  const connection = { host: u.hostname, port: Number(u.port) };
  try {
    await until('epoch 2 to be stored', () => (sse.events.some((e) => e.type === 'epoch' && e.data.epoch === 2) ? true : undefined), 180_000);
    const before = await json<{ epochs: { epoch: number }[] }>(`${base}/v1/runs/${runId}/metrics`);
    const storedAtRestart = Math.max(...before.body.epochs.map((e) => e.epoch));
    const queue = new Queue('runs', { connection, prefix });
    const stateBefore = await (await queue.getJob(runId))?.getState();
    await queue.close();
    const keysBefore = redisCli('dbsize').out;

    say(`epoch ${storedAtRestart} stored, BullMQ job state "${String(stateBefore)}", ${keysBefore} keys in Redis: redis-cli shutdown nosave`);
    const down = performance.now();
    const shut = redisCli('shutdown', 'nosave');
    await waitRedis(false);
    say(`private Redis is down (${shut.ok ? 'shutdown ok' : `redis-cli: ${shut.out}`}); starting it again in ${DOWN_MS} ms`);
    await sleep(DOWN_MS);
    startRedis();
    await waitRedis(true);
    const keysAfter = redisCli('dbsize').out;
    say(`private Redis is back after ${Math.round(performance.now() - down)} ms with ${keysAfter} keys`);
    check(keysBefore !== '0' && Number(keysAfter) <= 2, `Redis came back empty: the queue, the job and its lock are gone (${keysBefore} keys before, ${keysAfter} right after)`);

    let final: { status: string; error?: string | null } | undefined;
    try {
      final = await until(
        'the run to leave queued/running',
        async () => {
          const r = await json<{ status: string; error?: string | null }>(`${base}/v1/runs/${runId}`).catch(() => undefined);
          return r && !['queued', 'running'].includes(r.body.status) ? r.body : undefined;
        },
        120_000,
      );
    } catch (err) {
      say(`FINDING: ${err instanceof Error ? err.message : String(err)}`);
    }
    await until('the SSE client to see a terminal event', () => (sse.done() ? true : undefined), 15_000).catch(() => say('the SSE client saw no terminal event within 15 s'));
    const run = await json<{ status: string; error?: string | null }>(`${base}/v1/runs/${runId}`);
    check(run.body.status === 'succeeded', `run status is succeeded in PostgreSQL (got ${run.body.status}${run.body.error ? `, error: ${run.body.error}` : ''}${final ? '' : ', still unfinished after 120 s'})`);

    const client = new pg.Client({ connectionString: DB });
    await client.connect();
    try {
      const rows = (await client.query<{ epoch: number }>(`SELECT epoch FROM "${schema}"."EpochMetric" WHERE "runId" = $1 ORDER BY epoch`, [runId])).rows.map((r) => r.epoch);
      check(JSON.stringify(rows) === JSON.stringify(Array.from({ length: EPOCHS }, (_, i) => i + 1)), `epoch rows are exactly 1..${EPOCHS}, each once (got [${rows.join(', ')}])`);
      const cp = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."Checkpoint" WHERE "runId" = $1`, [runId]);
      check(cp.rows[0]?.n === 0, `the checkpoint row is gone (${cp.rows[0]?.n ?? '?'} left)`);
      const art = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."ModelArtifact" WHERE "runId" = $1`, [runId]);
      check(art.rows[0]?.n === 1, `the model artifact is stored (${art.rows[0]?.n ?? '?'} rows)`);
      const stored = (
        await client.query<{ seq: number; type: string; data: Record<string, unknown>; createdAt: Date }>(
          `SELECT seq, type, data, "createdAt" FROM "${schema}"."RunEvent" WHERE "runId" = $1 ORDER BY seq`,
          [runId],
        )
      ).rows;
      say(`stored events (batch events left out): ${describeEvents(stored)}`);
      checkStoredEvents(stored, EPOCHS);
      check(!stored.some((e) => ['resumed', 'restarted', 'retrying'].includes(e.type)), `the worker kept training through the restart: no resumed/restarted/retrying event (got ${stored.filter((e) => ['resumed', 'restarted', 'retrying'].includes(e.type)).map((e) => e.type).join(', ') || 'none'})`);

      say(`SSE client: ${sse.connections.length} connection(s): ${sse.connections.map((c) => `[${c.at} status ${c.status}, Last-Event-ID ${c.lastEventId ?? '-'}, ${c.ended ?? 'open'}]`).join(' ')}`);
      if (sse.anomalies.length) say(`SSE client: out-of-sequence deliveries: ${sse.anomalies.join('; ')}`);
      const got = sse.events.map((e) => e.seq);
      const want = stored.map((e) => e.seq);
      const missing = want.filter((s) => !got.includes(s));
      check(
        JSON.stringify(got) === JSON.stringify(want),
        `the SSE client received every stored event once, in order (${got.length} received of ${want.length} stored${missing.length ? `; missing seq ${missing.map((s) => `${s} (${stored.find((e) => e.seq === s)?.type})`).join(', ')}` : ''}${sse.anomalies.length ? `; ${sse.anomalies.length} out-of-sequence` : ''})`,
      );
    } finally {
      await client.end();
    }

    const q = new Queue('runs', { connection, prefix });
    const job = await q.getJob(runId);
    say(`after the run: BullMQ ${job ? `has the job, state "${await job.getState()}"` : 'has no job for the run (it was lost with Redis; nothing moved it to completed)'}; counts ${JSON.stringify(await q.getJobCounts())}`);
    await q.close();
    const errs = service.logs.filter((l) => (l.level ?? 0) >= 50 && (l.time ?? 0) >= Date.now() - (performance.now() - down));
    const kinds = new Map<string, number>();
    for (const l of errs) kinds.set(`${l.msg} — ${l.err?.message?.split('\n')[0]?.slice(0, 160) ?? ''}`, (kinds.get(`${l.msg} — ${l.err?.message?.split('\n')[0]?.slice(0, 160) ?? ''}`) ?? 0) + 1);
    say(`service error log lines since the restart: ${errs.length}${[...kinds].map(([k, n]) => `\n         ${n} × ${k}`).join('')}`);

    // Does the service still work with the emptied Redis?
    const ready = await fetch(`${base}/readyz`).then((r) => r.status, () => 0);
    check(ready === 200, `/readyz answers 200 after the restart (got ${ready})`);
    const second = await json<{ id: string }>(`${base}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request(1, 'fault: after the Redis restart')) });
    say(`submitted a 1-epoch run after the restart: ${second.status} ${second.body.id ?? JSON.stringify(second.body)}`);
    let secondStatus = 'not submitted';
    if (second.status === 202) {
      secondStatus = await until(
        'the second run to finish',
        async () => {
          const r = await json<{ status: string }>(`${base}/v1/runs/${second.body.id}`).catch(() => undefined);
          return r && !['queued', 'running'].includes(r.body.status) ? r.body.status : undefined;
        },
        90_000,
      ).catch(() => 'still queued/running after 90 s');
    }
    check(secondStatus === 'succeeded', `a new run submitted after the restart succeeds (got ${secondStatus})`);
  } finally {
    abort.abort();
  }
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
