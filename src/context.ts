/**
 * The composition root's building blocks: one place that turns a Config into connected services.
 * Entry points (main.ts) and integration tests both use it.
 */
import type { ConnectionOptions } from 'bullmq';
import type { Config } from './config.js';
import type { AppDeps } from './http/app.js';
import { RunEventBus } from './events/bus.js';
import { RunQueue } from './queue/producer.js';
import { RunsService } from './runs/service.js';
import { StudiesService } from './studies/service.js';
import { Submissions } from './runs/submission.js';
import { RunPreparer } from './runs/prepare.js';
import { Predictor } from './engine/predict.js';
import { initBackend } from './engine/backends/index.js';
import { createPrisma, type PrismaClient } from './store/prisma.js';
import { RunsRepo } from './store/runs-repo.js';
import { StudiesRepo } from './store/studies-repo.js';
import { ApiKeysRepo } from './store/api-keys-repo.js';
import { IdempotencyKeys } from './store/submissions.js';
import { QueueView } from './queue/view.js';
import type { Registry } from './metrics/registry.js';
import { RedisSessionStore, type SessionStore } from './auth/sessions.js';

export function redisConnection(redisUrl: string): ConnectionOptions {
  const u = new URL(redisUrl);
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

export interface Context {
  config: Config;
  prisma: PrismaClient;
  repo: RunsRepo;
  bus: RunEventBus;
  queue: RunQueue;
  queueView: QueueView;
  apiKeys: ApiKeysRepo;
  runs: RunsService;
  studies: StudiesService;
  /** Dashboard login sessions (Redis). */
  sessions: SessionStore;
  connection: ConnectionOptions;
  close(): Promise<void>;
}

/** What the HTTP app needs from a context, readiness checks included. */
/**
 * `worker`: the health of a worker in the same process (`main.js all`), added to /readyz as the
 * `worker` check; absent in an API-only process (workers answer their own /readyz on METRICS_PORT).
 */
export function appDeps(ctx: Context, opts: { metrics?: Registry; worker?: () => { ok: boolean; checks: Record<string, string> } } = {}): AppDeps {
  const worker = opts.worker;
  return {
    runs: ctx.runs,
    studies: ctx.studies,
    bus: ctx.bus,
    queue: ctx.queueView,
    auth: { mode: ctx.config.auth, keys: ctx.apiKeys },
    rateLimitPerMinute: ctx.config.rateLimitPerMinute,
    sessions: ctx.sessions,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    readiness: {
      postgres: async () => {
        await ctx.prisma.$queryRaw`SELECT 1`;
      },
      redis: () => ctx.bus.ping(),
      ...(worker
        ? {
            worker: async () => {
              const h = worker();
              if (!h.ok)
                throw new Error(
                  Object.entries(h.checks)
                    .filter(([, v]) => v !== 'ok')
                    .map(([k, v]) => `${k}: ${v}`)
                    .join('; '),
                );
            },
          }
        : {}),
    },
  };
}

export function createContext(config: Config): Context {
  const prisma = createPrisma({ databaseUrl: config.databaseUrl });
  const repo = new RunsRepo(prisma, { databaseUrl: config.databaseUrl });
  const bus = new RunEventBus(config.redisUrl, config.queuePrefix);
  const connection = redisConnection(config.redisUrl);
  const queue = new RunQueue(connection, config.queuePrefix);
  // Predictions run in the API process; its tfjs backend starts on the first one.
  let backend: Promise<unknown> | undefined;
  const predictor = new Predictor(async () => {
    backend ??= initBackend(config.tfjsBackend);
    await backend;
  });
  const idempotencyKeys = new IdempotencyKeys(prisma);
  const submissions = new Submissions({ repo, queue, idempotencyKeys, maxActiveRunsPerOwner: config.maxActiveRunsPerKey });
  const preparer = new RunPreparer(config.dataDir);
  const runs = new RunsService({
    repo,
    queue,
    bus,
    predictor,
    dataDir: config.dataDir,
    idempotencyKeys,
    maxActiveRunsPerOwner: config.maxActiveRunsPerKey,
    viewCacheMs: config.runViewCacheMs,
    submissions,
    preparer,
  });
  const studies = new StudiesService({ repo, studies: new StudiesRepo(prisma, repo.sql), runs, submissions, preparer });
  const sessions = new RedisSessionStore(config.redisUrl, config.queuePrefix);
  return {
    config,
    prisma,
    repo,
    bus,
    queue,
    queueView: new QueueView(queue.queue),
    apiKeys: new ApiKeysRepo(prisma),
    runs,
    studies,
    sessions,
    connection,
    close: async () => {
      predictor.dispose();
      await Promise.allSettled([queue.close(), bus.close(), sessions.close()]);
      await repo.close();
      await prisma.$disconnect();
    },
  };
}
