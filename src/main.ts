/**
 * Entry points:  node dist/main.js api | worker | all | migrate | create-key | list-keys | revoke-key
 *   api        the HTTP API
 *   worker     a BullMQ worker with WORKER_CONCURRENCY training threads
 *   all        migrate, then the API and a worker in one process (what `npm start` runs)
 *   migrate    create the database if needed and apply pending migrations
 *   create-key --owner <owner> [--name <name>]   a new API key; its secret is printed once
 *   list-keys [--owner <owner>], revoke-key <id | prefix>
 */
import { pino, type Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { appDeps, createContext, type Context } from './context.js';
import { buildApp } from './http/app.js';
import { ensureDatabase } from './store/ensure-database.js';
import { migrate } from './store/migrate.js';
import { WorkerHost, type WorkerHealth } from './worker/host.js';
import { TrainerPool } from './worker/pool.js';
import { KEY_COMMANDS, runKeyCommand, UsageError, type KeyCommand } from './auth/cli.js';
import { createPrisma } from './store/prisma.js';
import { ApiKeysRepo } from './store/api-keys-repo.js';
import { newRegistry, type Registry } from './metrics/registry.js';
import { RunMetrics } from './metrics/runs.js';
import { serveMetrics, type Readiness } from './metrics/server.js';
import { readyLine } from './ready.js';
import { Reconciler } from './runs/reconciler.js';

type Stop = () => Promise<void>;

async function runMigrations(config: Config, log: Logger): Promise<void> {
  if (await ensureDatabase(config.databaseUrl)) log.info('created the database');
  const { applied } = await migrate({ databaseUrl: config.databaseUrl, log: (m) => log.info(m) });
  log.info({ applied }, applied.length ? 'migrations applied' : 'database schema is up to date');
}

async function startApi(ctx: Context, log: Logger, metrics: Registry, worker?: () => Readiness): Promise<Stop> {
  if (ctx.config.auth === 'off') {
    log.warn(
      'AUTH=off: THE API ACCEPTS REQUESTS WITHOUT AN API KEY AND EVERY CALLER SEES AND CANCELS EVERY RUN. ' +
        'Fine on your own machine; anywhere else set AUTH=required and create keys with `node dist/main.js create-key --owner <name>`.',
    );
  }
  const app = await buildApp(appDeps(ctx, { metrics, ...(worker ? { worker } : {}) }), { loggerInstance: log.child({ component: 'api' }) });
  await app.listen({ host: ctx.config.host, port: ctx.config.port });
  return () => app.close();
}

/** Run metrics from the events this process publishes; on METRICS_PORT too when it is set, with the worker's /readyz. */
async function startWorkerMetrics(ctx: Context, log: Logger, metrics: Registry, health: () => Readiness): Promise<Stop> {
  const runMetrics = new RunMetrics(metrics);
  const unobserve = ctx.bus.onPublish((runId, event) => runMetrics.observe(runId, event));
  if (ctx.config.metricsPort === null) return async () => unobserve();
  const server = await serveMetrics(metrics, ctx.config.host, ctx.config.metricsPort, health);
  log.info({ port: server.port }, 'worker metrics on GET /metrics, readiness on GET /readyz');
  return async () => {
    unobserve();
    await server.close();
  };
}

async function keyCommand(command: KeyCommand, config: Config): Promise<void> {
  const prisma = createPrisma({ databaseUrl: config.databaseUrl });
  try {
    await runKeyCommand(command, process.argv.slice(3), new ApiKeysRepo(prisma), {
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (err) {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`regula ${command}: ${err.message}`);
      process.exit(2);
    }
    throw err;
  } finally {
    await prisma.$disconnect();
  }
}

async function startWorker(ctx: Context, log: Logger, concurrency: number): Promise<{ stop: Stop; health: () => WorkerHealth; backend: string }> {
  const { config } = ctx;
  const pool = await TrainerPool.start(concurrency, config.tfjsBackend, {
    stopGraceMs: config.trainingStopGraceMs,
    ...(config.trainingThreadsPerRun > 0 ? { threadsPerRun: config.trainingThreadsPerRun } : {}),
    ...(config.trainingHeapLimitMb > 0 ? { heapLimitMb: config.trainingHeapLimitMb } : {}),
    onReplace: ({ runId, reason }) => log.warn({ runId, reason }, 'training thread terminated and replaced'),
  });
  log.info({ backend: pool.backend.name, note: pool.backend.note, concurrency, threadsPerRun: pool.threadsPerRun }, 'training threads ready');
  const host = new WorkerHost({
    connection: ctx.connection,
    prefix: ctx.config.queuePrefix,
    concurrency,
    dataDir: ctx.config.dataDir,
    progressIntervalMs: ctx.config.progressIntervalMs,
    repo: ctx.repo,
    bus: ctx.bus,
    pool,
    log: log.child({ component: 'worker' }),
    lockDurationMs: ctx.config.lockDurationMs,
    stalledIntervalMs: ctx.config.stalledIntervalMs,
    ...(config.runTimeLimitMs > 0 ? { runTimeLimitMs: config.runTimeLimitMs } : {}),
  });
  await host.start();
  const stop = async () => {
    // Runs in training stay `running` and go back to the queue; another worker resumes them from
    // their last checkpoint. One second of the grace period is left for closing connections.
    const clean = await host.shutdown(Math.max(0, ctx.config.shutdownGraceMs - 1000));
    if (!clean) {
      log.warn('shutdown grace period over with training still running: exiting; its job goes to another worker once its lock expires');
      return;
    }
    await pool.close();
  };
  return { stop, health: () => host.health(), backend: pool.backend.name };
}

async function main(): Promise<void> {
  const role = process.argv[2] ?? 'all';
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`regula: invalid configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  // Readable in a terminal (pino-pretty), JSON lines for everything else (log collectors, files, CI).
  const log = pino({
    level: config.logLevel,
    base: { service: 'regula', role },
    ...(process.stdout.isTTY
      ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname,service,role' } } }
      : {}),
  });

  if (role === 'migrate') {
    await runMigrations(config, log);
    return;
  }
  if ((KEY_COMMANDS as readonly string[]).includes(role)) {
    await keyCommand(role as KeyCommand, config);
    return;
  }
  if (!['api', 'worker', 'all'].includes(role)) {
    console.error(
      `usage: main.js api | worker | all | migrate | create-key --owner <owner> [--name <name>] | list-keys [--owner <owner>] | revoke-key <id | prefix> (got "${role}")`,
    );
    process.exit(2);
  }
  if (role === 'all') await runMigrations(config, log);

  const ctx = createContext(config);
  // One registry per process: in `all` the API's /metrics shows the worker's run metrics too.
  const metrics = newRegistry();
  const stops: Stop[] = [];
  let backend: string | null = null;
  // The worker's health, once it runs: its /readyz, and the API's in `all` (one process, one readiness).
  let health: (() => Readiness) | undefined;
  const workerHealth = () => health?.() ?? { ok: false, checks: { trainingThreads: 'starting' } };
  if (role === 'api' || role === 'all') stops.push(await startApi(ctx, log, metrics, role === 'all' ? workerHealth : undefined));
  if (role === 'worker' || role === 'all') {
    // Metrics (and /readyz) first, so they still answer while the worker stops.
    stops.push(await startWorkerMetrics(ctx, log, metrics, workerHealth));
    const worker = await startWorker(ctx, log, config.workerConcurrency);
    health = worker.health;
    backend = worker.backend;
    stops.push(worker.stop);
  }
  if (config.reconcileIntervalMs > 0) {
    // Every API and worker process runs it; a Redis lock lets one pass run at a time.
    const reconciler = new Reconciler({
      repo: ctx.repo,
      queue: ctx.queue,
      prefix: config.queuePrefix,
      log: log.child({ component: 'reconciler' }),
      intervalMs: config.reconcileIntervalMs,
    });
    reconciler.start();
    stops.push(() => reconciler.stop());
  }
  log.info({ port: role === 'worker' ? undefined : config.port, dataDir: config.dataDir }, `regula ${role} started`);
  log.info(readyLine(role, config, backend));

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
    // Whatever still hangs when the grace period is over (a connection that does not close), exit anyway.
    setTimeout(() => {
      log.error('shutdown grace period exceeded: exiting');
      process.exit(1);
    }, config.shutdownGraceMs).unref();
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.error({ err }, 'error while stopping'));
    await ctx.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  console.error('regula: fatal:', err);
  process.exit(1);
});
