/**
 * Bad input gets a 4xx problem+json naming the field, and nothing is written: no run row, no event,
 * no job. A good run submitted first is left untouched.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { fixtureDataset as fixture, postJson, tinyRun, type Problem } from '../support/client.js';

const good = tinyRun();
const { layers } = good.model;

describe('bad input', () => {
  let h: Harness;
  let goodId: string;

  beforeAll(async () => {
    h = await startHarness(); // no worker: submitted runs stay queued
    const res = await postJson(h, '/v1/runs', good);
    const body = (await res.json()) as { id: string };
    expect(res.status, JSON.stringify(body)).toBe(202);
    goodId = body.id;
  });
  afterAll(async () => {
    await h?.close();
  });

  async function submit(body: unknown, raw = false): Promise<{ status: number; contentType: string | null; problem: Problem }> {
    const res = await request(h.app.server)
      .post('/v1/runs')
      .set('content-type', 'application/json')
      .send(raw ? (body as string) : JSON.stringify(body));
    return { status: res.status, contentType: res.headers['content-type'] ?? null, problem: JSON.parse(res.text) as Problem };
  }

  const withLayers = (ls: unknown[]) => ({ ...good, model: { layers: ls } });
  const cases: { name: string; body: unknown; raw?: boolean; status: number; pointer?: string; detail?: RegExp }[] = [
    { name: 'malformed JSON', body: '{"model": {"layers": [', raw: true, status: 400, detail: /JSON/i },
    { name: 'epochs as a string', body: { ...good, training: { epochs: '5' } }, status: 400, pointer: '/training/epochs' },
    { name: 'huge epochs', body: { ...good, training: { epochs: 100000 } }, status: 400, pointer: '/training/epochs' },
    { name: 'unknown layer', body: withLayers([{ type: 'LSTM', units: 3 }, ...layers]), status: 400, pointer: '/model/layers/0/type' },
    { name: 'unknown field', body: withLayers([{ ...layers[0], kernel: 3 }, ...layers.slice(1)]), status: 400, pointer: '/model/layers/0/kernel' },
    { name: 'missing filters', body: withLayers([{ type: 'Conv2D', kernelSize: 3 }, ...layers.slice(1)]), status: 400, pointer: '/model/layers/0/filters' },
    {
      name: 'bad regularizer type',
      body: withLayers([{ ...layers[0], kernelRegularizer: { type: 'l3' } }, ...layers.slice(1)]),
      status: 400,
      pointer: '/model/layers/0/kernelRegularizer/type',
    },
    {
      name: 'negative l2',
      body: withLayers([{ ...layers[0], kernelRegularizer: { type: 'l2', l2: -1 } }, ...layers.slice(1)]),
      status: 400,
      pointer: '/model/layers/0/kernelRegularizer/l2',
    },
    {
      name: 'l1 factor on an l2 regularizer',
      body: withLayers([{ ...layers[0], biasRegularizer: { type: 'l2', l1: 0.1 } }, ...layers.slice(1)]),
      status: 422,
      pointer: '/model/layers/0/biasRegularizer/l1',
    },
    {
      name: 'negative spatial size',
      body: withLayers([{ type: 'Conv2D', filters: 4, kernelSize: 29 }, ...layers.slice(1)]),
      status: 422,
      pointer: '/model/layers/0/kernelSize',
    },
    { name: 'Dense without Flatten', body: withLayers([layers[0], layers[2]]), status: 422, pointer: '/model/layers/1/type' },
    {
      name: 'softmax units != classes',
      body: withLayers([layers[0], layers[1], { type: 'Dense', units: 10, activation: 'softmax' }]),
      status: 422,
      pointer: '/model/layers/2/units',
    },
    { name: 'no layers', body: withLayers([]), status: 400, pointer: '/model/layers' },
    { name: 'unknown dataset', body: { ...good, dataset: { name: 'cifar10' } }, status: 400, pointer: '/dataset/name' },
    {
      name: 'path escaping DATA_DIR',
      body: { ...good, dataset: { ...fixture, train: { ...fixture.train, images: '../../package.json' } } },
      status: 400,
      pointer: '/dataset/train/images',
    },
    {
      name: 'missing data file',
      body: { ...good, dataset: { ...fixture, train: { ...fixture.train, labels: 'emnist-mini/nope.gz' } } },
      status: 422,
      pointer: '/dataset/train/labels',
    },
    { name: 'named dataset not downloaded', body: { ...good, dataset: { name: 'mnist' } }, status: 422, detail: /mnist.*train-(images|labels)-idx/ },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.status}`, async () => {
      const { status, contentType, problem } = await submit(c.body, c.raw);
      expect(status).toBe(c.status);
      expect(contentType).toMatch(/^application\/problem\+json/);
      expect(problem.status).toBe(c.status);
      expect(problem.title).toBeTruthy();
      expect(problem.detail).toBeTruthy();
      expect(JSON.stringify(problem)).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack traces
      if (c.pointer) expect(problem.errors?.map((e) => e.pointer)).toContain(c.pointer);
      if (c.detail) expect(problem.detail).toMatch(c.detail);
    });
  }

  it('rejects an unknown run id and a malformed one', async () => {
    const missing = await fetch(`${h.baseUrl}/v1/runs/00000000-0000-4000-8000-000000000000`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/problem\+json/);
    const malformed = await fetch(`${h.baseUrl}/v1/runs/not-a-uuid`);
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as Problem).errors?.[0]?.pointer).toBe('/params/id');
    const list = await fetch(`${h.baseUrl}/v1/runs?status=bogus`);
    expect(list.status).toBe(400);
  });

  it('wrote nothing for any of them, and left the good run as it was', async () => {
    expect(await h.ctx.prisma.run.count()).toBe(1);
    expect(await h.ctx.prisma.runEvent.count()).toBe(1);
    const counts = await h.ctx.queue.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
    const run = (await (await fetch(`${h.baseUrl}/v1/runs/${goodId}`)).json()) as { status: string; spec: { training: { epochs: number } } };
    expect(run.status).toBe('queued');
    expect(run.spec.training.epochs).toBe(1);
  });

  it('lists runs with pagination and a status filter', async () => {
    const page = (await (await fetch(`${h.baseUrl}/v1/runs?limit=1&status=queued`)).json()) as { items: { id: string }[]; total: number; limit: number };
    expect(page.total).toBe(1);
    expect(page.items.map((r) => r.id)).toEqual([goodId]);
    const none = (await (await fetch(`${h.baseUrl}/v1/runs?status=succeeded`)).json()) as { total: number };
    expect(none.total).toBe(0);
  });

  it('serves health, readiness, the OpenAPI document and Swagger UI', async () => {
    expect((await fetch(`${h.baseUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${h.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
    const doc = (await (await fetch(`${h.baseUrl}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toContain('/v1/runs/{id}/events');
    const ui = await fetch(`${h.baseUrl}/docs/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
  });
});
