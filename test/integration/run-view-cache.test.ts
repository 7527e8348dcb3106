/**
 * GET /v1/runs/{id} answers from memory (issue 10: its p99 was 12.7× a bare Fastify route), and a
 * change is visible as soon as it is announced: a worker's event on the run's channel, or a cancel.
 * The cache's time limit is set to an hour here, so only those announcements can make a change show.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { call, tinyRun } from '../support/client.js';
import { RunEventBus } from '../../src/events/bus.js';
import { RunsService } from '../../src/runs/service.js';

interface RunBody {
  id: string;
  status: string;
  backend: string | null;
  cancelRequested: boolean;
}

describe('GET /v1/runs/{id} from memory, invalidated by events', () => {
  let h: Harness;
  let worker: RunEventBus; // another process's bus: a worker publishing its events
  beforeAll(async () => {
    h = await startHarness({ env: { RUN_VIEW_CACHE_MS: '3600000' } });
    worker = new RunEventBus(h.config.redisUrl, h.config.queuePrefix);
  });
  afterAll(async () => {
    await worker?.close();
    await h?.close();
  });

  it('reads the store once for repeated GETs, and again after an event or a cancel', async () => {
    const submitted = await call<RunBody>(h, 'POST', '/v1/runs', { body: tinyRun() });
    expect(submitted.status).toBe(202);
    const id = submitted.body.id;
    const reads = vi.spyOn(h.ctx.repo, 'get');
    try {
      // The first reads start the subscriptions (in the background); from then on repeated GETs stay in memory.
      const readsOf = () => reads.mock.calls.filter(([x]) => x === id).length;
      await vi.waitFor(
        async () => {
          const before = readsOf();
          for (let i = 0; i < 5; i++) expect((await call<RunBody>(h, 'GET', `/v1/runs/${id}`)).body.status).toBe('queued');
          expect(readsOf() - before).toBeLessThanOrEqual(1);
        },
        { timeout: 20_000, interval: 20 },
      );

      // What a worker does when it starts a run: the row, then the event, from another process.
      expect(await h.ctx.repo.markRunning(id, 'wasm', null)).toBe(true);
      const started = await h.ctx.repo.appendEvent(id, 'started', { backend: 'wasm' });
      await worker.publish(id, started);
      await vi.waitFor(async () => expect((await call<RunBody>(h, 'GET', `/v1/runs/${id}`)).body).toMatchObject({ status: 'running', backend: 'wasm' }), {
        timeout: 20_000,
        interval: 20,
      });

      const cancel = await call<RunBody>(h, 'POST', `/v1/runs/${id}/cancel`);
      expect(cancel.status).toBe(202);
      expect((await call<RunBody>(h, 'GET', `/v1/runs/${id}`)).body.cancelRequested).toBe(true);
    } finally {
      reads.mockRestore();
    }
  });

  it('reads the store, without waiting for Redis, while Redis cannot be reached', async () => {
    const submitted = await call<RunBody>(h, 'POST', '/v1/runs', { body: tinyRun() });
    const dead = new RunEventBus('redis://127.0.0.1:1', h.config.queuePrefix);
    try {
      const runs = new RunsService({
        repo: h.ctx.repo,
        queue: h.ctx.queue,
        bus: dead,
        predictor: undefined as never,
        idempotencyKeys: undefined as never,
        dataDir: h.config.dataDir,
        viewCacheMs: 3_600_000,
      });
      for (let i = 0; i < 3; i++) expect((await runs.view(submitted.body.id)).status).toBe('queued');
    } finally {
      await dead.close();
    }
  }, 20_000);
});
