/**
 * Fault injection: `kill -9` the worker that trains a run and check that another worker finishes
 * it from the run's last checkpoint.
 *
 *   npm run build && node --import tsx faults/fault-kill-worker.ts
 *
 * Builds nothing (runs dist/main.js). Starts, on loopback only, `node dist/main.js api` and two
 * `node dist/main.js worker` processes with a short BullMQ lock (LOCK_DURATION_MS) and stalled
 * check (STALLED_INTERVAL_MS), on a private PostgreSQL schema and queue prefix and the committed
 * fixture (DATA_DIR=test/fixtures). Submits a 6-epoch run, waits until epoch 2 is stored, kills the
 * worker process that holds the job (the one whose log says it started training the run) with
 * SIGKILL, then checks that:
 *   - the killed process really died of SIGKILL;
 *   - the run ends `succeeded`, trained to its end by the other worker;
 *   - its epoch rows are exactly 1..6, each once;
 *   - there is exactly one `resumed` event, from the epoch after the last one stored when the worker
 *     died, and no `restarted` event;
 *   - the checkpoint row is gone once the run succeeded.
 * Then a second scenario, with a fresh worker in place of the killed one: the same, but the holder
 * gets SIGTERM (graceful shutdown) instead; it must exit with code 0 within SHUTDOWN_GRACE_MS after
 * an `interrupted` event, and the other worker resumes the run from that point.
 * Prints what it did and what it checked; exit code 0 when every check passed, 1 otherwise.
 * Bounded: FAULT_TIMEOUT_MS (default 300000) for the whole script; it cleans up (processes,
 * schema, queue keys) in every case.
 *
 * Environment: FAULT_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/regula_bench),
 * FAULT_REDIS_URL (default redis://127.0.0.1:6379) — both must point at loopback.
 */
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import {
  assertLoopback,
  check,
  dropSchemas,
  faultDatabaseUrl,
  follow,
  json,
  MAIN,
  obliterateQueue,
  privateNames,
  type Proc,
  request,
  requireBuild,
  ROOT,
  runFaultScript,
  say,
  serviceEnv,
  startProc,
  stopProc,
  submitRun,
  until,
} from './support.js';

const EPOCHS = 6;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 300_000);
const DB = faultDatabaseUrl();
const REDIS = process.env.FAULT_REDIS_URL ?? 'redis://127.0.0.1:6379';
assertLoopback('FAULT_REDIS_URL', REDIS);
requireBuild();

const { schema, prefix, port, base } = privateNames();
const env = serviceEnv(
  { databaseUrl: `${DB}?schema=${schema}`, redisUrl: REDIS, prefix, port },
  {
    TFJS_BACKEND: 'auto',
    WORKER_CONCURRENCY: '1',
    LOCK_DURATION_MS: '4000',
    STALLED_INTERVAL_MS: '2000',
    SHUTDOWN_GRACE_MS: '5000',
    PROGRESS_INTERVAL_MS: '1000',
  },
);

const procs: Proc[] = [];
function start(name: string, role: string): Proc {
  const p = startProc(name, role, env);
  procs.push(p);
  return p;
}

async function cleanup(): Promise<void> {
  await Promise.all(procs.map((p) => stopProc(p)));
  await obliterateQueue(REDIS, prefix);
  await dropSchemas(DB, [schema]);
}

async function main(): Promise<void> {
  say(`schema ${schema}, queue prefix ${prefix}, API ${base}, lock 4 s, stalled check every 2 s`);
  const migrated = spawnSync(process.execPath, [MAIN, 'migrate'], { cwd: ROOT, env: { ...env, LOG_LEVEL: 'warn' }, encoding: 'utf8', timeout: 60_000 });
  if (migrated.status !== 0) throw new Error(`migrate failed: ${migrated.stderr || migrated.stdout}`);
  say('migrated the private schema');

  start('api', 'api');
  const workers = [start('worker-A', 'worker'), start('worker-B', 'worker')];
  await until('the API', async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined), 60_000);
  await until('both workers', () => (workers.every((w) => w.logs.some((l) => l.msg === 'regula worker started')) ? true : undefined), 60_000);
  say('API ready, both workers waiting for jobs');

  const first = await scenario('kill', workers);
  // The killed worker is replaced, so the second scenario again has two workers.
  const replacement = start('worker-C', 'worker');
  await until('worker-C', () => (replacement.logs.some((l) => l.msg === 'regula worker started') ? true : undefined), 60_000);
  await scenario('sigterm', [first.survivor, replacement]);
}

/**
 * 'kill': SIGKILL the worker that trains the run once epoch 2 is stored; its lock expires and the
 * other worker resumes the run. 'sigterm': SIGTERM it instead; it must exit (code 0) within
 * SHUTDOWN_GRACE_MS, having handed the job back ('interrupted'), and the other worker resumes it.
 */
