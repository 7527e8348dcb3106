/**
 * SSE fan-out under load: SUBSCRIBERS (default 1,000) concurrent event streams on ONE run.
 *
 *   node --import tsx bench/load-sse.ts
 *
 * In process, on loopback only: the test harness (real Fastify app on 127.0.0.1, a private
 * PostgreSQL schema in regula_test, a private Redis queue prefix, DATA_DIR=test/fixtures), no
 * worker at first. Submits a 2-epoch run on the emnist-mini fixture (PROGRESS_INTERVAL_MS=0: a
 * `batch` event per batch), opens every stream with plain `http.get` (an agent without a socket
 * limit), waits until every subscriber has its `queued` event, then starts a worker host so the
 * whole run is delivered live. Checks that EVERY subscriber received exactly the run's stored
 * events (same ids, same types, same order), ending with `completed`, and that every stream was
 * ended by the server. Prints subscribers, events per subscriber, total delivered, wall time and
 * the lag between the first and the last subscriber receiving the terminal event.
 * Exit code 0 when every check passed, 1 otherwise. Bounded by LOAD_TIMEOUT_MS (default 300000);
 * everything it created (schema, queue keys, sockets) is dropped in every case.
 */
import http from 'node:http';
import { pino } from 'pino';
import { startHarness, type Harness } from '../test/support/harness.js';
import { SseParser } from '../test/support/sse-client.js';
import { WorkerHost } from '../src/worker/host.js';
import { TrainerPool } from '../src/worker/pool.js';
import { loadSpec } from './support/load.js';

const SUBSCRIBERS = Number(process.env.SUBSCRIBERS ?? 1000);
const TIMEOUT_MS = Number(process.env.LOAD_TIMEOUT_MS ?? 300_000);
const EPOCHS = 2;
const t0 = performance.now();
const say = (msg: string) => console.log(`[load-sse] t+${((performance.now() - t0) / 1000).toFixed(1)}s ${msg}`);

const spec = loadSpec('load-sse', { epochs: EPOCHS, batchSize: 64, validationSplit: 0.2, seed: 42 });

interface Subscriber {
  events: { id: number; event: string }[];
  terminalAt: number | null;
  ended: boolean;
  error: string | null;
  request: http.ClientRequest;
}

/** One SSE stream over plain http.get; `onQueued` is called on its `queued` event. */
function subscribe(url: string, agent: http.Agent, onQueued: () => void): Subscriber {
  const s: Subscriber = { events: [], terminalAt: null, ended: false, error: null, request: undefined as unknown as http.ClientRequest };
  s.request = http.get(url, { agent, headers: { accept: 'text/event-stream' } }, (res) => {
    if (res.statusCode !== 200) {
      s.error = `status ${res.statusCode}`;
      res.resume();
      return;
    }
    res.setEncoding('utf8');
    const parser = new SseParser();
    res.on('data', (chunk: string) => {
      for (const { id, event } of parser.push(chunk)) {
        if (event === undefined) continue; // comments, retry:
        s.events.push({ id: Number(id), event });
        if (event === 'queued') onQueued();
        if (event === 'completed' || event === 'failed' || event === 'cancelled') s.terminalAt = performance.now();
      }
    });
    res.on('end', () => (s.ended = true));
    res.on('error', (err) => (s.error ??= err.message));
  });
  s.request.on('error', (err) => (s.error ??= err.message));
  return s;
}

