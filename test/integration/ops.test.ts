/**
 * Operating Regula: queue view and priorities (BullMQ takes waiting runs by priority, then in
 * submission order), Prometheus metrics, rate limiting, and no internals in a 500.
 */
import { Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RUNS_QUEUE } from '../../src/queue/names.js';
import { startHarness, type Harness } from '../support/harness.js';
import { suiteHarness } from '../support/suite.js';
import { call, tinyRun, type Problem } from '../support/client.js';

interface QueueReply {
  counts: Record<string, number>;
  run: { id: string; state: string | null; position: number | null } | null;
}

describe('queue, priorities, metrics, errors', () => {
  let h: Harness;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    h = await startHarness(); // no worker: submitted runs wait in the queue
  });
  afterAll(async () => {
    await h?.close();
  });

  it('orders waiting runs by priority, then submission order, and tells each run its position', async () => {
    for (const [name, priority] of [
      ['a', undefined],
      ['b', 10],
      ['c', 90],
      ['d', 10],
      ['e', 1],
    ] as const) {
      const r = await call<{ id: string; priority: number }>(h, 'POST', '/v1/runs', { body: tinyRun({ name, ...(priority ? { priority } : {}) }) });
      expect(r.status, r.text).toBe(202);
      expect(r.body.priority).toBe(priority ?? 50);
      ids[name] = r.body.id;
    }
    const expected = ['e', 'b', 'd', 'a', 'c'];
    for (const [i, name] of expected.entries()) {
      const q = (await call<QueueReply>(h, 'GET', `/v1/queue?runId=${ids[name]}`)).body;
      expect(q.run, name).toEqual({ id: ids[name], state: 'prioritized', position: i + 1 });
    }
    const q = await call<QueueReply>(h, 'GET', '/v1/queue');
    expect(q.status).toBe(200);
    expect(q.body.counts).toMatchObject({ prioritized: 5, waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 });
    expect(q.body.run).toBeNull();

    // Cancelling a waiting run moves the ones behind it up.
    expect((await call(h, 'POST', `/v1/runs/${ids.b}/cancel`)).status).toBe(202);
    expect((await call<QueueReply>(h, 'GET', `/v1/queue?runId=${ids.d}`)).body.run?.position).toBe(2);
    expect((await call<QueueReply>(h, 'GET', `/v1/queue?runId=${ids.b}`)).body.run).toEqual({ id: ids.b, state: null, position: null });
  });

  it('rejects a priority outside 1..100 and an unknown run', async () => {
    const r = await call<Problem>(h, 'POST', '/v1/runs', { body: tinyRun({ priority: 0 }) });
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.pointer).toBe('/priority');
    expect((await call(h, 'POST', '/v1/runs', { body: tinyRun({ priority: 101 }) })).status).toBe(400);
    expect((await call(h, 'GET', '/v1/queue?runId=00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it("is BullMQ's order: a job without priority goes first, then prioritized jobs as a worker takes them", async () => {
    // A job enqueued without a priority (as before priorities existed) jumps every prioritized job.
    await h.ctx.queue.removeWaiting(ids.c!);
    await h.ctx.queue.enqueue(ids.c!);
    expect((await call<QueueReply>(h, 'GET', `/v1/queue?runId=${ids.c}`)).body.run).toEqual({ id: ids.c, state: 'waiting', position: 1 });

    const taken: string[] = [];
    const worker = new Worker(
      RUNS_QUEUE,
      async (job) => {
        taken.push(String(job.id));
      },
      { connection: h.ctx.connection, prefix: h.config.queuePrefix, concurrency: 1 },
    );
    try {
      await vi.waitFor(() => expect(taken).toHaveLength(4), { timeout: 20_000, interval: 100 });
    } finally {
      await worker.close();
    }
    expect(taken).toEqual([ids.c, ids.e, ids.d, ids.a]);
  });

  it('exposes Prometheus metrics: request durations by route, queue depth by state, process metrics', async () => {
    await call(h, 'GET', '/v1/runs');
    await call(h, 'GET', `/v1/runs/${ids.a}`);
    await call(h, 'POST', '/v1/runs', { body: tinyRun({ priority: 5 }) });
    const r = await call(h, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const lines = r.text.split('\n');
    const count = (method: string, route: string, status: number) =>
      lines.find(
        (l) =>
          l.startsWith('regula_http_request_duration_seconds_count{') &&
          l.includes(`method="${method}"`) &&
          l.includes(`route="${route}"`) &&
          l.includes(`status_code="${status}"`),
      );
    expect(r.text).toContain('# TYPE regula_http_request_duration_seconds histogram');
    expect(count('GET', '/v1/runs', 200)).toBeDefined();
    expect(count('GET', '/v1/runs/:id', 200)).toBeDefined();
    expect(count('POST', '/v1/runs', 202)).toMatch(/ [1-9]\d*$/);
    expect(r.text).toContain('# TYPE regula_queue_jobs gauge');
    expect(lines).toContain('regula_queue_jobs{state="prioritized"} 1');
    expect(lines).toContain('regula_queue_jobs{state="completed"} 4');
    expect(r.text).toMatch(/^process_resident_memory_bytes \d+/m);
  });

  it('answers an unexpected error with a generic 500: no message, no stack', async () => {
    const spy = vi
      .spyOn(h.ctx.repo, 'list')
      .mockRejectedValueOnce(new Error('connect ECONNREFUSED db-primary.internal:5432\n    at Pool.connect (/app/src/store/pool.ts:42:7)'));
    try {
      const r = await call<Problem>(h, 'GET', '/v1/runs');
      expect(r.status).toBe(500);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(r.body).toMatchObject({ status: 500, title: 'Internal Server Error', detail: 'an unexpected error occurred; it has been logged' });
      expect(r.text).not.toMatch(/ECONNREFUSED|db-primary|pool\.ts|\bat /);
    } finally {
      spy.mockRestore();
    }
    expect((await call(h, 'GET', '/v1/runs')).status).toBe(200);
  });
});

describe('rate limiting (RATE_LIMIT_PER_MINUTE=3, AUTH=required)', () => {
  const h = suiteHarness({ env: { AUTH: 'required', RATE_LIMIT_PER_MINUTE: '3' } });

  it('answers 429 problem+json past the limit, per API key, and never limits health or metrics', async () => {
    const alice = await h.createKey('alice');
    const bob = await h.createKey('bob');
    for (let i = 0; i < 3; i++) {
      const ok = await call(h, 'GET', '/v1/runs', { key: alice });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('x-ratelimit-limit')).toBe('3');
    }
    const limited = await call<Problem>(h, 'GET', '/v1/runs', { key: alice });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(limited.body).toMatchObject({ status: 429, title: 'Too Many Requests' });
    expect(limited.body.detail).toMatch(/more than 3 requests per minute/);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);

    // Bob's key has its own budget; probes and scrapes are not limited.
    expect((await call(h, 'GET', '/v1/runs', { key: bob })).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      expect((await call(h, 'GET', '/healthz')).status).toBe(200);
      expect((await call(h, 'GET', '/metrics')).status).toBe(200);
    }
  });

  it('limits requests without a valid key by IP', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await call(h, 'GET', '/v1/runs')).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
  });
});
