/**
 * Fault injection: stop PostgreSQL while a run trains, start it again, and check that the run
 * still ends well.
 *
 *   npm run build && node --import tsx faults/fault-postgres-restart.ts
 *
 * Builds nothing (runs dist/main.js). Must run as root on Debian/Ubuntu: it creates a PRIVATE
 * PostgreSQL cluster (`pg_createcluster <ver> faulttest -p 5441 -- --auth=trust`; the shared one on
 * 5432 is never touched) and drops it at the end. Starts, on loopback only, `node dist/main.js all`
 * (creates the database regula_fault, migrates, API, one worker) on that cluster, the shared Redis
 * with a private queue prefix, and the committed fixture (DATA_DIR=test/fixtures). Submits a
 * 24-epoch run (batch 32, emnist-mini; ~1 s an epoch here) and follows its SSE stream like
 * EventSource does. Once epoch 2 is stored: `pg_ctlcluster … stop` (fast: connections are cut),
 * PG_DOWN_MS (default 3000) down, `pg_ctlcluster … start`. What the worker should do (src/worker/host.ts):
 * the failed write fails the attempt (`retrying`), BullMQ retries it after its backoff, and the
 * retry resumes after the last stored checkpoint (`resumed`). Then checks:
 *   - the run reaches `succeeded` (within 180 s);
 *   - its epoch rows are exactly 1..24, each once; its checkpoint row is gone; its model is stored;
 *   - its stored events: seq 1..K without gap, createdAt in order, one started, one completed
 *     (last), epoch events 1..24 each once;
 *   - every `retrying` event is followed by a `resumed` event from the epoch it named, no
 *     `restarted`, and after the last resume epochs fromEpoch..24 came once each;
 *   - the SSE client received every stored event, in order, none twice, none missing.
 * Prints what it did and what it checked; exit code 0 when every check passed, 1 otherwise.
 * Bounded: FAULT_TIMEOUT_MS (default 300000); it cleans up (service, cluster, queue keys) in
 * every case.
 *
 * Environment: FAULT_REDIS_URL (default redis://127.0.0.1:6379), FAULT_PG_PORT (default 5441; must
 * be free), FAULT_PG_VERSION (default: the only directory in /etc/postgresql), PG_DOWN_MS (3000).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import pg from 'pg';
import {
  assertLoopback,
  check,
  checkRunSucceeds,
  checkSseDelivery,
  checkStoredRun,
  errorLogSummary,
  json,
  obliterateQueue,
  portOpen,
  privateNames,
  type Proc,
  request,
  requireBuild,
  runFaultScript,
  say,
  serviceEnv,
  sleep,
  startService,
  stopProc,
  submitAndFollow,
  until,
} from './support.js';

const EPOCHS = 24;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 300_000);
const DOWN_MS = Number(process.env.PG_DOWN_MS ?? 3000);
const REDIS = process.env.FAULT_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PG_PORT = Number(process.env.FAULT_PG_PORT ?? 5441);
const CLUSTER = 'faulttest';
assertLoopback('FAULT_REDIS_URL', REDIS);
if (PG_PORT === 5432) {
  console.error('FAULT_PG_PORT must not be 5432: this script stops its PostgreSQL');
  process.exit(1);
}
requireBuild();
const PG_VERSION = process.env.FAULT_PG_VERSION ?? (existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql').sort().at(-1) : undefined);
if (!PG_VERSION) {
  console.error('no /etc/postgresql/<version>: set FAULT_PG_VERSION (needs Debian postgresql-common: pg_createcluster, pg_ctlcluster)');
  process.exit(1);
}
const DB = `postgresql://postgres@127.0.0.1:${PG_PORT}/regula_fault`;

const { prefix, port, base } = privateNames();
const env = serviceEnv(
  { databaseUrl: DB, redisUrl: REDIS, prefix, port },
  { TFJS_BACKEND: 'auto', WORKER_CONCURRENCY: '1', SHUTDOWN_GRACE_MS: '5000', PROGRESS_INTERVAL_MS: '1000' },
);

function sh(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}
const ctl = (action: string, ...extra: string[]) => sh('pg_ctlcluster', [PG_VERSION, CLUSTER, action, ...extra]);

async function pgUp(): Promise<boolean> {
  const c = new pg.Client({ connectionString: `postgresql://postgres@127.0.0.1:${PG_PORT}/postgres`, connectionTimeoutMillis: 1000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

let clusterCreated = false;
let service: Proc | undefined;

async function cleanup(): Promise<void> {
  await stopProc(service);
  if (clusterCreated) {
    const d = sh('pg_dropcluster', ['--stop', PG_VERSION!, CLUSTER]);
    say(`dropped the private cluster ${PG_VERSION}/${CLUSTER}${d.ok ? '' : ` (pg_dropcluster: ${d.out})`}`);
  }
  await obliterateQueue(REDIS, prefix);
}

async function main(): Promise<void> {
  if (existsSync(`/etc/postgresql/${PG_VERSION}/${CLUSTER}`))
    throw new Error(`cluster ${PG_VERSION}/${CLUSTER} already exists: drop it (pg_dropcluster --stop ${PG_VERSION} ${CLUSTER}) or wait for whoever uses it`);
  if (await portOpen(PG_PORT)) throw new Error(`port ${PG_PORT} is already in use`);
  const created = sh('pg_createcluster', [PG_VERSION!, CLUSTER, '-p', String(PG_PORT), '--', '--auth=trust']);
  if (!created.ok) throw new Error(`pg_createcluster failed: ${created.out}`);
  clusterCreated = true;
  const st = ctl('start');
  if (!st.ok) throw new Error(`pg_ctlcluster start failed: ${st.out}`);
  await until('the private PostgreSQL', async () => ((await pgUp()) ? true : undefined), 30_000);
  say(`private PostgreSQL ${PG_VERSION}/${CLUSTER} on 127.0.0.1:${PG_PORT} (trust auth); queue prefix ${prefix} on ${REDIS}; API ${base}`);

  service = await startService(base, env);
  say('service ready (database created and migrated, API + one worker)');

  const { runId, sse, abort } = await submitAndFollow(base, request(EPOCHS, 'fault: restart PostgreSQL'));
  try {
    await until('epoch 2 to be stored', () => (sse.events.some((e) => e.type === 'epoch' && e.data.epoch === 2) ? true : undefined), 180_000);
    const before = await json<{ epochs: { epoch: number }[] }>(`${base}/v1/runs/${runId}/metrics`);
    const storedAtStop = Math.max(...before.body.epochs.map((e) => e.epoch));
    say(`epoch ${storedAtStop} stored: pg_ctlcluster ${PG_VERSION} ${CLUSTER} stop (fast shutdown)`);
    const down = performance.now();
    const stop = ctl('stop', '-m', 'fast');
    await until('PostgreSQL down', async () => ((await portOpen(PG_PORT)) ? undefined : true), 30_000);
    say(`private PostgreSQL is down (${stop.ok ? 'stop ok' : stop.out}); starting it again in ${DOWN_MS} ms`);
    await sleep(DOWN_MS);
    const start = ctl('start');
    await until('PostgreSQL up', async () => ((await pgUp()) ? true : undefined), 30_000);
    say(`private PostgreSQL is back after ${Math.round(performance.now() - down)} ms (${start.ok ? 'start ok' : start.out})`);

    await checkRunSucceeds(base, runId, sse, 180_000);

    const client = new pg.Client({ connectionString: DB });
    await client.connect();
    try {
      const stored = await checkStoredRun(client, null, runId, EPOCHS);

      const retrying = stored.filter((e) => e.type === 'retrying');
      const resumed = stored.filter((e) => e.type === 'resumed');
      say(
        `${retrying.length} retrying, ${resumed.length} resumed event(s); worker log: ${service.logs.filter((l) => l.msg === 'attempt failed: BullMQ retries it').length} failed attempt(s), ${service.logs.filter((l) => l.msg === 'run resumed from its checkpoint').length} resume(s)`,
      );
      check(!stored.some((e) => e.type === 'restarted'), 'no restarted event (nothing trained again from epoch 1)');
      check(resumed.length >= retrying.length, `every retrying event has a resumed event (${retrying.length} retrying, ${resumed.length} resumed)`);
      for (const r of retrying) {
        const next = resumed.find((e) => e.seq > r.seq);
        check(
          next?.data.fromEpoch === r.data.resumeFromEpoch,
          `retrying (seq ${r.seq}, resume ${String(r.data.resumeFromEpoch)}) is followed by resumed from the same epoch (got ${next ? `seq ${next.seq} from ${String(next.data.fromEpoch)}` : 'none'})`,
        );
      }
      if (resumed.length) {
        const lastResume = resumed.at(-1)!;
        const from = Number(lastResume.data.fromEpoch);
        const after = stored.filter((e) => e.type === 'epoch' && e.seq > lastResume.seq).map((e) => Number(e.data.epoch));
        check(
          JSON.stringify(after) === JSON.stringify(Array.from({ length: EPOCHS - from + 1 }, (_, i) => from + i)),
          `after the last resume, epochs ${from}..${EPOCHS} were trained once each (got [${after.join(', ')}])`,
        );
      } else {
        say('no resume: the writes went through once PostgreSQL was back (or no write fell into the outage)');
      }

      checkSseDelivery(sse, stored);
    } finally {
      await client.end();
    }
    say(`service error log lines since the stop: ${errorLogSummary(service.logs, down)}`);
    const ready = await fetch(`${base}/readyz`).then(
      (r) => r.status,
      () => 0,
    );
    check(ready === 200, `/readyz answers 200 after the restart (got ${ready})`);
  } finally {
    abort.abort();
  }
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
