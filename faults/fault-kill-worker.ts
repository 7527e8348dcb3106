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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(ROOT, 'dist', 'main.js');
const EPOCHS = 6;
const TIMEOUT_MS = Number(process.env.FAULT_TIMEOUT_MS ?? 300_000);
const started = performance.now();
const t = () => `t+${((performance.now() - started) / 1000).toFixed(1)}s`;
const say = (msg: string) => console.log(`[fault] ${t()} ${msg}`);

const DB = process.env.FAULT_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/regula_bench';
const REDIS = process.env.FAULT_REDIS_URL ?? 'redis://127.0.0.1:6379';
for (const [name, url] of [
  ['FAULT_DATABASE_URL', DB],
  ['FAULT_REDIS_URL', REDIS],
] as const) {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    console.error(`${name} must point at loopback, got ${host}`);
    process.exit(1);
  }
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
  LOCK_DURATION_MS: '4000',
  STALLED_INTERVAL_MS: '2000',
  SHUTDOWN_GRACE_MS: '5000',
  PROGRESS_INTERVAL_MS: '1000',
  AUTH: 'off',
};

interface LogLine {
  msg?: string;
  runId?: string;
  level?: number;
  [k: string]: unknown;
}

interface Proc {
  name: string;
  child: ChildProcess;
  logs: LogLine[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const procs: Proc[] = [];
const INTERESTING = new Set([
  'training started',
  'epoch done',
  'run resumed from its checkpoint',
  'run restarted from epoch 1 (no checkpoint)',
  'job stalled (its worker was lost): back in the queue',
  'training succeeded',
  'training failed',
  'shutting down',
  'shutting down: interrupting training, jobs go back to the queue',
  'training interrupted by shutdown: job handed back to the queue',
]);

function start(name: string, role: string): Proc {
  const child = spawn(process.execPath, [MAIN, role], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        const l = JSON.parse(line) as LogLine;
        logs.push(l);
        if ((l.msg && INTERESTING.has(l.msg)) || (l.level ?? 0) >= 50) {
          const extra = ['epoch', 'fromEpoch', 'resumeFromEpoch', 'signal', 'err'].filter((k) => l[k] !== undefined).map((k) => `${k}=${JSON.stringify(k === 'err' ? (l.err as { message?: string }).message : l[k])}`);
          say(`${name}: ${l.msg}${extra.length ? ` (${extra.join(', ')})` : ''}`);
        }
      } catch {
        /* not a log line */
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(`[${name}] ${chunk.toString('utf8')}`));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const p = { name, child, logs, exit };
  procs.push(p);
  say(`started ${name} (\`node dist/main.js ${role}\`, pid ${child.pid})`);
  return p;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(100);
  }
}

async function json<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init);
  return { status: res.status, body: (await res.json()) as T };
}

interface RunEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

/** Follows the run's SSE stream into `events` (reconnecting with Last-Event-ID if it drops). */
function follow(runId: string, events: RunEvent[], signal: AbortSignal): void {
  void (async () => {
    while (!signal.aborted) {
      try {
        const last = events.at(-1)?.seq;
        const res = await fetch(`${base}/v1/runs/${runId}/events`, {
          headers: { accept: 'text/event-stream', ...(last ? { 'last-event-id': String(last) } : {}) },
          signal,
        });
        if (!res.body) throw new Error('no body');
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk as Uint8Array, { stream: true });
          let cut: number;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const f: Record<string, string> = {};
            for (const line of block.split('\n')) {
              const i = line.indexOf(':');
              if (i > 0) f[line.slice(0, i)] = line.slice(i + 1).trimStart();
            }
            if (f.event && f.data && f.id) events.push({ seq: Number(f.id), type: f.event, data: JSON.parse(f.data) as Record<string, unknown> });
          }
        }
        if (events.some((e) => ['completed', 'failed', 'cancelled'].includes(e.type))) return;
      } catch {
        if (signal.aborted) return;
      }
      await sleep(200);
    }
  })();
}

