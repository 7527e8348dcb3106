/**
 * Fault script: one spec must not break the worker for everyone (issue 12, items 1 and 4), with the
 * issue's own spec on the wasm backend — Conv2D 2048 filters 64×64 stride 64 'same', Flatten,
 * Dense 47 softmax (8.5 M parameters) on 100 images.
 *
 *   npm run build && node --import tsx faults/fault-engine.ts
 *
 * Starts `node dist/main.js all` (API + one worker, TFJS_BACKEND=wasm, RUN_TIME_LIMIT_S=FAULT_LIMIT_S
 * (default 60), TRAINING_STOP_GRACE_MS=5000, the worker's /readyz on METRICS_PORT) on a private
 * PostgreSQL schema and queue prefix, and the committed fixture. Then:
 *   A. the spec at batch 8: if it traps (as in the issue), the run must fail at once, unrecoverable,
 *      with the trap named and no retry; if it is still training after FAULT_TRAIN_S (default 30),
 *      it is cancelled and must end `cancelled` within the grace period plus 10 s;
 *   B. the spec at batch 250 and, right behind it, a small priority-1 run: B is cancelled once it
 *      trains; B must end cancelled (the thread terminated if it is inside a kernel) and the small
 *      run must then succeed;
 *   C. the spec at batch 250, not cancelled: it must fail with the wall-clock limit's reason;
 *   then the worker's /readyz answers 200, and a small run succeeds on the same worker.
 * Every run must record backend wasm. Prints what it did and checked; exit 0 when all checks pass.
 *
 * Environment: FAULT_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/regula_bench),
 * REDIS_URL (default redis://127.0.0.1:6379, a fresh key prefix), FAULT_TRAIN_S, FAULT_LIMIT_S,
 * FAULT_TIMEOUT_MS (default 900000).
 */
import pg from 'pg';
import { fixtureDataset } from '../test/support/client.js';
import {
  assertLoopback,
  check,
  faultDatabaseUrl,
  json,
  privateNames,
  type Proc,
  requireBuild,
  runFaultScript,
  say,
  serviceEnv,
  sleep,
  startProc,
  stopAndDrop,
  submitRun,
  until,
  waitForRun,
} from './support.js';

const DB = faultDatabaseUrl();
const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TRAIN_S = Number(process.env.FAULT_TRAIN_S ?? 30);
const LIMIT_S = Number(process.env.FAULT_LIMIT_S ?? 60);
if (TRAIN_S + 15 >= LIMIT_S) {
  console.error('FAULT_TRAIN_S must be well under FAULT_LIMIT_S');
  process.exit(1);
}
const GRACE_MS = 5000;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 900_000);
assertLoopback('REDIS_URL', REDIS);
requireBuild();

const dataset = { ...fixtureDataset, limit: 100 };
const issueSpec = (batchSize: number, name: string) => ({
  name,
  model: {
    layers: [
      { type: 'Conv2D', filters: 2048, kernelSize: 64, padding: 'same', strides: 64 },
      { type: 'Flatten' },
      { type: 'Dense', units: 47, activation: 'softmax' },
    ],
  },
  training: { epochs: 1, batchSize },
  dataset,
});
const small = (name: string, priority = 50) => ({
  name,
  priority,
  model: {
    layers: [{ type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'Flatten' }, { type: 'Dense', units: 47, activation: 'softmax' }],
  },
  training: { epochs: 1, batchSize: 32 },
  dataset: { ...dataset, limit: 400 },
});

const { schema, prefix, port, base } = privateNames();
const metricsPort = port + 1000;
let service: Proc | undefined;

interface RunView {
  id: string;
  status: string;
  error: string | null;
  backend: string | null;
}

const submit = (body: unknown) => submitRun(base, body);
const get = async (runId: string) => (await json<RunView>(`${base}/v1/runs/${runId}`)).body;
const finished = (runId: string, ms: number) => waitForRun<RunView>(base, runId, ms).catch(() => undefined);
async function eventTypes(runId: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: DB });
  await client.connect();
  try {
    return (await client.query<{ type: string }>(`SELECT type FROM "${schema}"."RunEvent" WHERE "runId" = $1 ORDER BY seq`, [runId])).rows.map((r) => r.type);
  } finally {
    await client.end();
  }
}
async function cancelWhenTraining(runId: string, afterMs: number): Promise<number> {
  await until('the run to train', async () => ((await get(runId)).status === 'running' ? true : undefined), 300_000);
  await sleep(afterMs);
  const v = await get(runId);
  if (v.status !== 'running') return -1;
  const r = await json(`${base}/v1/runs/${runId}/cancel`, { method: 'POST' });
  say(`cancel ${runId}: ${r.status}`);
  return performance.now();
}

const cleanup = () => stopAndDrop(service, DB, [schema]);

