/**
 * Fault injection: Redis loses every key (FLUSHALL) while one run trains and two wait in the queue
 * (issue 12, item 7). Without a reconciler the two waiting runs were never picked up.
 *
 *   npm run build && node --import tsx faults/fault-redis-flush.ts
 *
 * Starts a PRIVATE Redis (`redis-server --port 6392`, no persistence, a temporary directory — the
 * shared one on 6379 is never touched) and `node dist/main.js all` (migrations, API, one worker,
 * RECONCILE_INTERVAL_MS=3000) on a private PostgreSQL schema, on loopback, with the committed
 * fixture. Submits three runs of EPOCHS epochs (batch 32, emnist-mini): the first trains, two wait.
 * Once the first has stored epoch 2: `redis-cli flushall` (the queue, the jobs, their locks and
 * priorities are gone). Then checks:
 *   - Redis really was emptied;
 *   - all three runs reach `succeeded` in PostgreSQL (within FAULT_RUN_TIMEOUT_MS, default 240 s);
 *   - each run's epoch rows are exactly 1..its epochs, each once; no checkpoint row is left; one
 *     completed event each and epoch events 1..EPOCHS each once;
 *   - the reconciler re-enqueued the two waiting runs and left the training one alone (it had a
 *     heartbeat), so the first run was never trained twice (one `started` event).
 * Prints what it did and what it checked; exit code 0 when every check passed. Cleans up (service,
 * private Redis and its directory, schema) in every case.
 *
 * Environment: FAULT_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/regula_bench),
 * FAULT_REDIS_PORT (default 6392; must be free), FAULT_TIMEOUT_MS (default 420000).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runFaultScript, MAIN, ROOT, assertLoopback, check, checkStoredEvents, describeEvents, json, request, say, startProc, stopProc, until, type Proc } from './support.js';

/** Epochs of the two waiting runs; the first trains FIRST_EPOCHS, long enough for reconciler passes during it. */
const EPOCHS = 6;
const FIRST_EPOCHS = 30;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 420_000);
const RUN_TIMEOUT_MS = Number(process.env.FAULT_RUN_TIMEOUT_MS ?? 240_000);
const DB = process.env.FAULT_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/regula_bench';
const REDIS_PORT = Number(process.env.FAULT_REDIS_PORT ?? 6392);
assertLoopback('FAULT_DATABASE_URL', DB);
if (REDIS_PORT === 6379) {
  console.error('FAULT_REDIS_PORT must not be 6379: this script flushes its Redis');
  process.exit(1);
}
if (!existsSync(MAIN)) {
  console.error('dist/main.js is missing: run `npm run build` first');
  process.exit(1);
}

const id = randomBytes(4).toString('hex');
const schema = `fault_${id}`;
const port = 4100 + Math.floor(Math.random() * 800);
const base = `http://127.0.0.1:${port}`;
const redisDir = mkdtempSync(path.join(os.tmpdir(), 'regula-fault-redis-'));

const redisCli = (...args: string[]) => {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(REDIS_PORT), ...args], { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: (r.stdout + r.stderr).trim() };
};
const portOpen = (p: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: p });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

let redisStarted = false;
let service: Proc | undefined;

async function cleanup(): Promise<void> {
  await stopProc(service);
  if (redisStarted) redisCli('shutdown', 'nosave');
  rmSync(redisDir, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: DB });
  await client.connect().catch(() => {});
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await client.end().catch(() => {});
}

