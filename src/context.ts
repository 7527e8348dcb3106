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
import { Predictor } from './engine/predict.js';
import { initBackend } from './engine/backends/index.js';
import { createPrisma, type PrismaClient } from './store/prisma.js';
import { RunsRepo } from './store/runs-repo.js';

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
  runs: RunsService;
  studies: StudiesService;
  connection: ConnectionOptions;
  close(): Promise<void>;
}

/** What the HTTP app needs from a context, readiness checks included. */
export function appDeps(ctx: Context): AppDeps {
  return {
    runs: ctx.runs,
    studies: ctx.studies,
    bus: ctx.bus,
    readiness: {
      postgres: async () => {
        await ctx.prisma.$queryRaw`SELECT 1`;
      },
      redis: () => ctx.bus.ping(),
    },
  };
}

export function createContext(config: Config): Context {
  const prisma = createPrisma({ databaseUrl: config.databaseUrl });
  const repo = new RunsRepo(prisma);
  const bus = new RunEventBus(config.redisUrl, config.queuePrefix);
  const connection = redisConnection(config.redisUrl);
  const queue = new RunQueue(connection, config.queuePrefix);
  // Predictions run in the API process; its tfjs backend starts on the first one.
  let backend: Promise<unknown> | undefined;
  const predictor = new Predictor(async () => {
    backend ??= initBackend(config.tfjsBackend);
    await backend;
  });
  const runs = new RunsService({ repo, queue, bus, predictor, dataDir: config.dataDir });
  const studies = new StudiesService({ repo, runs });
  return {
    config,
    prisma,
    repo,
    bus,
    queue,
    runs,
    studies,
    connection,
    close: async () => {
      predictor.dispose();
      await Promise.allSettled([queue.close(), bus.close()]);
      await prisma.$disconnect();
    },
  };
}
