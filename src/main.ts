/**
 * Entry points:  node dist/main.js api | worker | all | migrate
 *   api     the HTTP API
 *   worker  a BullMQ worker with WORKER_CONCURRENCY training threads
 *   all     migrate, then the API and one worker in one process (what `npm start` runs)
 *   migrate create the database if needed and apply pending migrations
 */
import { pino, type Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { appDeps, createContext, type Context } from './context.js';
import { buildApp } from './http/app.js';
import { ensureDatabase } from './store/ensure-database.js';
import { migrate } from './store/migrate.js';
import { WorkerHost } from './worker/host.js';
import { TrainerPool } from './worker/pool.js';

type Stop = () => Promise<void>;

async function runMigrations(config: Config, log: Logger): Promise<void> {
  if (await ensureDatabase(config.databaseUrl)) log.info('created the database');
  const { applied } = await migrate({ databaseUrl: config.databaseUrl, log: (m) => log.info(m) });
  log.info({ applied }, applied.length ? 'migrations applied' : 'database schema is up to date');
}

async function startApi(ctx: Context, log: Logger): Promise<Stop> {
  const app = await buildApp(appDeps(ctx), { loggerInstance: log.child({ component: 'api' }) });
  await app.listen({ host: ctx.config.host, port: ctx.config.port });
  return () => app.close();
}

async function startWorker(ctx: Context, log: Logger, concurrency: number): Promise<Stop> {
  const pool = await TrainerPool.start(concurrency, ctx.config.tfjsBackend);
  log.info({ backend: pool.backend.name, note: pool.backend.note, concurrency }, 'training threads ready');
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
  });
  await host.start();
  return async () => {
    await host.close();
    await pool.close();
  };
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
  const log = pino({ level: config.logLevel, base: { service: 'regula', role } });

  if (role === 'migrate') {
    await runMigrations(config, log);
    return;
  }
  if (!['api', 'worker', 'all'].includes(role)) {
    console.error(`usage: main.js api | worker | all | migrate (got "${role}")`);
    process.exit(2);
  }
  if (role === 'all') await runMigrations(config, log);

  const ctx = createContext(config);
  const stops: Stop[] = [];
  if (role === 'api' || role === 'all') stops.push(await startApi(ctx, log));
  if (role === 'worker' || role === 'all') stops.push(await startWorker(ctx, log, role === 'all' ? 1 : config.workerConcurrency));
  log.info({ port: role === 'worker' ? undefined : config.port, dataDir: config.dataDir }, `regula ${role} started`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
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