async function scenario(kind: 'kill' | 'sigterm', workers: Proc[]): Promise<{ survivor: Proc }> {
  console.log(`[fault] ---- scenario: ${kind === 'kill' ? 'kill -9 the training worker' : 'SIGTERM the training worker (graceful shutdown)'} ----`);
  const runId = await submitRun(base, request(EPOCHS, `fault: ${kind} the training worker`, 16));
  say(`submitted run ${runId} (${EPOCHS} epochs, batch 16, emnist-mini)`);

  const abort = new AbortController();
  const { events } = follow(base, runId, abort.signal);
  try {
    await until('epoch 2 to be stored', () => (events.some((e) => e.type === 'epoch' && e.data.epoch === 2) ? true : undefined), 180_000);
    const holder = workers.find((w) => w.logs.some((l) => l.msg === 'training started' && l.runId === runId));
    if (!holder) throw new Error('no worker logged that it trains the run');
    const other = workers.find((w) => w !== holder)!;
    const metrics = await json<{ epochs: { epoch: number }[] }>(`${base}/v1/runs/${runId}/metrics`);
    const storedAtSignal = Math.max(...metrics.body.epochs.map((e) => e.epoch));
    const signalled = performance.now();
    holder.child.kill(kind === 'kill' ? 'SIGKILL' : 'SIGTERM');
    say(`epoch ${storedAtSignal} stored: ${kind === 'kill' ? 'kill -9' : 'kill -TERM'} ${holder.name} (pid ${holder.child.pid}), which holds the job`);
    const died = await holder.exit;
    const exitMs = Math.round(performance.now() - signalled);
    if (kind === 'kill') {
      check(died.signal === 'SIGKILL', `${holder.name} died of SIGKILL (exit: ${JSON.stringify(died)})`);
    } else {
      check(died.code === 0, `${holder.name} exited with code 0 after SIGTERM (exit: ${JSON.stringify(died)})`);
      check(exitMs <= Number(env.SHUTDOWN_GRACE_MS), `${holder.name} exited within SHUTDOWN_GRACE_MS=${String(env.SHUTDOWN_GRACE_MS)} (${exitMs} ms)`);
    }

    await until('the run to finish', () => (events.some((e) => ['completed', 'failed', 'cancelled'].includes(e.type)) ? true : undefined), 200_000);
    const run = await json<{ status: string }>(`${base}/v1/runs/${runId}`);
    const final = await json<{ epochs: { epoch: number }[] }>(`${base}/v1/runs/${runId}/metrics`);
    const rows = final.body.epochs.map((e) => e.epoch);
    const resumed = events.filter((e) => e.type === 'resumed');
    const interrupted = events.filter((e) => e.type === 'interrupted');
    say(
      `events: ${events
        .filter((e) => e.type !== 'batch')
        .map((e) => (e.type === 'epoch' ? `epoch(${String(e.data.epoch)})` : e.type === 'resumed' ? `resumed(from ${String(e.data.fromEpoch)})` : e.type))
        .join(', ')}`,
    );

    // With SIGTERM the worker finishes nothing: it stops at the next batch, so the resume point is the
    // epoch after the last one stored — one more if an epoch ended between the check and the signal.
    const expectedFrom = kind === 'kill' ? storedAtSignal + 1 : Number(interrupted[0]?.data.resumeFromEpoch);
    check(run.body.status === 'succeeded', `run status is succeeded (got ${run.body.status})`);
    check(JSON.stringify(rows) === JSON.stringify([1, 2, 3, 4, 5, 6]), `epoch rows are exactly 1..6, each once (got [${rows.join(', ')}])`);
    if (kind === 'sigterm') {
      check(interrupted.length === 1 && expectedFrom >= storedAtSignal + 1, `one interrupted event, the job handed back to resume at epoch ${expectedFrom}`);
    }
    check(resumed.length === 1, `exactly one resumed event (got ${resumed.length})`);
    check(
      resumed[0]?.data.fromEpoch === expectedFrom,
      `it resumed from epoch ${expectedFrom}, after the last epoch stored when the worker stopped (got ${String(resumed[0]?.data.fromEpoch)})`,
    );
    check(!events.some((e) => e.type === 'restarted'), 'no restarted event (nothing trained again from epoch 1)');
    check(
      other.logs.some((l) => l.msg === 'run resumed from its checkpoint' && l.runId === runId) &&
        other.logs.some((l) => l.msg === 'training succeeded' && l.runId === runId),
      `${other.name} resumed the run and finished it`,
    );
    const afterEpochs = events.filter((e) => e.type === 'epoch' && e.seq > (resumed[0]?.seq ?? Infinity)).map((e) => e.data.epoch);
    check(
      JSON.stringify(afterEpochs) === JSON.stringify(Array.from({ length: EPOCHS - expectedFrom + 1 }, (_, i) => expectedFrom + i)),
      `after the resume, epochs ${expectedFrom}..${EPOCHS} were trained once each (got [${afterEpochs.join(', ')}])`,
    );
    const client = new pg.Client({ connectionString: DB });
    await client.connect();
    try {
      const cp = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."Checkpoint" WHERE "runId" = $1`, [runId]);
      check(cp.rows[0]?.n === 0, 'the checkpoint row was deleted when the run succeeded');
    } finally {
      await client.end();
    }
    return { survivor: other };
  } finally {
    abort.abort();
  }
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
