/** The worker's operating knobs (issue 12 items 1, 2, 7; issue 10 packing): parsed, bounded, and used. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { TrainerPool, TrainingFailedError } from '../../src/worker/pool.js';
import { failureMessage } from '../../src/worker/host.js';
import { failureReason } from '../../src/metrics/runs.js';

describe('worker configuration', () => {
  it('has defaults: a day of wall clock per run, 10 s to honour a stop, a 4 GiB heap per thread, a reconciler pass a minute, threads shared out', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      runTimeLimitMs: 86_400_000,
      trainingStopGraceMs: 10_000,
      trainingHeapLimitMb: 4096,
      reconcileIntervalMs: 60_000,
      trainingThreadsPerRun: 0,
    });
  });

  it('reads and bounds them, naming the variable', () => {
    const c = loadConfig({
      RUN_TIME_LIMIT_S: '90',
      TRAINING_STOP_GRACE_MS: '500',
      TRAINING_HEAP_LIMIT_MB: '0',
      RECONCILE_INTERVAL_MS: '0',
      TRAINING_THREADS_PER_RUN: '1',
    });
    expect(c).toMatchObject({ runTimeLimitMs: 90_000, trainingStopGraceMs: 500, trainingHeapLimitMb: 0, reconcileIntervalMs: 0, trainingThreadsPerRun: 1 });
    expect(() => loadConfig({ RUN_TIME_LIMIT_S: '-1' })).toThrow(ConfigError);
    expect(() => loadConfig({ TRAINING_STOP_GRACE_MS: '10' })).toThrow(/TRAINING_STOP_GRACE_MS/);
    expect(() => loadConfig({ TRAINING_THREADS_PER_RUN: 'two' })).toThrow(/TRAINING_THREADS_PER_RUN/);
  });

  it('packs: WORKER_CONCURRENCY runs × TRAINING_THREADS_PER_RUN threads, or the cores shared out', async () => {
    const packed = await TrainerPool.start(2, 'cpu', { threadsPerRun: 1 });
    try {
      expect(packed.threadsPerRun).toBe(1);
      expect(packed.health()).toMatchObject({ ok: true, threads: 2, size: 2 });
    } finally {
      await packed.close();
    }
  });
});

describe('failures of the engine, as stored and as counted', () => {
  it('names a trap, exhausted memory and the wall-clock limit, and counts each under its own reason', () => {
    const trap = failureMessage(new TrainingFailedError('memory access out of bounds', true, 'trap'), 'onednn', undefined);
    expect(trap).toMatch(/^the onednn engine trapped while training this spec \(memory access out of bounds\)/);
    expect(failureReason(trap)).toBe('engine_fault');
    const oom = failureMessage(new TrainingFailedError('Array buffer allocation failed', true, 'out-of-memory'), 'wasm', undefined);
    expect(failureReason(oom)).toBe('out_of_memory');
    const late = failureMessage(new TrainingFailedError('time limit', true, 'time-limit'), 'wasm', 90_000);
    expect(late).toBe('the run did not finish within its wall-clock limit of 90 s (RUN_TIME_LIMIT_S)');
    expect(failureReason(late)).toBe('time_limit');
  });
});
