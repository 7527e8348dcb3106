/**
 * Environment → one typed, validated Config. Invalid values fail fast, naming the variable.
 */
import path from 'node:path';

import { BACKEND_PREFERENCES, type BackendPreference } from './engine/backends/preferences.js';

export type { BackendPreference };
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  databaseUrl: string;
  redisUrl: string;
  host: string;
  port: number;
  dataDir: string;
  tfjsBackend: BackendPreference;
  workerConcurrency: number;
  /** BullMQ key prefix and Redis channel namespace: isolates deployments (and test runs) sharing one Redis. */
  queuePrefix: string;
  logLevel: LogLevel;
  /** Minimum interval between `batch` progress events of one run. */
  progressIntervalMs: number;
  /** How long a worker may take to stop on SIGTERM (its runs go back to the queue) before it exits anyway. */
  shutdownGraceMs: number;
  /** BullMQ job lock duration: a worker that stops renewing it for this long has lost its job. */
  lockDurationMs: number;
  /** How often workers look for jobs whose lock expired (stalled) and put them back in the queue. */
  stalledIntervalMs: number;
  /** `required`: every /v1 route but /v1/presets needs an API key; `off`: no keys, no scoping (local development). */
  auth: AuthMode;
  /** Requests per minute per API key (or per IP without one), per API process; 0 turns the limit off. */
  rateLimitPerMinute: number;
  /** Unfinished (queued or running) runs an owner may have at once with auth on; 0: no limit. */
  maxActiveRunsPerKey: number;
  /** Port of the worker's Prometheus endpoint (GET /metrics, also /healthz and /readyz); null: none. */
  metricsPort: number | null;
  /** Wall-clock limit of one run from its start (resumes included); 0: none. */
  runTimeLimitMs: number;
  /** How long a training thread may ignore a cancel or shutdown before it is terminated (and replaced). */
  trainingStopGraceMs: number;
  /** V8 heap ceiling of each training thread, in MB (worker_threads resourceLimits); 0: Node's default. */
  trainingHeapLimitMb: number;
  /** How long GET /v1/runs/{id} may answer from memory when no change was announced; 0: never. */
  runViewCacheMs: number;
  /** How often one instance re-enqueues unfinished runs whose BullMQ job is missing (Redis lost its data); 0: never. */
  reconcileIntervalMs: number;
  /**
   * Threads a native backend (onednn) uses per run; 0: the cores shared out among the worker's
   * WORKER_CONCURRENCY training threads. Packing = WORKER_CONCURRENCY runs × this many threads.
   */
  trainingThreadsPerRun: number;
}

export const AUTH_MODES = ['required', 'off'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === '' ? fallback : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return n;
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = str(env, name, fallback);
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const raw = str(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a valid URL: "${raw}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return raw;
}

export function loadConfig(env: Env = process.env): Config {
  const prefix = str(env, 'QUEUE_PREFIX', 'regula');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(prefix)) {
    throw new ConfigError(`QUEUE_PREFIX must be 1-64 letters, digits, - or _, got "${prefix}"`);
  }
  return {
    databaseUrl: url(env, 'DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/regula', ['postgresql:', 'postgres:']),
    redisUrl: url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    host: str(env, 'HOST', '0.0.0.0'),
    port: int(env, 'PORT', 3000, 0, 65535),
    dataDir: path.resolve(str(env, 'DATA_DIR', 'data')),
    tfjsBackend: oneOf(env, 'TFJS_BACKEND', 'auto', BACKEND_PREFERENCES),
    workerConcurrency: int(env, 'WORKER_CONCURRENCY', 1, 1, 64),
    queuePrefix: prefix,
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', LOG_LEVELS),
    progressIntervalMs: int(env, 'PROGRESS_INTERVAL_MS', 1000, 0, 3_600_000),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 30_000, 0, 3_600_000),
    lockDurationMs: int(env, 'LOCK_DURATION_MS', 30_000, 1000, 3_600_000),
    stalledIntervalMs: int(env, 'STALLED_INTERVAL_MS', 30_000, 1000, 3_600_000),
    auth: oneOf(env, 'AUTH', 'off', AUTH_MODES),
    rateLimitPerMinute: int(env, 'RATE_LIMIT_PER_MINUTE', 600, 0, 1_000_000),
    maxActiveRunsPerKey: int(env, 'MAX_ACTIVE_RUNS_PER_KEY', 20, 0, 1_000_000),
    metricsPort: str(env, 'METRICS_PORT', '') === '' ? null : int(env, 'METRICS_PORT', 0, 1, 65535),
    runTimeLimitMs: int(env, 'RUN_TIME_LIMIT_S', 86_400, 0, 30 * 86_400) * 1000,
    trainingStopGraceMs: int(env, 'TRAINING_STOP_GRACE_MS', 10_000, 100, 3_600_000),
    trainingHeapLimitMb: int(env, 'TRAINING_HEAP_LIMIT_MB', 4096, 0, 1_048_576),
    runViewCacheMs: int(env, 'RUN_VIEW_CACHE_MS', 1000, 0, 3_600_000),
    reconcileIntervalMs: int(env, 'RECONCILE_INTERVAL_MS', 60_000, 0, 86_400_000),
    trainingThreadsPerRun: int(env, 'TRAINING_THREADS_PER_RUN', 0, 0, 1024),
  };
}
