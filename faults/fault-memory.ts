/**
 * Memory of one run, measured, against the estimate that validation checks (issue 12, item 2).
 *
 *   npm run build && node --import tsx faults/fault-memory.ts
 *
 * For each spec below: a fresh `node dist/main.js all` (API + one worker, TFJS_BACKEND=wasm as in
 * the issue, a private PostgreSQL schema and queue prefix, the committed emnist-mini fixture) trains
 * it for 1 epoch; the process's peak RSS (VmHWM of /proc/<pid>/status: main thread, training
 * thread, wasm memory, everything) is read once the run has finished. The peak of a tiny spec is the
 * baseline; a spec's measured need is its peak minus the baseline. Checks that the estimate
 * (src/run-spec/shapes.ts estimateMemory, the figure validation compares with LIMITS.maxRunMemoryBytes)
 * is not below the measured need, and that the issue's 48 M-parameter Dense spec is refused with a
 * 422 naming /model/layers. Prints a table; exit code 0 when every check passed.
 *
 * Environment: FAULT_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/regula_bench),
 * REDIS_URL (default redis://127.0.0.1:6379; keys under a fresh prefix), FAULT_TIMEOUT_MS (900000).
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { normalizeSpec } from '../src/run-spec/normalize.js';
import { estimateMemory } from '../src/run-spec/shapes.js';
import type { RunRequest } from '../src/run-spec/schema.js';
import { SpecError } from '../src/run-spec/errors.js';
import { fixtureDataset } from '../test/support/client.js';
import {
  assertLoopback,
  check,
  faultDatabaseUrl,
  type Proc,
  runFaultScript,
  say,
  serviceEnv,
  startProc,
  stopAndDrop,
  stopProc,
  submitRun,
  until,
  waitForRun,
} from './support.js';

const DB = faultDatabaseUrl();
const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 900_000);
assertLoopback('REDIS_URL', REDIS);

const dataset = { ...fixtureDataset, limit: 400 };
const dense = (units: number, batchSize = 32) => ({
  model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units, activation: 'relu' }, { type: 'Dense', units: 47, activation: 'softmax' }] },
  training: { epochs: 1, batchSize },
  dataset,
});
const SPECS: { label: string; body: Record<string, unknown> }[] = [
  { label: 'baseline: Dense 16', body: dense(16) },
  { label: 'Dense 4,000 (3.3 M params)', body: dense(4000) },
  { label: 'Dense 16,000 (13.3 M params)', body: dense(16000) },
  {
    label: 'Conv2D 64 3x3 same, batch 1024 (activations)',
    body: {
      model: {
        layers: [
          { type: 'Conv2D', filters: 64, kernelSize: 3, padding: 'same', activation: 'relu' },
          { type: 'Flatten' },
          { type: 'Dense', units: 47, activation: 'softmax' },
        ],
      },
      training: { epochs: 1, batchSize: 1024 },
      dataset,
    },
  },
];
/** The issue's spec: a Dense layer of 58,000 units (48 M parameters). */
const ISSUE_DENSE = dense(58_000, 250);

const id = randomBytes(4).toString('hex');
let service: Proc | undefined;
const schemas: string[] = [];

function estimate(body: Record<string, unknown>): { params: number; bytes: number } {
  const { spec, shapes } = normalizeSpec(body as unknown as RunRequest, { numClasses: 47, seed: 1 });
  return { params: shapes.paramCount, bytes: estimateMemory(spec, shapes).totalBytes };
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function measure(i: number, body: Record<string, unknown>): Promise<{ peak: number; status: string; error: string | null }> {
  const schema = `fault_mem_${id}_${i}`;
  schemas.push(schema);
  const port = 4100 + Math.floor(Math.random() * 800);
  const base = `http://127.0.0.1:${port}`;
  service = startProc(
    `service${i}`,
    'all',
    serviceEnv({ databaseUrl: `${DB}?schema=${schema}`, redisUrl: REDIS, prefix: `fault-mem-${id}-${i}`, port }, { TFJS_BACKEND: 'wasm' }),
  );
  await until('the API', async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined), 90_000);
  const runId = await submitRun(base, body);
  const run = await waitForRun<{ status: string; error: string | null }>(base, runId, 600_000);
  const peak = peakRss(service.child.pid!);
  await stopProc(service);
  service = undefined;
  return { peak, status: run.status, error: run.error };
}

const cleanup = () => stopAndDrop(service, DB, schemas);

async function main(): Promise<void> {
  const mb = (b: number) => (b / 2 ** 20).toFixed(0);
  const rows: string[] = [];
  let baseline = 0;
  for (const [i, s] of SPECS.entries()) {
    const est = estimate(s.body);
    const m = await measure(i, s.body);
    if (i === 0) baseline = m.peak;
    const need = m.peak - baseline;
    say(`${s.label}: ${m.status}${m.error ? ` (${m.error})` : ''}, peak RSS ${mb(m.peak)} MB, need ${mb(need)} MB, estimate ${mb(est.bytes)} MB`);
    rows.push(
      `| ${s.label} | ${est.params.toLocaleString('en')} | ${mb(m.peak)} | ${i === 0 ? '(baseline)' : mb(need)} | ${mb(est.bytes)} | ${i === 0 || need <= 0 ? '' : (est.bytes / need).toFixed(2)} |`,
    );
    check(m.status === 'succeeded', `${s.label}: the run succeeded (got ${m.status})`);
    if (i > 0) check(est.bytes >= need, `${s.label}: the estimate (${mb(est.bytes)} MB) is not below the measured need (${mb(need)} MB)`);
  }
  let refusal: SpecError | undefined;
  try {
    normalizeSpec(ISSUE_DENSE as unknown as RunRequest, { numClasses: 47, seed: 1 });
  } catch (err) {
    if (err instanceof SpecError) refusal = err;
    else throw err;
  }
  say(`the issue's Dense 58,000 spec at validation: ${refusal ? `${refusal.pointer}: ${refusal.message}` : 'accepted'}`);
  check(
    refusal?.pointer === '/model/layers' && /needs about \d+ MB/.test(refusal.message),
    "the issue's 48 M-parameter Dense spec is refused at validation for its memory, naming /model/layers",
  );
  console.log('\n| spec | parameters | peak RSS MB | measured need MB | estimate MB | estimate / need |\n|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  console.log('');
}

await runFaultScript(main, cleanup, TIMEOUT_MS);