const checks: { ok: boolean; what: string }[] = [];
function check(ok: boolean, what: string): void {
  checks.push({ ok, what });
  console.log(`[fault] ${ok ? 'PASS' : 'FAIL'} ${what}`);
}

async function cleanup(): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await Promise.race([Promise.all(procs.map((p) => p.exit)), sleep(8000)]);
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  const u = new URL(REDIS);
  const queue = new Queue('runs', { connection: { host: u.hostname, port: Number(u.port || 6379) }, prefix });
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close().catch(() => {});
  const client = new pg.Client({ connectionString: DB });
  await client.connect().catch(() => {});
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await client.end().catch(() => {});
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

const request = {
  name: 'fault injection',
  model: {
    layers: [
      { type: 'Conv2D', filters: 32, kernelSize: 3, activation: 'relu', kernelRegularizer: { type: 'l2', l2: 0.001 } },
      { type: 'MaxPooling2D', poolSize: 2 },
      { type: 'Conv2D', filters: 32, kernelSize: 3, activation: 'relu' },
      { type: 'MaxPooling2D', poolSize: 2 },
      { type: 'Dropout', rate: 0.25 },
      { type: 'Flatten' },
      { type: 'Dense', units: 64, activation: 'relu' },
      { type: 'Dense', units: 47, activation: 'softmax' },
    ],
  },
  training: { epochs: EPOCHS, batchSize: 16, validationSplit: 0.2, seed: 11, optimizer: { type: 'adam', learningRate: 0.001 } },
  dataset: {
    name: 'idx',
    train: { images: 'emnist-mini/emnist-mini-train-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-train-labels-idx1-ubyte.gz' },
    test: { images: 'emnist-mini/emnist-mini-test-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-test-labels-idx1-ubyte.gz' },
  },
};

/**
 * 'kill': SIGKILL the worker that trains the run once epoch 2 is stored; its lock expires and the
 * other worker resumes the run. 'sigterm': SIGTERM it instead; it must exit (code 0) within
 * SHUTDOWN_GRACE_MS, having handed the job back ('interrupted'), and the other worker resumes it.
 */
async function scenario(kind: 'kill' | 'sigterm', workers: Proc[]): Promise<{ survivor: Proc }> {
  console.log(`[fault] ---- scenario: ${kind === 'kill' ? 'kill -9 the training worker' : 'SIGTERM the training worker (graceful shutdown)'} ----`);
  const submitted = await json<{ id: string }>(`${base}/v1/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...request, name: `fault: ${kind} the training worker` }),
  });
  if (submitted.status !== 202) throw new Error(`POST /v1/runs answered ${submitted.status}: ${JSON.stringify(submitted.body)}`);
  const runId = submitted.body.id;
  say(`submitted run ${runId} (${EPOCHS} epochs, batch 16, emnist-mini)`);

  const events: RunEvent[] = [];
  const abort = new AbortController();
  follow(runId, events, abort.signal);
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
    check(resumed[0]?.data.fromEpoch === expectedFrom, `it resumed from epoch ${expectedFrom}, after the last epoch stored when the worker stopped (got ${String(resumed[0]?.data.fromEpoch)})`);
    check(!events.some((e) => e.type === 'restarted'), 'no restarted event (nothing trained again from epoch 1)');
    check(
      other.logs.some((l) => l.msg === 'run resumed from its checkpoint' && l.runId === runId) && other.logs.some((l) => l.msg === 'training succeeded' && l.runId === runId),
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

const timer = setTimeout(() => {
  console.error(`[fault] ${t()} FAIL: the script ran past FAULT_TIMEOUT_MS (${TIMEOUT_MS} ms)`);
  void cleanup().finally(() => process.exit(1));
}, TIMEOUT_MS);

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(`[fault] ${t()} FAIL: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  clearTimeout(timer);
  await cleanup();
}
const passed = checks.filter((c) => c.ok).length;
const ok = !failed && checks.length > 0 && passed === checks.length;
console.log(`[fault] ${t()} ${passed}/${checks.length} checks passed: ${ok ? 'OK' : 'FAILED'}`);
process.exit(ok ? 0 : 1);
