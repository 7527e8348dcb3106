/**
 * Queued runs must not be lost when Redis loses its data (issue 12, item 7). The loss is simulated
 * on this test's own queue prefix (obliterate: every job, lock and list of the queue goes) — the
 * shared Redis is never flushed; faults/fault-redis-flush.ts flushes a private Redis for real.
 */
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { heartbeatKey, Reconciler } from '../../src/runs/reconciler.js';
import { TrainerPool } from '../../src/worker/pool.js';
import { suiteHarness } from '../support/suite.js';
import { call, tinyRun } from '../support/client.js';
import { workerHost } from '../support/worker.js';

const HEARTBEAT_MS = 300;

describe('the reconciler', () => {
  const h = suiteHarness(); // no worker until the last test

  const reconciler = () =>
    new Reconciler({
      repo: h.ctx.repo,
      queue: h.ctx.queue,
      prefix: h.config.queuePrefix,
      log: pino({ level: 'silent' }),
      intervalMs: 60_000,
      heartbeatMs: HEARTBEAT_MS,
    });
  const redis = async () =>
    (await h.ctx.queue.queue.getBackend().client) as unknown as {
      set(k: string, v: string, px: 'PX', ms: number): Promise<unknown>;
      del(k: string): Promise<number>;
    };
  /** Each test starts with no unfinished run and an empty queue. */
  const reset = async () => {
    await h.ctx.prisma.run.updateMany({ where: { status: { in: ['queued', 'running'] } }, data: { status: 'cancelled' } });
    await h.ctx.queue.queue.obliterate({ force: true });
  };
  const submit = async (name: string, priority?: number) => {
    const r = await call<{ id: string }>(h, 'POST', '/v1/runs', { body: tinyRun({ name, ...(priority ? { priority } : {}) }) });
    expect(r.status, r.text).toBe(202);
    return r.body.id;
  };

  it('re-enqueues queued runs whose job is gone, with their priority, once', async () => {
    const a = await submit('a', 20);
    const b = await submit('b');
    await h.ctx.queue.queue.obliterate({ force: true });
    expect(await h.ctx.queue.queue.getJob(a)).toBeUndefined();

    const report = await reconciler().reconcileOnce();
    expect(report?.requeued.sort()).toEqual([a, b].sort());
    expect((await h.ctx.queue.queue.getJob(a))?.opts.priority).toBe(20);
    expect((await h.ctx.queue.queue.getJob(b))?.opts.priority).toBe(50);
    // Nothing is missing any more: a second pass leaves the queue alone.
    expect((await reconciler().reconcileOnce())?.requeued).toEqual([]);
    expect(await h.ctx.queue.queue.getJobCountByTypes('prioritized')).toBe(2);
  });

  it('re-enqueues a running run only when no worker heartbeat shows it is still training', async () => {
    await reset();
    const live = await submit('live');
    const orphan = await submit('orphan');
    await h.ctx.prisma.run.updateMany({ where: { id: { in: [live, orphan] } }, data: { status: 'running', startedAt: new Date() } });
    await h.ctx.queue.queue.obliterate({ force: true });
    const r = await redis();
    // A live worker keeps writing its heartbeat (as WorkerHost does every HEARTBEAT_MS).
    const beat = setInterval(() => void r.set(heartbeatKey(h.config.queuePrefix, live), '1', 'PX', 3 * HEARTBEAT_MS), HEARTBEAT_MS / 2);
    try {
      const report = await reconciler().reconcileOnce();
      expect(report?.requeued).toEqual([orphan]);
    } finally {
      clearInterval(beat);
      await r.del(heartbeatKey(h.config.queuePrefix, live));
    }
  });

  it('runs in one instance at a time (a Redis lock)', async () => {
    await reset();
    await submit('locked');
    await h.ctx.queue.queue.obliterate({ force: true });
    const results = await Promise.all([reconciler().reconcileOnce(), reconciler().reconcileOnce(), reconciler().reconcileOnce()]);
    expect(results.filter((x) => x !== null)).toHaveLength(1);
    expect(results.find((x) => x !== null)?.requeued).toHaveLength(1);
  });

  it('a worker then trains every re-enqueued run to the end, each epoch row once', async () => {
    await reset();
    const ids = [await submit('one'), await submit('two')];
    await h.ctx.queue.queue.obliterate({ force: true });
    const pool = await TrainerPool.start(1, h.config.tfjsBackend);
    const host = workerHost(h, pool);
    await host.start();
    const rec = reconciler();
    rec.start();
    try {
      for (const id of ids) {
        await vi.waitFor(async () => expect((await h.ctx.repo.get(id))?.status).toBe('succeeded'), { timeout: 90_000, interval: 200 });
        expect((await h.ctx.repo.epochs(id)).map((e) => e.epoch)).toEqual([1]);
      }
    } finally {
      await rec.stop();
      await host.close();
      await pool.close();
    }
  });
});
