/**
 * Studies end to end: the tutorial's eight configurations from one request, through the queue and
 * a worker, multiplexed over SSE, compared in a ranked table (JSON, CSV, Markdown), with weight
 * statistics that show what L1 does that L2 does not.
 */
import { describe, expect, it } from 'vitest';
import { readSse } from '../support/harness.js';
import { suiteHarness } from '../support/suite.js';
import { fixtureDataset, postJson } from '../support/client.js';
import { PRESET_NAMES } from '../../src/run-spec/presets.js';

const dataset = { ...fixtureDataset, limit: 500 };

interface Row {
  rank: number;
  variant: string;
  status: string;
  testAccuracy: number | null;
  sparsity: number | null;
  finalPenalty: number | null;
  deltaVsBaselinePp: number | null;
  bestValEpoch: number | null;
}

describe('studies', () => {
  const h = suiteHarness({ worker: true, env: { PROGRESS_INTERVAL_MS: '100000' } }, 120_000);

  it('rejects a study with any invalid variant and stores nothing', async () => {
    const res = await postJson(h, '/v1/studies', {
      variants: [
        { label: 'ok', preset: 'baseline' },
        { label: 'bad', model: { layers: [{ type: 'Flatten' }, { type: 'Dense', units: 3, activation: 'softmax' }] } },
      ],
      dataset,
    });
    expect(res.status).toBe(422);
    const problem = (await res.json()) as { errors: { pointer: string }[] };
    expect(problem.errors[0]!.pointer).toBe('/variants/1/model/layers/1/units');
    const both = await postJson(h, '/v1/studies', { preset: 'tutorial', grid: { type: ['l1'], target: ['kernel'], lambda: [0.1] } });
    expect(both.status).toBe(422);
    expect(await h.ctx.prisma.study.count()).toBe(0);
    expect(await h.ctx.prisma.run.count()).toBe(0);
  });

  it("runs the tutorial's eight configurations and compares them", async () => {
    const res = await postJson(h, '/v1/studies', { name: 'tutorial', preset: 'tutorial', training: { epochs: 3, batchSize: 50, seed: 7 }, dataset });
    expect(res.status).toBe(202);
    const study = (await res.json()) as { id: string; runs: { id: string; variant: string; status: string }[] };
    expect(res.headers.get('location')).toBe(`/v1/studies/${study.id}`);
    expect(study.runs.map((r) => r.variant)).toEqual([...PRESET_NAMES]);

    // One stream for all eight runs; it ends once every run has finished.
    const events = await readSse(`${h.baseUrl}/v1/studies/${study.id}/events`, { timeoutMs: 600_000 });
    expect(events.at(-1)?.event).toBe('study-completed');
    const completed = events.filter((e) => e.event === 'completed').map((e) => e.data.variant);
    expect(new Set(completed).size).toBe(8);
    const epochEvents = events.filter((e) => e.event === 'epoch');
    expect(epochEvents).toHaveLength(24);
    // Resuming from a cursor half way replays exactly the rest.
    const k = Math.floor(events.length / 2);
    const resumed = await readSse(`${h.baseUrl}/v1/studies/${study.id}/events`, { headers: { 'last-event-id': events[k]!.rawId } });
    const key = (e: (typeof events)[number]) => `${String(e.data.runId)}|${e.event}|${String(e.data.at)}`;
    expect(resumed.map(key).sort()).toEqual(
      events
        .slice(k + 1)
        .map(key)
        .sort(),
    );

    const got = (await (await fetch(`${h.baseUrl}/v1/studies/${study.id}`)).json()) as { status: string; counts: Record<string, number> };
    expect(got.status).toBe('completed');
    expect(got.counts).toEqual({ succeeded: 8 });

    const cmp = (await (await fetch(`${h.baseUrl}/v1/studies/${study.id}/comparison`)).json()) as { baseline: string; rows: Row[] };
    expect(cmp.baseline).toBe('baseline');
    expect(cmp.rows.map((r) => r.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const accs = cmp.rows.map((r) => r.testAccuracy!);
    expect([...accs].sort((a, b) => b - a)).toEqual(accs);
    const by = Object.fromEntries(cmp.rows.map((r) => [r.variant, r]));
    expect(by.baseline!.deltaVsBaselinePp).toBe(0);
    expect(by['l1-kernel-bias']!.deltaVsBaselinePp).toBeCloseTo((by['l1-kernel-bias']!.testAccuracy! - by.baseline!.testAccuracy!) * 100, 6);
    expect(by.baseline!.finalPenalty).toBe(0);
    expect(by['l2-activity']!.finalPenalty).toBeGreaterThan(0);
    // What the tutorial argues about: L1 drives kernel weights to (near) zero, L2 only shrinks them.
    for (const l1 of ['l1-kernel-bias', 'elastic-net-kernel-bias']) {
      expect(by[l1]!.sparsity!).toBeGreaterThan(2 * by['l2-kernel-bias']!.sparsity!);
      expect(by[l1]!.sparsity!).toBeGreaterThan(2 * by.baseline!.sparsity!);
    }

    const csv = await fetch(`${h.baseUrl}/v1/studies/${study.id}/comparison`, { headers: { accept: 'text/csv' } });
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split('\n');
    expect(lines[0]).toMatch(/^rank,variant,seed,status,/);
    expect(lines).toHaveLength(9);
    const md = await fetch(`${h.baseUrl}/v1/studies/${study.id}/comparison`, { headers: { accept: 'text/markdown' } });
    expect(md.headers.get('content-type')).toMatch(/^text\/markdown/);
    const text = await md.text();
    expect(text).toMatch(/^\| rank \| variant \|/);
    expect(text).toContain('| 1 |');

    // Charts: one line per run on the study's chart, training vs validation on a run's.
    const chart = await fetch(`${h.baseUrl}/v1/studies/${study.id}/charts/val-accuracy.svg`);
    expect(chart.status).toBe(200);
    expect(chart.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
    const svg = await chart.text();
    expect(svg).toMatch(/^<svg/);
    for (const v of ['baseline', 'l1-kernel-bias', 'elastic-net-activity']) expect(svg).toContain(v);
    const loss = await fetch(`${h.baseUrl}/v1/runs/${study.runs[0]!.id}/charts/loss.svg`);
    expect(await loss.text()).toContain('Validation loss');
    const png = await fetch(`${h.baseUrl}/v1/runs/${study.runs[0]!.id}/charts/accuracy.png`);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(
      Buffer.from(await png.arrayBuffer())
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
  }, 600_000);

  it('repeats each variant over seeds and reports mean, sd, min and max per variant', async () => {
    const res = await postJson(h, '/v1/studies', {
      name: 'seeds',
      variants: [
        { label: 'baseline', preset: 'baseline' },
        { label: 'l2-kernel-bias', preset: 'l2-kernel-bias' },
      ],
      seeds: [3, 4, 5],
      training: { epochs: 1, batchSize: 50 },
      dataset: { ...dataset, limit: 200 },
    });
    expect(res.status).toBe(202);
    const study = (await res.json()) as { id: string; runs: { variant: string; spec: { training: { seed: number } } }[] };
    expect(study.runs.map((r) => [r.variant, r.spec.training.seed])).toEqual([
      ['baseline', 3],
      ['baseline', 4],
      ['baseline', 5],
      ['l2-kernel-bias', 3],
      ['l2-kernel-bias', 4],
      ['l2-kernel-bias', 5],
    ]);
    const events = await readSse(`${h.baseUrl}/v1/studies/${study.id}/events`, { timeoutMs: 600_000 });
    expect(events.at(-1)?.event).toBe('study-completed');

    type Spread = { n: number; mean: number; sd: number; min: number; max: number };
    const cmp = (await (await fetch(`${h.baseUrl}/v1/studies/${study.id}/comparison`)).json()) as {
      rows: { variant: string; seed: number; testAccuracy: number }[];
      variants: {
        rank: number;
        variant: string;
        runs: number;
        seeds: number[];
        collapsed: number;
        metrics: Record<string, Spread | null>;
        overlapsWith: string[];
      }[];
    };
    expect(cmp.rows).toHaveLength(6);
    expect(cmp.variants.map((v) => v.variant).sort()).toEqual(['baseline', 'l2-kernel-bias']);
    for (const v of cmp.variants) {
      const accs = cmp.rows.filter((r) => r.variant === v.variant).map((r) => r.testAccuracy);
      const mean = accs.reduce((a, b) => a + b, 0) / 3;
      const sd = Math.sqrt(accs.reduce((a, x) => a + (x - mean) ** 2, 0) / 2);
      expect(v.runs).toBe(3);
      expect(v.seeds).toEqual([3, 4, 5]);
      expect(v.metrics.testAccuracy).toMatchObject({ n: 3, min: Math.min(...accs), max: Math.max(...accs) });
      expect(v.metrics.testAccuracy!.mean).toBeCloseTo(mean, 12);
      expect(v.metrics.testAccuracy!.sd).toBeCloseTo(sd, 12);
      expect(v.metrics.testLoss!.n).toBe(3);
    }
    expect(cmp.variants[0]!.metrics.testAccuracy!.mean).toBeGreaterThanOrEqual(cmp.variants[1]!.metrics.testAccuracy!.mean);

    const csv = (await (await fetch(`${h.baseUrl}/v1/studies/${study.id}/comparison?format=csv`)).text()).trim().split('\n');
    expect(csv[0]).toMatch(/^rank,variant,runs,collapsed,testAccuracy_mean,testAccuracy_sd,testAccuracy_min,testAccuracy_max,/);
    expect(csv).toHaveLength(3);
    const runsCsv = (await (await fetch(`${h.baseUrl}/v1/studies/${study.id}/comparison?format=csv&table=runs`)).text()).trim().split('\n');
    expect(runsCsv).toHaveLength(7);
    const md = await (await fetch(`${h.baseUrl}/v1/studies/${study.id}/comparison?format=md`)).text();
    expect(md).toContain('test accuracy sd');
    // The chart keeps every seed: six lines, two legend entries.
    const svg = await (await fetch(`${h.baseUrl}/v1/studies/${study.id}/charts/val-accuracy.svg`)).text();
    expect(svg).toContain('>baseline</text>');
    expect(svg).toContain('>l2-kernel-bias</text>');
  }, 600_000);

  it('expands a grid, and cancels a whole study', async () => {
    const res = await postJson(h, '/v1/studies', {
      base: {
        model: {
          layers: [{ type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'Flatten' }, { type: 'Dense', units: 47, activation: 'softmax' }],
        },
        training: { epochs: 50, batchSize: 32 },
        dataset,
      },
      grid: { type: ['l1', 'l2'], target: ['kernel', 'activity'], lambda: [0.01, 0.1] },
    });
    expect(res.status).toBe(202);
    const study = (await res.json()) as { id: string; runs: { id: string; variant: string; spec: { model: { layers: Record<string, unknown>[] } } }[] };
    expect(study.runs).toHaveLength(9);
    expect(study.runs[0]!.variant).toBe('baseline');
    const l2act = study.runs.find((r) => r.variant === 'L2 activity λ=0.1')!;
    expect(l2act.spec.model.layers[0]!.activityRegularizer).toEqual({ type: 'l2', l1: 0, l2: 0.1 });
    expect(l2act.spec.model.layers[2]!.activityRegularizer).toEqual({ type: 'l2', l1: 0, l2: 0.1 });
    expect(l2act.spec.model.layers[0]!.kernelRegularizer).toBeNull();

    await readSse(`${h.baseUrl}/v1/runs/${study.runs[0]!.id}/events`, { until: (e) => e.event === 'epoch' });
    const cancelled = await fetch(`${h.baseUrl}/v1/studies/${study.id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(202);
    const events = await readSse(`${h.baseUrl}/v1/studies/${study.id}/events`, { timeoutMs: 120_000 });
    expect(events.at(-1)?.event).toBe('study-completed');
    const final = (await (await fetch(`${h.baseUrl}/v1/studies/${study.id}`)).json()) as { status: string; counts: Record<string, number> };
    expect(final.status).toBe('cancelled');
    expect(final.counts).toEqual({ cancelled: 9 });
  }, 300_000);
});
