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
import { Queue } from 'bullmq';
import pg from 'pg';
import {
  check,
  checkRunSucceeds,
  checkSseDelivery,
  checkStoredRun,
  errorLogSummary,
  faultDatabaseUrl,
  json,
  privateNames,
  PrivateRedis,
  type Proc,
  request,
  requireBuild,
  runFaultScript,
  say,
  serviceEnv,
  sleep,
  startService,
  stopAndDrop,
  submitAndFollow,
  until,
  waitForRun,
} from './support.js';

const DB = faultDatabaseUrl();
const redis = PrivateRedis.fromEnv(6391, 'restarts');
requireBuild();
const EPOCHS = 24;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 300_000);
const DOWN_MS = Number(process.env.REDIS_DOWN_MS ?? 1000);

const { schema, prefix, port, base } = privateNames();
const env = serviceEnv(
  { databaseUrl: `${DB}?schema=${schema}`, redisUrl: redis.url, prefix, port },
  { TFJS_BACKEND: 'auto', WORKER_CONCURRENCY: '1', SHUTDOWN_GRACE_MS: '5000', PROGRESS_INTERVAL_MS: '1000' },
);

let service: Proc | undefined;

const cleanup = () => stopAndDrop(service, DB, [schema], redis);

async function main(): Promise<void> {
  await redis.start();
  say(`private Redis on 127.0.0.1:${redis.port} (no RDB, no AOF, dir ${redis.dir}); schema ${schema}, queue prefix ${prefix}, API ${base}`);

  service = await startService(base, env);
  say('service ready (API + one worker)');

  const { runId, sse, abort } = await submitAndFollow(base, request(EPOCHS, 'fault: restart Redis'));
  const connection = { host: '127.0.0.1', port: redis.port };
  try {
    await until('epoch 2 to be stored', () => (sse.events.some((e) => e.type === 'epoch' && e.data.epoch === 2) ? true : undefined), 180_000);
    const before = await json<{ epochs: { epoch: number }[] }>(`${base}/v1/runs/${runId}/metrics`);
    const storedAtRestart = Math.max(...before.body.epochs.map((e) => e.epoch));
    const queue = new Queue('runs', { connection, prefix });
    const stateBefore = await (await queue.getJob(runId))?.getState();
    await queue.close();
    const keysBefore = redis.cli('dbsize').out;

    say(`epoch ${storedAtRestart} stored, BullMQ job state "${String(stateBefore)}", ${keysBefore} keys in Redis: redis-cli shutdown nosave`);
    const down = performance.now();
    const shut = redis.cli('shutdown', 'nosave');
    await redis.waitFor(false);
    say(`private Redis is down (${shut.ok ? 'shutdown ok' : `redis-cli: ${shut.out}`}); starting it again in ${DOWN_MS} ms`);
    await sleep(DOWN_MS);
    await redis.start();
    const keysAfter = redis.cli('dbsize').out;
    say(`private Redis is back after ${Math.round(performance.now() - down)} ms with ${keysAfter} keys`);
    check(
      keysBefore !== '0' && Number(keysAfter) <= 2,
      `Redis came back empty: the queue, the job and its lock are gone (${keysBefore} keys before, ${keysAfter} right after)`,
    );

    await checkRunSucceeds(base, runId, sse, 120_000, ' in PostgreSQL');

    const client = new pg.Client({ connectionString: DB });
    await client.connect();
    try {
      const stored = await checkStoredRun(client, schema, runId, EPOCHS);
      check(
        !stored.some((e) => ['resumed', 'restarted', 'retrying'].includes(e.type)),
        `the worker kept training through the restart: no resumed/restarted/retrying event (got ${
          stored
            .filter((e) => ['resumed', 'restarted', 'retrying'].includes(e.type))
            .map((e) => e.type)
            .join(', ') || 'none'
        })`,
      );

      checkSseDelivery(sse, stored);
    } finally {
      await client.end();
    }

    const q = new Queue('runs', { connection, prefix });
    const job = await q.getJob(runId);
    say(
      `after the run: BullMQ ${job ? `has the job, state "${await job.getState()}"` : 'has no job for the run (it was lost with Redis; nothing moved it to completed)'}; counts ${JSON.stringify(await q.getJobCounts())}`,
    );
    await q.close();
    say(`service error log lines since the restart: ${errorLogSummary(service.logs, down)}`);

    // Does the service still work with the emptied Redis?
    const ready = await fetch(`${base}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    check(ready === 200, `/readyz answers 200 after the restart (got ${ready})`);
    const second = await json<{ id: string }>(`${base}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request(1, 'fault: after the Redis restart')),
    });
    say(`submitted a 1-epoch run after the restart: ${second.status} ${second.body.id ?? JSON.stringify(second.body)}`);
    let secondStatus = 'not submitted';
    if (second.status === 202) {
      secondStatus = await waitForRun(base, second.body.id, 90_000).then(
        (v) => v.status,
        () => 'still queued/running after 90 s',
      );
    }
    check(secondStatus === 'succeeded', `a new run submitted after the restart succeeds (got ${secondStatus})`);
  } finally {
    abort.abort();
  }
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
