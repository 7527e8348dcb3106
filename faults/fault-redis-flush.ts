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
import pg from 'pg';
import {
  check,
  checkStoredEvents,
  describeEvents,
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
  startService,
  stopAndDrop,
  type StoredEvent,
  submitRun,
  until,
  waitForRun,
} from './support.js';

/** Epochs of the two waiting runs; the first trains FIRST_EPOCHS, long enough for reconciler passes during it. */
const EPOCHS = 6;
const FIRST_EPOCHS = 30;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 420_000);
const RUN_TIMEOUT_MS = Number(process.env.FAULT_RUN_TIMEOUT_MS ?? 240_000);
const DB = faultDatabaseUrl();
const redis = PrivateRedis.fromEnv(6392, 'flushes');
requireBuild();

const { schema, prefix, port, base } = privateNames();

let service: Proc | undefined;

const cleanup = () => stopAndDrop(service, DB, [schema], redis);

async function main(): Promise<void> {
  await redis.start();
  say(`private Redis on 127.0.0.1:${redis.port}; schema ${schema}; API ${base}`);

  service = await startService(
    base,
    serviceEnv(
      { databaseUrl: `${DB}?schema=${schema}`, redisUrl: redis.url, prefix, port },
      { TFJS_BACKEND: 'auto', PROGRESS_INTERVAL_MS: '1000', RECONCILE_INTERVAL_MS: '3000' },
    ),
  );

  const ids: string[] = [];
  for (const [k, name] of ['trains first', 'waits 1', 'waits 2'].entries()) {
    ids.push(await submitRun(base, request(k === 0 ? FIRST_EPOCHS : EPOCHS, `fault flush: ${name}`)));
  }
  say(`submitted 3 runs (${FIRST_EPOCHS}, ${EPOCHS}, ${EPOCHS} epochs): ${ids.join(', ')}`);
  const [first] = ids as [string, string, string];
  await until(
    'epoch 2 of the first run',
    async () => ((await json<{ epochs: { epoch: number }[] }>(`${base}/v1/runs/${first}/metrics`)).body.epochs?.some((e) => e.epoch === 2) ? true : undefined),
    180_000,
  );
  const statuses = await Promise.all(ids.map(async (i) => (await json<{ status: string }>(`${base}/v1/runs/${i}`)).body.status));
  const keysBefore = redis.cli('dbsize').out;
  say(`first run stored epoch 2; statuses ${statuses.join(', ')}; ${keysBefore} keys in Redis: redis-cli flushall`);
  const flushed = redis.cli('flushall');
  const keysAfter = redis.cli('dbsize').out;
  check(flushed.ok && Number(keysBefore) > 0 && Number(keysAfter) <= 2, `Redis was emptied (${keysBefore} keys before, ${keysAfter} right after)`);
  check(
    statuses[0] === 'running' && statuses[1] === 'queued' && statuses[2] === 'queued',
    `at the flush one run trained and two waited (${statuses.join(', ')})`,
  );

  const finals = await Promise.all(
    ids.map((i) => waitForRun<{ status: string; error?: string | null }>(base, i, RUN_TIMEOUT_MS).catch(() => ({ status: 'still unfinished', error: null }))),
  );
  const client = new pg.Client({ connectionString: DB });
  await client.connect();
  let firstFinished = Infinity;
  try {
    firstFinished =
      (await client.query<{ f: Date | null }>(`SELECT "finishedAt" AS f FROM "${schema}"."Run" WHERE id = $1`, [first])).rows[0]?.f?.getTime() ?? Infinity;
    for (const [k, i] of ids.entries()) {
      const epochs = k === 0 ? FIRST_EPOCHS : EPOCHS;
      check(finals[k]!.status === 'succeeded', `run ${k + 1} succeeded (got ${finals[k]!.status}${finals[k]!.error ? `: ${finals[k]!.error}` : ''})`);
      const rows = (await client.query<{ epoch: number }>(`SELECT epoch FROM "${schema}"."EpochMetric" WHERE "runId" = $1 ORDER BY epoch`, [i])).rows.map(
        (x) => x.epoch,
      );
      check(
        JSON.stringify(rows) === JSON.stringify(Array.from({ length: epochs }, (_, e) => e + 1)),
        `run ${k + 1}: epoch rows exactly 1..${epochs}, each once (got [${rows.join(', ')}])`,
      );
      const cp = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."Checkpoint" WHERE "runId" = $1`, [i]);
      check(cp.rows[0]?.n === 0, `run ${k + 1}: no checkpoint row left`);
      const stored = (await client.query<StoredEvent>(`SELECT seq, type, data, "createdAt" FROM "${schema}"."RunEvent" WHERE "runId" = $1 ORDER BY seq`, [i]))
        .rows;
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
  check(
    at < firstFinished,
    `the waiting runs were re-enqueued while the first run was still training (${((firstFinished - at) / 1000).toFixed(1)} s before it finished), so the heartbeat check was what kept it from being re-enqueued`,
  );
  check(requeued.includes(ids[1]!) && requeued.includes(ids[2]!), 'the reconciler re-enqueued both waiting runs');
  check(!requeued.includes(first), 'the reconciler left the training run alone (its worker heartbeat was alive)');
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