async function main(): Promise<void> {
  service = startProc(
    'service',
    'all',
    serviceEnv(
      { databaseUrl: `${DB}?schema=${schema}`, redisUrl: REDIS, prefix, port },
      {
        METRICS_PORT: String(metricsPort),
        TFJS_BACKEND: 'wasm',
        RUN_TIME_LIMIT_S: String(LIMIT_S),
        TRAINING_STOP_GRACE_MS: String(GRACE_MS),
        PROGRESS_INTERVAL_MS: '0',
      },
    ),
  );
  await until('the API', async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined), 90_000);
  await until('the worker', async () => ((await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => null))?.ok ? true : undefined), 90_000);
  say(`service ready: API ${base}, worker /readyz on :${metricsPort}; wasm, RUN_TIME_LIMIT_S=${LIMIT_S}, TRAINING_STOP_GRACE_MS=${GRACE_MS}`);

  // A. batch 8
  const a = await submit(issueSpec(8, 'issue spec, batch 8'));
  say(`A: submitted the issue's spec at batch 8 (${a}); training it up to ${TRAIN_S} s`);
  // Shorter than RUN_TIME_LIMIT_S: the run is either over by itself (a trap) or cancelled here.
  let va = await finished(a, TRAIN_S * 1000);
  if (va) {
    say(`A: ended by itself: ${va.status}${va.error ? ` — ${va.error}` : ''}`);
    const types = await eventTypes(a);
    if (va.status === 'failed') {
      check(/trapped|out of memory/.test(va.error ?? ''), `A: the failure names the engine fault (${va.error})`);
      check(!types.includes('retrying'), `A: not retried (events: ${types.filter((t) => t !== 'batch').join(', ')})`);
    } else check(va.status === 'succeeded', `A: ended succeeded or failed with the fault named (got ${va.status})`);
  } else {
    const at = await cancelWhenTraining(a, 0);
    va = await finished(a, GRACE_MS + 10_000);
    check(
      va?.status === 'cancelled',
      `A: still training after ${TRAIN_S} s; cancelled, it ends cancelled within the grace period + 10 s (got ${va?.status ?? 'still running'}${at > 0 ? `, ${((performance.now() - at) / 1000).toFixed(1)} s after the cancel` : ''})`,
    );
  }
  check(va?.backend === 'wasm', `A: backend recorded is wasm (got ${va?.backend})`);

  // B. batch 250 with a priority-1 run behind it
  const b = await submit(issueSpec(250, 'issue spec, batch 250 (cancelled)'));
  const urgent = await submit(small('priority 1, another owner', 1));
  say(`B: submitted the issue's spec at batch 250 (${b}) and a small priority-1 run behind it (${urgent})`);
  const at = await cancelWhenTraining(b, 10_000);
  const vb = await finished(b, GRACE_MS + 30_000);
  check(
    vb?.status === 'cancelled',
    `B: cancelled mid-training, it ends cancelled (got ${vb?.status ?? 'still running'}${at > 0 ? `, ${((performance.now() - at) / 1000).toFixed(1)} s after the cancel` : ''})`,
  );
  const vu = await finished(urgent, 120_000);
  check(vu?.status === 'succeeded', `B: the priority-1 run behind it then succeeds (got ${vu?.status ?? 'unfinished'}${vu?.error ? `: ${vu.error}` : ''})`);

  // C. batch 250, left alone: the wall-clock limit ends it
  const c = await submit(issueSpec(250, 'issue spec, batch 250 (time limit)'));
  say(`C: submitted the issue's spec at batch 250 (${c}), not cancelled`);
  const vc = await finished(c, (LIMIT_S + 120) * 1000);
  check(
    vc?.status === 'failed' && /wall-clock limit/.test(vc.error ?? ''),
    `C: it fails with the wall-clock limit's reason (got ${vc?.status ?? 'unfinished'}${vc?.error ? `: ${vc.error}` : ''})`,
  );
  if (vc) check(!(await eventTypes(c)).includes('retrying'), 'C: not retried');

  // Right after a thread was terminated its replacement may still be starting: /readyz says so.
  const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
  say(`the worker's /readyz right after C: ${ready.status} ${await ready.text()}`);
  const back = await until(
    'the worker /readyz to answer 200',
    async () => ((await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => null))?.status === 200 ? true : undefined),
    60_000,
  ).catch(() => false);
  check(back === true, "the worker's /readyz answers 200 once its thread is replaced (within 60 s)");
  const after = await submit(small('after everything'));
  const va2 = await finished(after, 120_000);
  check(
    va2?.status === 'succeeded' && va2.backend === 'wasm',
    `a small run then succeeds on the same worker, on wasm (got ${va2?.status ?? 'unfinished'}, ${va2?.backend})`,
  );
  const replaced = service.logs.filter((l) => l.msg === 'training thread terminated and replaced');
  say(`training threads replaced: ${replaced.length}${replaced.map((l) => `\n         ${String(l.reason)}`).join('')}`);
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
