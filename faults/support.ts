/**
 * Shared pieces of the fault scripts (faults/fault-*.ts): the private names and environment of the
 * service they start, a service process with parsed pino logs, a private Redis, an SSE follower
 * that records every connection it made and every event it received, polling, submitting and
 * waiting for runs, checks (and those on a run's stored rows and events), clean-up, and the run
 * request they submit (emnist-mini, the committed fixture).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import pg from 'pg';
import { fixtureDataset } from '../test/support/client.js';
import { SseParser } from '../test/support/sse-client.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MAIN = path.join(ROOT, 'dist', 'main.js');

const started = performance.now();
export const t = () => `t+${((performance.now() - started) / 1000).toFixed(1)}s`;
export const say = (msg: string) => console.log(`[fault] ${t()} ${msg}`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** FAULT_DATABASE_URL (default: regula_bench on the local PostgreSQL), which must be on loopback. */
export function faultDatabaseUrl(): string {
  const url = process.env.FAULT_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/regula_bench';
  assertLoopback('FAULT_DATABASE_URL', url);
  return url;
}

export function assertLoopback(name: string, url: string): void {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    console.error(`${name} must point at loopback, got ${host}`);
    process.exit(1);
  }
}

/** Exits unless dist/main.js is built: the scripts run the built service. */
export function requireBuild(): void {
  if (!existsSync(MAIN)) {
    console.error('dist/main.js is missing: run `npm run build` first');
    process.exit(1);
  }
}

/** Fresh names for one script's service: a PostgreSQL schema, a queue prefix and an API port. */
export function privateNames(): { id: string; schema: string; prefix: string; port: number; base: string } {
  const id = randomBytes(4).toString('hex');
  const port = 4100 + Math.floor(Math.random() * 800);
  return { id, schema: `fault_${id}`, prefix: `fault-${id}`, port, base: `http://127.0.0.1:${port}` };
}

/** The service's environment: loopback, the committed fixture (DATA_DIR=test/fixtures), no auth, info logs; `extra` on top. */
export function serviceEnv(o: { databaseUrl: string; redisUrl: string; prefix: string; port: number }, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    QUEUE_PREFIX: o.prefix,
    DATA_DIR: path.join(ROOT, 'test', 'fixtures'),
    HOST: '127.0.0.1',
    PORT: String(o.port),
    LOG_LEVEL: 'info',
    AUTH: 'off',
    ...extra,
  };
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * A private Redis on `port` (`redis-server`, no RDB, no AOF, in a temporary directory), for the
 * scripts that restart or flush it: the shared one on 6379 is never touched.
 */
