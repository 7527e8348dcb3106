/**
 * Integration harness: the real PostgreSQL (a fresh schema per run) and the real Redis (a fresh
 * queue prefix per run), the real Fastify app on a loopback port, and optionally a real worker host
 * with training threads. Everything it creates is dropped on close.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { appDeps, createContext, type Context } from '../../src/context.js';
import { buildApp } from '../../src/http/app.js';
import { ensureDatabase } from '../../src/store/ensure-database.js';
import { migrate } from '../../src/store/migrate.js';
import { WorkerHost } from '../../src/worker/host.js';
import { TrainerPool } from '../../src/worker/pool.js';
import { pino } from 'pino';
import { SseParser } from './sse-client.js';

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/regula_test';

export interface Harness {
  ctx: Context;
  config: Config;
  app: FastifyInstance;
  baseUrl: string;
  schema: string;
  /** A new API key's secret (for harnesses started with env AUTH=required). */
  createKey(owner: string, name?: string): Promise<string>;
  close(): Promise<void>;
}

export async function startHarness(opts: { worker?: boolean; env?: Record<string, string> } = {}): Promise<Harness> {
  const id = randomBytes(4).toString('hex');
  const schema = `test_${id}`;
  await ensureDatabase(TEST_DATABASE_URL);
  await migrate({ databaseUrl: TEST_DATABASE_URL, schema });
  const config = loadConfig({
    DATABASE_URL: `${TEST_DATABASE_URL}?schema=${schema}`,
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: `regula-test-${id}`,
    DATA_DIR: FIXTURES,
    // Pinned so results are comparable across machines; the onednn test asks for its backend itself.
    TFJS_BACKEND: process.env.TEST_TFJS_BACKEND ?? 'wasm',
    PROGRESS_INTERVAL_MS: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...opts.env,
  });
  const ctx = createContext(config);
  const log = pino({ level: config.logLevel });
  const app = await buildApp(appDeps(ctx), { loggerInstance: log });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  let stopWorker: (() => Promise<void>) | undefined;
  if (opts.worker) {
    const pool = await TrainerPool.start(config.workerConcurrency, config.tfjsBackend);
    const host = new WorkerHost({
      connection: ctx.connection,
      prefix: config.queuePrefix,
      concurrency: config.workerConcurrency,
      dataDir: config.dataDir,
      progressIntervalMs: config.progressIntervalMs,
      repo: ctx.repo,
      bus: ctx.bus,
      pool,
      log,
    });
    await host.start();
    stopWorker = async () => {
      await host.close();
      await pool.close();
    };
  }

  return {
    ctx,
    config,
    app,
    baseUrl: `http://127.0.0.1:${port}`,
    schema,
    createKey: async (owner, name = 'test') => (await ctx.apiKeys.create(owner, name)).secret,
    close: async () => {
      await stopWorker?.();
      await app.close();
      await ctx.queue.queue.obliterate({ force: true }).catch(() => {});
      await ctx.close();
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
}

export interface SseEvent {
  id: number;
  /** The id as sent (a study stream's id is a cursor like "3.12.0"). */
  rawId: string;
  event: string;
  data: Record<string, unknown>;
}

/** Reads an SSE stream until it ends (or `until` says stop), parsing id/event/data frames. */
export async function readSse(
  url: string,
  opts: { headers?: Record<string, string>; until?: (e: SseEvent) => boolean; onEvent?: (e: SseEvent) => void; timeoutMs?: number } = {},
): Promise<SseEvent[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), opts.timeoutMs ?? 120_000);
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...opts.headers }, signal: controller.signal });
  if (res.status !== 200 || !res.body) throw new Error(`SSE ${url} answered ${res.status}`);
  const events: SseEvent[] = [];
  const parser = new SseParser();
  try {
    for await (const chunk of res.body) {
      for (const fields of parser.push(chunk as Uint8Array)) {
        if (fields.event === undefined || fields.data === undefined) continue;
        const e: SseEvent = { id: Number(fields.id), rawId: fields.id ?? '', event: fields.event, data: JSON.parse(fields.data) as Record<string, unknown> };
        events.push(e);
        opts.onEvent?.(e);
        if (opts.until?.(e)) {
          controller.abort();
          return events;
        }
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  return events;
}