async function main(): Promise<void> {
  if (await portOpen(REDIS_PORT)) throw new Error(`port ${REDIS_PORT} is already in use: not starting a private Redis there`);
  const r = spawnSync(
    'redis-server',
    ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--daemonize', 'yes', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--pidfile', path.join(redisDir, 'redis.pid'), '--logfile', path.join(redisDir, 'redis.log')],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (r.status !== 0) throw new Error(`redis-server failed: ${r.stderr || r.stdout}`);
  redisStarted = true;
  await until('private Redis', () => (redisCli('ping').out === 'PONG' ? true : undefined), 15_000);
  say(`private Redis on 127.0.0.1:${REDIS_PORT}; schema ${schema}; API ${base}`);

  service = startProc('service', 'all', {
    ...process.env,
    DATABASE_URL: `${DB}?schema=${schema}`,
    REDIS_URL: `redis://127.0.0.1:${REDIS_PORT}`,
    QUEUE_PREFIX: `fault-${id}`,
    DATA_DIR: path.join(ROOT, 'test', 'fixtures'),
    HOST: '127.0.0.1',
    PORT: String(port),
    TFJS_BACKEND: 'auto',
    LOG_LEVEL: 'info',
    PROGRESS_INTERVAL_MS: '1000',
    RECONCILE_INTERVAL_MS: '3000',
    AUTH: 'off',
  });
  await until('the API', async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined), 90_000);
  await until('the worker', () => (service!.logs.some((l) => l.msg === 'regula all started') ? true : undefined), 60_000);

  const ids: string[] = [];
  for (const [k, name] of ['trains first', 'waits 1', 'waits 2'].entries()) {
    const s = await json<{ id: string }>(`${base}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request(k === 0 ? FIRST_EPOCHS : EPOCHS, `fault flush: ${name}`)) });
    if (s.status !== 202) throw new Error(`POST /v1/runs answered ${s.status}: ${JSON.stringify(s.body)}`);
    ids.push(s.body.id);
  }
  say(`submitted 3 runs (${FIRST_EPOCHS}, ${EPOCHS}, ${EPOCHS} epochs): ${ids.join(', ')}`);
  const [first] = ids as [string, string, string];
  await until(
    'epoch 2 of the first run',
    async () => ((await json<{ epochs: { epoch: number }[] }>(`${base}/v1/runs/${first}/metrics`)).body.epochs?.some((e) => e.epoch === 2) ? true : undefined),
    180_000,
  );
  const statuses = await Promise.all(ids.map(async (i) => (await json<{ status: string }>(`${base}/v1/runs/${i}`)).body.status));
  const keysBefore = redisCli('dbsize').out;
  say(`first run stored epoch 2; statuses ${statuses.join(', ')}; ${keysBefore} keys in Redis: redis-cli flushall`);
  const flushed = redisCli('flushall');
  const keysAfter = redisCli('dbsize').out;
  check(flushed.ok && Number(keysBefore) > 0 && Number(keysAfter) <= 2, `Redis was emptied (${keysBefore} keys before, ${keysAfter} right after)`);
  check(statuses[0] === 'running' && statuses[1] === 'queued' && statuses[2] === 'queued', `at the flush one run trained and two waited (${statuses.join(', ')})`);

  const finals = await Promise.all(
    ids.map((i) =>
      until(
        `run ${i} to finish`,
        async () => {
          const v = await json<{ status: string; error?: string | null }>(`${base}/v1/runs/${i}`).catch(() => undefined);
          return v && !['queued', 'running'].includes(v.body.status) ? v.body : undefined;
        },
        RUN_TIMEOUT_MS,
      ).catch(() => ({ status: 'still unfinished', error: null })),
    ),
  );
  const client = new pg.Client({ connectionString: DB });
  await client.connect();
  let firstFinished = Infinity;
  try {
    firstFinished = (await client.query<{ f: Date | null }>(`SELECT "finishedAt" AS f FROM "${schema}"."Run" WHERE id = $1`, [first])).rows[0]?.f?.getTime() ?? Infinity;
    for (const [k, i] of ids.entries()) {
      const epochs = k === 0 ? FIRST_EPOCHS : EPOCHS;
      check(finals[k]!.status === 'succeeded', `run ${k + 1} succeeded (got ${finals[k]!.status}${finals[k]!.error ? `: ${finals[k]!.error}` : ''})`);
      const rows = (await client.query<{ epoch: number }>(`SELECT epoch FROM "${schema}"."EpochMetric" WHERE "runId" = $1 ORDER BY epoch`, [i])).rows.map((x) => x.epoch);
      check(JSON.stringify(rows) === JSON.stringify(Array.from({ length: epochs }, (_, e) => e + 1)), `run ${k + 1}: epoch rows exactly 1..${epochs}, each once (got [${rows.join(', ')}])`);
      const cp = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."Checkpoint" WHERE "runId" = $1`, [i]);
      check(cp.rows[0]?.n === 0, `run ${k + 1}: no checkpoint row left`);
      const stored = (
        await client.query<{ seq: number; type: string; data: Record<string, unknown>; createdAt: Date }>(`SELECT seq, type, data, "createdAt" FROM "${schema}"."RunEvent" WHERE "runId" = $1 ORDER BY seq`, [i])
      ).rows;
      say(`run ${k + 1} events (batch left out): ${describeEvents(stored)}`);
      checkStoredEvents(stored, epochs);
    }
  } finally {
    await client.end();
  }
  const passes = service.logs.filter((l) => l.msg === 'reconciler: re-enqueued runs whose BullMQ job was missing');
  const requeued = passes.flatMap((l) => (l.requeued as string[] | undefined) ?? []);
  say(`reconciler re-enqueued: ${requeued.join(', ') || 'nothing'}`);
  const at = passes[0]?.time ?? Infinity;
  check(at < firstFinished, `the waiting runs were re-enqueued while the first run was still training (${((firstFinished - at) / 1000).toFixed(1)} s before it finished), so the heartbeat check was what kept it from being re-enqueued`);
  check(requeued.includes(ids[1]!) && requeued.includes(ids[2]!), 'the reconciler re-enqueued both waiting runs');
  check(!requeued.includes(first), 'the reconciler left the training run alone (its worker heartbeat was alive)');
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