async function main(): Promise<boolean> {
  let h: Harness | undefined;
  let stopWorker: (() => Promise<void>) | undefined;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const subs: Subscriber[] = [];
  try {
    h = await startHarness({ env: { PROGRESS_INTERVAL_MS: '0', RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn' } });
    say(`service on ${h.baseUrl} (schema ${h.schema}, no worker yet)`);
    const res = await fetch(`${h.baseUrl}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    if (res.status !== 202) throw new Error(`POST /v1/runs answered ${res.status}: ${await res.text()}`);
    const run = (await res.json()) as { id: string };
    say(`run ${run.id} queued; opening ${SUBSCRIBERS} event streams`);

    let queued = 0;
    const openStart = performance.now();
    for (let i = 0; i < SUBSCRIBERS; i++) subs.push(subscribe(`${h.baseUrl}/v1/runs/${run.id}/events`, agent, () => ++queued));
    // Every stream has its queued event, or some failed (they are reported below).
    while (queued + subs.filter((s) => s.error || s.ended).length < SUBSCRIBERS) await new Promise((r) => setTimeout(r, 20));
    if (queued < SUBSCRIBERS) say(`only ${queued}/${SUBSCRIBERS} streams opened`);
    say(
      `${SUBSCRIBERS} streams open (each has its queued event) in ${(performance.now() - openStart).toFixed(0)} ms; open on the server: ${h.app.sseStreams.size}`,
    );

    const config = h.config;
    const pool = await TrainerPool.start(1, config.tfjsBackend);
    const host = new WorkerHost({
      connection: h.ctx.connection,
      prefix: config.queuePrefix,
      concurrency: 1,
      dataDir: config.dataDir,
      progressIntervalMs: config.progressIntervalMs,
      repo: h.ctx.repo,
      bus: h.ctx.bus,
      pool,
      log: pino({ level: 'warn' }),
    });
    await host.start();
    stopWorker = async () => {
      await host.close();
      await pool.close();
    };
    const trainStart = performance.now();
    say(`worker started (${pool.backend.name}); training ${EPOCHS} epochs`);

    while (!subs.every((s) => s.ended || s.error)) await new Promise((r) => setTimeout(r, 50));
    const wall = performance.now() - trainStart;

    const stored = await h.ctx.repo.events(run.id);
    const expected = stored.map((e) => `${e.seq}:${e.type}`).join(',');
    const problems: string[] = [];
    if (stored.at(-1)?.type !== 'completed') problems.push(`the run's last stored event is ${stored.at(-1)?.type}, not completed`);
    subs.forEach((s, i) => {
      if (s.error) problems.push(`subscriber ${i}: ${s.error}`);
      else if (!s.ended) problems.push(`subscriber ${i}: stream not ended`);
      else if (s.events.map((e) => `${e.id}:${e.event}`).join(',') !== expected)
        problems.push(
          `subscriber ${i}: got ${s.events.length} events (${s.events
            .slice(-3)
            .map((e) => `${e.id}:${e.event}`)
            .join(',')}…), expected ${stored.length}`,
        );
    });
    const terminal = subs.map((s) => s.terminalAt).filter((x): x is number => x !== null);
    const lag = terminal.length ? Math.max(...terminal) - Math.min(...terminal) : NaN;
    const delivered = subs.reduce((n, s) => n + s.events.length, 0);
    const types = new Map<string, number>();
    for (const e of stored) types.set(e.type, (types.get(e.type) ?? 0) + 1);

    console.log('');
    console.log(`subscribers:                 ${SUBSCRIBERS}`);
    console.log(`events per subscriber:       ${stored.length} stored (${[...types].map(([k, v]) => `${k} ${v}`).join(', ')})`);
    console.log(`total delivered:             ${delivered} (expected ${SUBSCRIBERS * stored.length})`);
    console.log(`wall time (worker start → every stream ended): ${(wall / 1000).toFixed(2)} s`);
    console.log(`terminal event lag (first → last subscriber):  ${lag.toFixed(1)} ms`);
    console.log(
      `subscribers with every event, in order, ending with completed: ${SUBSCRIBERS - problems.filter((p) => p.startsWith('subscriber')).length}/${SUBSCRIBERS}`,
    );
    for (const p of problems.slice(0, 20)) console.log(`MISMATCH ${p}`);
    if (problems.length > 20) console.log(`… and ${problems.length - 20} more`);
    console.log(problems.length === 0 ? 'PASS' : 'FAIL');
    return problems.length === 0;
  } finally {
    for (const s of subs) s.request.destroy();
    agent.destroy();
    await stopWorker?.().catch(() => {});
    await h?.close().catch((err: unknown) => console.error('cleanup failed:', err));
  }
}

const timer = setTimeout(() => {
  console.error(`[load-sse] timed out after ${TIMEOUT_MS} ms`);
  process.exit(1);
}, TIMEOUT_MS);
timer.unref();
main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (err: unknown) => {
    console.error('[load-sse] failed:', err);
    process.exit(1);
  },
);