export class PrivateRedis {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'regula-fault-redis-'));
  readonly url: string;
  private started = false;
  constructor(readonly port: number) {
    this.url = `redis://127.0.0.1:${port}`;
  }
  /** On FAULT_REDIS_PORT (default `defaultPort`), never the shared 6379: the script `does` things to it. */
  static fromEnv(defaultPort: number, does: string): PrivateRedis {
    const port = Number(process.env.FAULT_REDIS_PORT ?? defaultPort);
    if (port === 6379) {
      console.error(`FAULT_REDIS_PORT must not be 6379: this script ${does} its Redis`);
      process.exit(1);
    }
    return new PrivateRedis(port);
  }
  cli(...args: string[]): { ok: boolean; out: string } {
    const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), ...args], { encoding: 'utf8', timeout: 10_000 });
    return { ok: r.status === 0, out: (r.stdout + r.stderr).trim() };
  }
  /** Starts it and waits until it answers; refuses a port something else listens on. */
  async start(): Promise<void> {
    if (await portOpen(this.port)) throw new Error(`port ${this.port} is already in use: not starting a private Redis there`);
    const dir = this.dir;
    const r = spawnSync(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--daemonize',
        'yes',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--pidfile',
        path.join(dir, 'redis.pid'),
        '--logfile',
        path.join(dir, 'redis.log'),
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    if (r.status !== 0) throw new Error(`redis-server failed: ${r.stderr || r.stdout}`);
    this.started = true;
    await this.waitFor(true);
  }
  async waitFor(up: boolean): Promise<void> {
    await until(
      `private Redis ${up ? 'up' : 'down'}`,
      async () => ((await portOpen(this.port)) === up && (!up || this.cli('ping').out === 'PONG') ? true : undefined),
      15_000,
    );
  }
  /** Shuts it down (if it was started) and removes its directory. */
  async close(): Promise<void> {
    if (this.started) {
      this.cli('shutdown', 'nosave');
      await this.waitFor(false).catch(() => {});
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function dropSchemas(databaseUrl: string, schemas: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect().catch(() => {});
  for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => {});
  await client.end().catch(() => {});
}

/** The clean-up of a script with one service on private schemas (and a private Redis): stop it, shut the Redis down, drop the schemas. */
export async function stopAndDrop(service: Proc | undefined, databaseUrl: string, schemas: readonly string[], redis?: PrivateRedis): Promise<void> {
  await stopProc(service);
  await redis?.close();
  await dropSchemas(databaseUrl, schemas);
}

export async function obliterateQueue(redisUrl: string, prefix: string): Promise<void> {
  const u = new URL(redisUrl);
  const queue = new Queue('runs', { connection: { host: u.hostname, port: Number(u.port || 6379) }, prefix });
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close().catch(() => {});
}

export interface LogLine {
  msg?: string;
  runId?: string;
  level?: number;
  time?: number;
  err?: { message?: string; type?: string };
  [k: string]: unknown;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  logs: LogLine[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const INTERESTING = new Set([
  'training started',
  'epoch done',
  'run resumed from its checkpoint',
  'run restarted from epoch 1 (no checkpoint)',
  'job stalled (its worker was lost): back in the queue',
  'attempt failed: BullMQ retries it',
  'recording failed: stopping this attempt',
  'training succeeded',
  'training failed',
  'shutting down',
  'shutting down: interrupting training, jobs go back to the queue',
  'training interrupted by shutdown: job handed back to the queue',
  'reconciler: re-enqueued runs whose BullMQ job was missing',
  'training thread terminated and replaced',
  'training cancelled',
]);

/** Starts `node dist/main.js <role>`; prints interesting log lines and every warn/error (deduplicated after 3). */
export function startProc(name: string, role: string, env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [MAIN, role], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const seen = new Map<string, number>();
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      let l: LogLine;
      try {
        l = JSON.parse(line) as LogLine;
      } catch {
        continue;
      }
      logs.push(l);
      const level = l.level ?? 0;
      if ((l.msg && INTERESTING.has(l.msg)) || level >= 40) {
        const key = `${l.msg}|${l.err?.message ?? ''}`;
        const n = (seen.get(key) ?? 0) + 1;
        seen.set(key, n);
        if (n > 3 && level < 50) continue;
        if (n > 3 && n % 20 !== 0) continue;
        const extra = ['epoch', 'fromEpoch', 'resumeFromEpoch', 'attempt', 'signal', 'component']
          .filter((k) => l[k] !== undefined)
          .map((k) => `${k}=${JSON.stringify(l[k])}`);
        if (l.err?.message) extra.push(`err=${JSON.stringify(l.err.message.split('\n')[0]?.slice(0, 200))}`);
        const lv = level >= 50 ? 'ERROR ' : level >= 40 ? 'WARN ' : '';
        say(`${name}: ${lv}${l.msg}${extra.length ? ` (${extra.join(', ')})` : ''}${n > 3 ? ` [×${n}]` : ''}`);
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(`[${name} stderr] ${chunk.toString('utf8')}`));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  say(`started ${name} (\`node dist/main.js ${role}\`, pid ${child.pid})`);
  return { name, child, logs, exit };
}

export async function stopProc(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  await Promise.race([p.exit, sleep(8000)]);
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}

export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(100);
  }
}

export async function json<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    body = text as unknown as T;
  }
  return { status: res.status, body };
}

/** Waits until the API answers /readyz and `service` (`node dist/main.js all`) logged that it started. */
export async function waitForService(base: string, service: Proc): Promise<void> {
  await until('the API', async () => ((await fetch(`${base}/readyz`).catch(() => null))?.ok ? true : undefined), 90_000);
  await until('the worker', () => (service.logs.some((l) => l.msg === 'regula all started') ? true : undefined), 60_000);
}

