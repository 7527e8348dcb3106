/**
 * Shared pieces of the infrastructure fault scripts (fault-redis-restart.ts,
 * fault-postgres-restart.ts): a service process with parsed pino logs, an SSE follower that
 * records every connection it made and every event it received, polling, checks and the run
 * request they submit (emnist-mini, the committed fixture).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MAIN = path.join(ROOT, 'dist', 'main.js');

const started = performance.now();
export const t = () => `t+${((performance.now() - started) / 1000).toFixed(1)}s`;
export const say = (msg: string) => console.log(`[fault] ${t()} ${msg}`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function assertLoopback(name: string, url: string): void {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    console.error(`${name} must point at loopback, got ${host}`);
    process.exit(1);
  }
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
  'run resumed from its checkpoint',
  'run restarted from epoch 1 (no checkpoint)',
  'job stalled (its worker was lost): back in the queue',
  'attempt failed: BullMQ retries it',
  'recording failed: stopping this attempt',
  'training succeeded',
  'training failed',
  'shutting down',
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
        const extra = ['epoch', 'fromEpoch', 'attempt', 'component']
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
        const decoder = new TextDecoder();
        let buffer = '';
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk as Uint8Array, { stream: true });
          let cut: number;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const fields: Record<string, string> = {};
            for (const line of block.split('\n')) {
              const i = line.indexOf(':');
              if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
            }
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

export function request(epochs: number, name: string) {
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
    training: { epochs, batchSize: 32, validationSplit: 0.2, seed: 11, optimizer: { type: 'adam', learningRate: 0.001 } },
    dataset: {
      name: 'idx',
      train: { images: 'emnist-mini/emnist-mini-train-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-train-labels-idx1-ubyte.gz' },
      test: { images: 'emnist-mini/emnist-mini-test-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-test-labels-idx1-ubyte.gz' },
    },
  };
}

export function describeEvents(events: RunEvent[]): string {
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

/** Stored-event checks shared by both scripts: seq 1..K, createdAt in order, one epoch event per epoch. */
export function checkStoredEvents(stored: { seq: number; type: string; data: Record<string, unknown>; createdAt: Date }[], epochs: number): void {
  const seqs = stored.map((e) => e.seq);
  check(
    seqs.every((s, i) => s === i + 1),
    `stored events have seq exactly 1..${stored.length}, no gap, no duplicate (first break: ${seqs.findIndex((s, i) => s !== i + 1)})`,
  );
  const outOfOrder = stored.findIndex((e, i) => i > 0 && e.createdAt.getTime() < stored[i - 1]!.createdAt.getTime());
  check(outOfOrder < 0, `stored events' createdAt never goes backwards in seq order${outOfOrder >= 0 ? ` (at seq ${stored[outOfOrder]!.seq})` : ''}`);
  // Every attempt that trains emits its own `started` (after its `resumed`/`restarted`).
  const attempts = 1 + stored.filter((e) => e.type === 'resumed' || e.type === 'restarted').length;
  check(stored.filter((e) => e.type === 'started').length === attempts, `one started event per training attempt: ${attempts} (got ${stored.filter((e) => e.type === 'started').length})`);
  const terminal = stored.filter((e) => ['completed', 'failed', 'cancelled'].includes(e.type));
  check(terminal.length === 1 && terminal[0]!.type === 'completed' && stored.at(-1)!.type === 'completed', `exactly one terminal event, completed, and it is the last (got [${terminal.map((e) => e.type).join(', ')}], last ${stored.at(-1)?.type})`);
  const epochEvents = stored.filter((e) => e.type === 'epoch').map((e) => Number(e.data.epoch));
  check(
    JSON.stringify(epochEvents) === JSON.stringify(Array.from({ length: epochs }, (_, i) => i + 1)),
    `stored epoch events are exactly 1..${epochs} in order, each once (got [${epochEvents.join(', ')}])`,
  );
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
