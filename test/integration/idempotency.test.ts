/**
 * Idempotency-Key on POST /v1/runs and /v1/studies: a retry with the same key and body gives back
 * the same run (202, same id, Idempotent-Replayed: true), another body is a 409, concurrent
 * identical requests store exactly one run, and keys belong to their owner.
 */
import { describe, expect, it } from 'vitest';
import type { Harness } from '../support/harness.js';
import { suiteHarness } from '../support/suite.js';
import { call, fixtureDataset, tinyRun, type Problem } from '../support/client.js';

async function jobCount(h: Harness): Promise<number> {
  const counts = await h.ctx.queue.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

describe('Idempotency-Key (auth off)', () => {
  const h = suiteHarness();

  it('replays the same run for the same key and body, whatever the key order of the JSON', async () => {
    const headers = { 'idempotency-key': 'run-1' };
    const first = await call<{ id: string; status: string }>(h, 'POST', '/v1/runs', { body: tinyRun({ name: 'once' }), headers });
    expect(first.status, first.text).toBe(202);
    expect(first.headers.get('idempotent-replayed')).toBeNull();

    const { dataset, ...rest } = tinyRun({ name: 'once' });
    const again = await call<{ id: string }>(h, 'POST', '/v1/runs', { body: { dataset, ...rest }, headers });
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('location')).toBe(`/v1/runs/${first.body.id}`);
    expect(await h.ctx.prisma.run.count()).toBe(1);
    expect(await jobCount(h)).toBe(1);
    expect(await h.ctx.prisma.idempotencyKey.findUnique({ where: { owner_key: { owner: '', key: 'run-1' } } })).toMatchObject({
      runId: first.body.id,
      studyId: null,
    });
  });

  it('answers 409 for the same key with another body or on another endpoint, and stores nothing', async () => {
    const headers = { 'idempotency-key': 'run-1' };
    const other = await call<Problem>(h, 'POST', '/v1/runs', { body: tinyRun({ name: 'something else' }), headers });
    expect(other.status).toBe(409);
    expect(other.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(other.body.detail).toMatch(/already used with a different request/);
    const study = await call(h, 'POST', '/v1/studies', { body: { variants: [{ label: 'x', model: tinyRun().model }], dataset: fixtureDataset }, headers });
    expect(study.status).toBe(409);
    expect(await h.ctx.prisma.run.count()).toBe(1);
  });

  it('does not burn a key on a request that was refused', async () => {
    const headers = { 'idempotency-key': 'fix-and-retry' };
    const bad = await call(h, 'POST', '/v1/runs', {
      body: tinyRun({ model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units: 3, activation: 'softmax' }] } }),
      headers,
    });
    expect(bad.status).toBe(422);
    const good = await call(h, 'POST', '/v1/runs', { body: tinyRun(), headers });
    expect(good.status).toBe(202);
    expect(good.headers.get('idempotent-replayed')).toBeNull();
  });

  it('rejects a malformed key', async () => {
    const r = await call<Problem>(h, 'POST', '/v1/runs', { body: tinyRun(), headers: { 'idempotency-key': 'x'.repeat(256) } });
    expect(r.status).toBe(400);
    expect(r.body.errors?.[0]?.pointer).toBe('/headers/idempotency-key');
  });

  it('stores exactly one run for 10 concurrent identical POSTs', async () => {
    const before = await h.ctx.prisma.run.count();
    const jobsBefore = await jobCount(h);
    const body = tinyRun({ name: 'concurrent' });
    const replies = await Promise.all(
      Array.from({ length: 10 }, () => call<{ id: string }>(h, 'POST', '/v1/runs', { body, headers: { 'idempotency-key': 'burst' } })),
    );
    expect(replies.map((r) => r.status)).toEqual(new Array(10).fill(202));
    expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
    expect(replies.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(9);
    expect(await h.ctx.prisma.run.count()).toBe(before + 1);
    expect(await jobCount(h)).toBe(jobsBefore + 1);
  });

  it('replays studies too, also under concurrency', async () => {
    const body = {
      name: 'idem study',
      variants: [{ label: 'a' }, { label: 'b' }],
      base: { model: tinyRun().model },
      training: { epochs: 1 },
      dataset: fixtureDataset,
    };
    const before = await h.ctx.prisma.run.count();
    const replies = await Promise.all(
      Array.from({ length: 5 }, () =>
        call<{ id: string; runs: { id: string }[] }>(h, 'POST', '/v1/studies', { body, headers: { 'idempotency-key': 'study-1' } }),
      ),
    );
    expect(replies.map((r) => r.status)).toEqual(new Array(5).fill(202));
    expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
    expect(replies.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(4);
    expect(replies[0]!.body.runs).toHaveLength(2);
    expect(await h.ctx.prisma.study.count()).toBe(1);
    expect(await h.ctx.prisma.run.count()).toBe(before + 2);
    const later = await call<{ id: string }>(h, 'POST', '/v1/studies', { body, headers: { 'idempotency-key': 'study-1' } });
    expect(later.body.id).toBe(replies[0]!.body.id);
    expect(later.headers.get('idempotent-replayed')).toBe('true');
  });
});

describe('Idempotency-Key (AUTH=required)', () => {
  const h = suiteHarness({ env: { AUTH: 'required' } });

  it('keeps keys per owner: two owners using the same key get their own runs', async () => {
    const alice = await h.createKey('alice');
    const bob = await h.createKey('bob');
    const headers = { 'idempotency-key': 'shared-name' };
    const a = await call<{ id: string }>(h, 'POST', '/v1/runs', { key: alice, body: tinyRun(), headers });
    const b = await call<{ id: string }>(h, 'POST', '/v1/runs', { key: bob, body: tinyRun(), headers });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.id).not.toBe(b.body.id);
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    const a2 = await call<{ id: string }>(h, 'POST', '/v1/runs', { key: alice, body: tinyRun(), headers });
    expect(a2.body.id).toBe(a.body.id);
    expect(a2.headers.get('idempotent-replayed')).toBe('true');
    expect(await h.ctx.prisma.idempotencyKey.count()).toBe(2);
  });
});