/** Starts `node dist/main.js all` and waits until it serves. */
export async function startService(base: string, env: NodeJS.ProcessEnv): Promise<Proc> {
  const service = startProc('service', 'all', env);
  await waitForService(base, service);
  return service;
}

/** Submits `body`, says so, and follows the run's event stream until `abort`. */
export async function submitAndFollow(
  base: string,
  body: { name: string; training: { epochs: number; batchSize: number } },
): Promise<{ runId: string; sse: Follower; abort: AbortController }> {
  const runId = await submitRun(base, body);
  say(`submitted run ${runId} (${body.training.epochs} epochs, batch ${body.training.batchSize}, emnist-mini)`);
  const abort = new AbortController();
  return { runId, sse: follow(base, runId, abort.signal), abort };
}

/** POST /v1/runs; the new run's id (throws unless 202). */
export async function submitRun(base: string, body: unknown): Promise<string> {
  const r = await json<{ id: string }>(`${base}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 202) throw new Error(`POST /v1/runs answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/** Polls GET /v1/runs/:id until the run is neither queued nor running; its view. Throws after `timeoutMs`. */
export async function waitForRun<V extends { status: string }>(base: string, runId: string, timeoutMs: number): Promise<V> {
  return until(
    `run ${runId} to finish`,
    async () => {
      const r = await json<V>(`${base}/v1/runs/${runId}`).catch(() => undefined);
      return r && r.status === 200 && !['queued', 'running'].includes(r.body.status) ? r.body : undefined;
    },
    timeoutMs,
  );
}

/**
 * Waits (at most `timeoutMs`) for the run to finish — a FINDING if it does not — and for the
 * follower to see its terminal event, then checks that the run succeeded.
 */
export async function checkRunSucceeds(base: string, runId: string, sse: Follower, timeoutMs: number, where = ''): Promise<void> {
  let final: { status: string } | undefined;
  try {
    final = await waitForRun(base, runId, timeoutMs);
  } catch (err) {
    say(`FINDING: ${err instanceof Error ? err.message : String(err)}`);
  }
  await until('the SSE client to see a terminal event', () => (sse.done() ? true : undefined), 15_000).catch(() =>
    say('the SSE client saw no terminal event within 15 s'),
  );
  const run = await json<{ status: string; error?: string | null }>(`${base}/v1/runs/${runId}`);
  check(
    run.body.status === 'succeeded',
    `run status is succeeded${where} (got ${run.body.status}${run.body.error ? `, error: ${run.body.error}` : ''}${final ? '' : `, still unfinished after ${timeoutMs / 1000} s`})`,
  );
}

export interface RunEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

export interface Follower {
  events: RunEvent[];
  /** One entry per HTTP connection: when it opened, its status, how it ended. */
  connections: { at: string; status: number | string; lastEventId: number | undefined; ended?: string }[];
  /** seq numbers that arrived out of order or twice on the wire. */
  anomalies: string[];
  done: () => boolean;
}

/**
 * Follows a run's SSE stream like a browser's EventSource: when a connection ends without a
 * terminal event (or fails), it reconnects after 500 ms with Last-Event-ID.
 */
export function follow(base: string, runId: string, signal: AbortSignal): Follower {
  const f: Follower = { events: [], connections: [], anomalies: [], done: () => f.events.some((e) => ['completed', 'failed', 'cancelled'].includes(e.type)) };
  void (async () => {
    while (!signal.aborted && !f.done()) {
      const last = f.events.at(-1)?.seq;
      const conn: Follower['connections'][number] = { at: t(), status: 'pending', lastEventId: last };
      f.connections.push(conn);
      try {
        const res = await fetch(`${base}/v1/runs/${runId}/events`, {
          headers: { accept: 'text/event-stream', ...(last ? { 'last-event-id': String(last) } : {}) },
          signal,
        });
        conn.status = res.status;
        if (!res.body || res.status !== 200) throw new Error(`status ${res.status}`);
        const parser = new SseParser();
        for await (const chunk of res.body) {
          for (const fields of parser.push(chunk as Uint8Array)) {
            if (fields.event && fields.data && fields.id) {
              const e = { seq: Number(fields.id), type: fields.event, data: JSON.parse(fields.data) as Record<string, unknown> };
              const prev = f.events.at(-1)?.seq ?? 0;
              if (e.seq !== prev + 1) f.anomalies.push(`after seq ${prev} got seq ${e.seq} (${e.type}) at ${t()}`);
              f.events.push(e);
            }
          }
        }
        conn.ended = `closed by the server at ${t()}`;
      } catch (err) {
        conn.ended = `error at ${t()}: ${err instanceof Error ? err.message : String(err)}`;
        if (signal.aborted) return;
      }
      if (!f.done()) await sleep(500);
    }
  })();
  return f;
}

export interface Check {
  ok: boolean;
  what: string;
}
export const checks: Check[] = [];
export function check(ok: boolean, what: string): boolean {
  checks.push({ ok, what });
  console.log(`[fault] ${ok ? 'PASS' : 'FAIL'} ${what}`);
  return ok;
}

export function request(epochs: number, name: string, batchSize = 32) {
  return {
    name,
    priority: 50,
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
    training: { epochs, batchSize, validationSplit: 0.2, seed: 11, optimizer: { type: 'adam', learningRate: 0.001 } },
    dataset: fixtureDataset,
  };
}

export function describeEvents(events: readonly RunEvent[]): string {
  return events
    .filter((e) => e.type !== 'batch')
    .map((e) =>
      e.type === 'epoch'
        ? `${e.seq}:epoch(${String(e.data.epoch)})`
        : e.type === 'resumed'
          ? `${e.seq}:resumed(from ${String(e.data.fromEpoch)})`
          : e.type === 'retrying'
            ? `${e.seq}:retrying(resume ${String(e.data.resumeFromEpoch)})`
            : `${e.seq}:${e.type}`,
    )
    .join(', ');
}

/** Stored-event checks: seq 1..K, createdAt in order, one started per attempt, one terminal (completed), one epoch event per epoch. */
export function checkStoredEvents(stored: readonly StoredEvent[], epochs: number): void {
  const seqs = stored.map((e) => e.seq);
  check(
    seqs.every((s, i) => s === i + 1),
    `stored events have seq exactly 1..${stored.length}, no gap, no duplicate (first break: ${seqs.findIndex((s, i) => s !== i + 1)})`,
  );
  const outOfOrder = stored.findIndex((e, i) => i > 0 && e.createdAt.getTime() < stored[i - 1]!.createdAt.getTime());
  check(outOfOrder < 0, `stored events' createdAt never goes backwards in seq order${outOfOrder >= 0 ? ` (at seq ${stored[outOfOrder]!.seq})` : ''}`);
  // Every attempt that trains emits its own `started` (after its `resumed`/`restarted`).
  const attempts = 1 + stored.filter((e) => e.type === 'resumed' || e.type === 'restarted').length;
  check(
    stored.filter((e) => e.type === 'started').length === attempts,
    `one started event per training attempt: ${attempts} (got ${stored.filter((e) => e.type === 'started').length})`,
  );
  const terminal = stored.filter((e) => ['completed', 'failed', 'cancelled'].includes(e.type));
  check(
    terminal.length === 1 && terminal[0]!.type === 'completed' && stored.at(-1)!.type === 'completed',
    `exactly one terminal event, completed, and it is the last (got [${terminal.map((e) => e.type).join(', ')}], last ${stored.at(-1)?.type})`,
  );
  const epochEvents = stored.filter((e) => e.type === 'epoch').map((e) => Number(e.data.epoch));
  check(
    JSON.stringify(epochEvents) === JSON.stringify(Array.from({ length: epochs }, (_, i) => i + 1)),
    `stored epoch events are exactly 1..${epochs} in order, each once (got [${epochEvents.join(', ')}])`,
  );
}

export interface StoredEvent {
  seq: number;
  type: string;
  data: Record<string, unknown>;
  createdAt: Date;
}

/**
 * The checks on a finished run's rows — epoch rows exactly 1..epochs, no checkpoint row left, the
 * model stored — and on its stored events (checkStoredEvents). Returns the stored events. `schema`:
 * the service's PostgreSQL schema, null for the default one.
 */
export async function checkStoredRun(client: pg.Client, schema: string | null, runId: string, epochs: number): Promise<StoredEvent[]> {
  const table = (name: string) => (schema ? `"${schema}"."${name}"` : `"${name}"`);
  const rows = (await client.query<{ epoch: number }>(`SELECT epoch FROM ${table('EpochMetric')} WHERE "runId" = $1 ORDER BY epoch`, [runId])).rows.map(
    (r) => r.epoch,
  );
  check(
    JSON.stringify(rows) === JSON.stringify(Array.from({ length: epochs }, (_, i) => i + 1)),
    `epoch rows are exactly 1..${epochs}, each once (got [${rows.join(', ')}])`,
  );
  const cp = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table('Checkpoint')} WHERE "runId" = $1`, [runId]);
  check(cp.rows[0]?.n === 0, `the checkpoint row is gone (${cp.rows[0]?.n ?? '?'} left)`);
  const art = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table('ModelArtifact')} WHERE "runId" = $1`, [runId]);
  check(art.rows[0]?.n === 1, `the model artifact is stored (${art.rows[0]?.n ?? '?'} rows)`);
  const stored = (await client.query<StoredEvent>(`SELECT seq, type, data, "createdAt" FROM ${table('RunEvent')} WHERE "runId" = $1 ORDER BY seq`, [runId]))
    .rows;
  say(`stored events (batch events left out): ${describeEvents(stored)}`);
  checkStoredEvents(stored, epochs);
  return stored;
}

/** Reports the follower's connections and checks that it received every stored event once, in order. */
export function checkSseDelivery(sse: Follower, stored: readonly StoredEvent[]): void {
  say(
    `SSE client: ${sse.connections.length} connection(s): ${sse.connections.map((c) => `[${c.at} status ${c.status}, Last-Event-ID ${c.lastEventId ?? '-'}, ${c.ended ?? 'open'}]`).join(' ')}`,
  );
  if (sse.anomalies.length) say(`SSE client: out-of-sequence deliveries: ${sse.anomalies.join('; ')}`);
  const got = sse.events.map((e) => e.seq);
  const want = stored.map((e) => e.seq);
  const missing = want.filter((s) => !got.includes(s));
  check(
    JSON.stringify(got) === JSON.stringify(want),
    `the SSE client received every stored event once, in order (${got.length} received of ${want.length} stored${missing.length ? `; missing seq ${missing.map((s) => `${s} (${stored.find((e) => e.seq === s)?.type})`).join(', ')}` : ''}${sse.anomalies.length ? `; ${sse.anomalies.length} out-of-sequence` : ''})`,
  );
}

/** The service's error log lines since `since` (a performance.now() time): their count, then each kind with its count. */
export function errorLogSummary(logs: readonly LogLine[], since: number): string {
  const errs = logs.filter((l) => (l.level ?? 0) >= 50 && (l.time ?? 0) >= Date.now() - (performance.now() - since));
  const kinds = new Map<string, number>();
  for (const l of errs) {
    const k = `${l.msg} — ${l.err?.message?.split('\n')[0]?.slice(0, 160) ?? ''}`;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  return `${errs.length}${[...kinds].map(([k, n]) => `\n         ${n} × ${k}`).join('')}`;
}

/**
 * Runs a fault script's `main` under a hard time limit, always runs `cleanup`, prints the check
 * summary and exits 0 only when there were checks and all of them passed.
 */
export async function runFaultScript(main: () => Promise<unknown>, cleanup: () => Promise<void>, timeoutMs: number): Promise<never> {
  const timer = setTimeout(() => {
    console.error(`[fault] ${t()} FAIL: the script ran past FAULT_TIMEOUT_MS (${timeoutMs} ms)`);
    void cleanup().finally(() => process.exit(1));
  }, timeoutMs);
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
}
