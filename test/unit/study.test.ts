import { describe, expect, it } from 'vitest';
import { expandStudy } from '../../src/run-spec/study.js';
import { SpecError } from '../../src/run-spec/errors.js';
import { PRESET_NAMES } from '../../src/run-spec/presets.js';
import { compare, sparsityOf, toCsv, toMarkdown, type ComparedRun } from '../../src/studies/comparison.js';
import type { Layer } from '../../src/run-spec/schema.js';
import type { EpochRow } from '../../src/events/run-events.js';

const layers: Layer[] = [
  { type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relu', kernelRegularizer: { type: 'l1' } },
  { type: 'MaxPooling2D' },
  { type: 'Flatten' },
  { type: 'Dense', units: 47, activation: 'softmax' },
];

describe('expandStudy', () => {
  it('expands the tutorial preset into its eight runs with the shared training and dataset', () => {
    const v = expandStudy({ name: 'T', preset: 'tutorial', training: { epochs: 2 }, dataset: { name: 'emnist-balanced', limit: 100 } });
    expect(v.map((x) => x.label)).toEqual([...PRESET_NAMES]);
    expect(v[4]!.request).toEqual({ name: 'T: l2-activity', preset: 'l2-activity', training: { epochs: 2 }, dataset: { name: 'emnist-balanced', limit: 100 } });
  });

  it('expands a grid over type × target × λ on every Conv2D and Dense layer, replacing what the base had', () => {
    const v = expandStudy({ base: { model: { layers } }, grid: { type: ['l1', 'l1_l2'], target: ['kernel+bias', 'activity'], lambda: [0.01, 0.5] } });
    expect(v).toHaveLength(1 + 2 * 2 * 2);
    expect(v[0]!.label).toBe('baseline');
    expect((v[0]!.request.model!.layers[0] as Record<string, unknown>).kernelRegularizer).toBeUndefined();
    const en = v.find((x) => x.label === 'Elastic Net kernel+bias λ=0.5')!;
    const [conv, pool, , dense] = en.request.model!.layers as Record<string, unknown>[];
    expect(conv).toMatchObject({ kernelRegularizer: { type: 'l1_l2', l1: 0.5, l2: 0.5 }, biasRegularizer: { type: 'l1_l2', l1: 0.5, l2: 0.5 } });
    expect(conv!.activityRegularizer).toBeUndefined();
    expect(dense).toMatchObject({ kernelRegularizer: { type: 'l1_l2', l1: 0.5, l2: 0.5 } });
    expect(pool).toEqual({ type: 'MaxPooling2D' });
    const act = v.find((x) => x.label === 'L1 activity λ=0.01')!;
    expect(act.request.model!.layers[0]).toMatchObject({ activityRegularizer: { type: 'l1', l1: 0.01 } });
    expect((act.request.model!.layers[0] as Record<string, unknown>).kernelRegularizer).toBeUndefined();
  });

  it('merges variant training into the shared training, and refuses ambiguous studies', () => {
    const v = expandStudy({
      base: { preset: 'baseline', training: { epochs: 3, batchSize: 100 } },
      variants: [{ label: 'a' }, { label: 'b', training: { epochs: 5 } }],
    });
    expect(v.map((x) => x.request.training)).toEqual([
      { epochs: 3, batchSize: 100 },
      { epochs: 5, batchSize: 100 },
    ]);
    expect(v[1]!.request.preset).toBe('baseline');
    expect(() => expandStudy({ preset: 'tutorial', variants: [{ label: 'x' }] })).toThrow(SpecError);
    expect(() => expandStudy({})).toThrow(/exactly one/);
    expect(() => expandStudy({ variants: [{ label: 'x' }, { label: 'x' }] })).toThrow(/used twice/);
    expect(() => expandStudy({ grid: { type: ['l1'], target: ['kernel'], lambda: [1] } })).toThrow(/base.model/);
  });
});

describe('comparison', () => {
  const epoch = (epoch: number, valAccuracy: number, penalty = 0): EpochRow => ({
    epoch,
    loss: 1,
    accuracy: 0.5,
    valLoss: 1,
    valAccuracy,
    durationMs: 1500,
    details: {
      train: { loss: 1, dataLoss: 1 - penalty, kernelPenalty: penalty, biasPenalty: 0, activityPenalty: 0, accuracy: 0.5 },
      val: null,
      samplesPerSec: 1000,
      weights: [],
    },
  });
  const stats = (nearZero: number) => [{ kernel: { count: 100, nearZero } }, { kernel: { count: 300, nearZero: nearZero / 2 } }];
  const runs: ComparedRun[] = [
    {
      id: 'a',
      variant: 'l1',
      seed: null,
      majorityRate: 0.05,
      status: 'succeeded',
      testLoss: 4,
      testAccuracy: 0.05,
      weightStats: stats(0.9),
      epochs: [epoch(1, 0.05, 2), epoch(2, 0.04, 1.5)],
    },
    {
      id: 'b',
      variant: 'baseline',
      seed: null,
      majorityRate: 0.05,
      status: 'succeeded',
      testLoss: 0.4,
      testAccuracy: 0.85,
      weightStats: stats(0.02),
      epochs: [epoch(1, 0.8), epoch(2, 0.84)],
    },
    {
      id: 'c',
      variant: 'l2',
      seed: null,
      majorityRate: 0.05,
      status: 'succeeded',
      testLoss: 0.5,
      testAccuracy: 0.87,
      weightStats: stats(0.03),
      epochs: [epoch(1, 0.86, 0.3), epoch(2, 0.85, 0.2)],
    },
    { id: 'd', variant: 'broken', seed: null, majorityRate: 0.05, status: 'failed', testLoss: null, testAccuracy: null, weightStats: null, epochs: [] },
  ];

  it('ranks by test accuracy with deltas to the baseline in percentage points', () => {
    const c = compare(runs);
    expect(c.baseline).toBe('baseline');
    expect(c.rows.map((r) => [r.rank, r.variant])).toEqual([
      [1, 'l2'],
      [2, 'baseline'],
      [3, 'l1'],
      [4, 'broken'],
    ]);
    const l2 = c.rows[0]!;
    expect(l2.deltaVsBaselinePp).toBeCloseTo(2, 10);
    expect(l2.bestValAccuracy).toBe(0.86);
    expect(l2.bestValEpoch).toBe(1);
    expect(l2.finalPenalty).toBeCloseTo(0.2, 10);
    expect(l2.trainingSeconds).toBe(3);
    expect(c.rows[2]!.deltaVsBaselinePp).toBeCloseTo(-80, 10);
    expect(c.rows[3]).toMatchObject({ testAccuracy: null, deltaVsBaselinePp: null, sparsity: null, epochs: 0 });
  });

  it('computes sparsity over all kernel weights, weighted by their count', () => {
    expect(sparsityOf(stats(0.8))).toBeCloseTo((100 * 0.8 + 300 * 0.4) / 400, 10);
    expect(sparsityOf(null)).toBeNull();
  });

  it('renders CSV and Markdown tables', () => {
    const c = compare(runs);
    const csv = toCsv(c).trim().split('\n');
    expect(csv[0]).toBe(
      'rank,variant,seed,status,epochs,testLoss,testAccuracy,bestValAccuracy,bestValEpoch,finalPenalty,sparsity,trainingSeconds,deltaVsBaselinePp,runId',
    );
    expect(csv[1]).toBe('1,l2,,succeeded,2,0.5000,0.8700,0.8600,1,0.2000,0.0187,3.0,+2.00,c');
    const md = toMarkdown(c).split('\n');
    expect(md[0]).toMatch(/^\| rank \| variant \| seed \| status \|/);
    expect(md[5]).toContain('| 4 | broken | — | failed | 0 | — |');
  });
});

describe('studies with repeated seeds', () => {
  it('runs every variant once per seed (seeds or repeats), with the seed in training and the name', () => {
    const v = expandStudy({ preset: 'tutorial', seeds: [7, 9], training: { epochs: 1 } });
    expect(v).toHaveLength(16);
    expect(v.slice(0, 2).map((x) => [x.label, x.seed, x.request.training?.seed, x.request.name])).toEqual([
      ['baseline', 7, 7, 'baseline (seed 7)'],
      ['baseline', 9, 9, 'baseline (seed 9)'],
    ]);
    expect(v[2]!.request.training).toEqual({ epochs: 1, seed: 7 });
    const r = expandStudy({ base: { model: { layers } }, grid: { type: ['l2'], target: ['kernel'], lambda: [0.01] }, repeats: 3, training: { seed: 40 } });
    expect(r.map((x) => [x.label, x.seed])).toEqual([
      ['baseline', 40],
      ['baseline', 41],
      ['baseline', 42],
      ['L2 kernel λ=0.01', 40],
      ['L2 kernel λ=0.01', 41],
      ['L2 kernel λ=0.01', 42],
    ]);
    expect(
      expandStudy({ preset: 'tutorial', repeats: 2 })
        .map((x) => x.seed)
        .slice(0, 2),
    ).toEqual([1, 2]);
  });

  it('refuses seeds with repeats, and studies that expand past the run limit, naming the field', () => {
    expect(() => expandStudy({ preset: 'tutorial', seeds: [1], repeats: 2 })).toThrow(SpecError);
    try {
      expandStudy({ preset: 'tutorial', repeats: 9 });
      expect.unreachable();
    } catch (err) {
      expect((err as SpecError).pointer).toBe('/repeats');
      expect((err as SpecError).message).toContain('72 runs');
    }
  });

  const run = (id: string, variant: string, seed: number, testAccuracy: number | null, status = 'succeeded'): ComparedRun => ({
    id,
    variant,
    seed,
    majorityRate: 0.055,
    status,
    testLoss: testAccuracy === null ? null : 1 - testAccuracy,
    testAccuracy,
    weightStats: null,
    epochs: [],
  });
  const runs = [
    run('b1', 'baseline', 1, 0.85),
    run('b2', 'baseline', 2, 0.87),
    run('b3', 'baseline', 3, 0.86),
    run('l1', 'l1-activity', 1, 0.055),
    run('l2', 'l1-activity', 2, 0.6),
    run('l3', 'l1-activity', 3, 0.058),
    run('a1', 'l2-activity', 1, 0.88),
    run('a2', 'l2-activity', 2, 0.862),
    run('a3', 'l2-activity', 3, null, 'failed'),
  ];

  it('reports mean, sd, min, max and collapsed runs per variant, ranked by mean, with overlapping ranges', () => {
    const c = compare(runs);
    expect(c.variants.map((v) => [v.rank, v.variant, v.runs, v.finished, v.collapsed])).toEqual([
      [1, 'l2-activity', 3, 2, 0],
      [2, 'baseline', 3, 3, 0],
      [3, 'l1-activity', 3, 3, 2],
    ]);
    const base = c.variants[1]!.metrics.testAccuracy!;
    expect(base.n).toBe(3);
    expect(base.mean).toBeCloseTo(0.86, 12);
    expect(base.sd).toBeCloseTo(0.01, 12); // sample sd of 0.85, 0.87, 0.86
    expect([base.min, base.max]).toEqual([0.85, 0.87]);
    expect(c.variants[0]!.metrics.testAccuracy!.mean).toBeCloseTo(0.871, 12);
    expect(c.variants[0]!.deltaVsBaselinePp).toBe(1.1);
    expect(c.variants[0]!.overlapsWith).toEqual(['baseline']);
    expect(c.variants[2]!.overlapsWith).toEqual([]);
    expect(c.variants[1]!.seeds).toEqual([1, 2, 3]);
    expect(c.rows.find((r) => r.runId === 'l2')).toMatchObject({ seed: 2, variant: 'l1-activity' });
  });

  it('puts the spreads in CSV and Markdown (per variant by default when seeds repeat; per run on request)', () => {
    const c = compare(runs);
    const csv = toCsv(c).trim().split('\n');
    expect(csv[0]!.startsWith('rank,variant,runs,collapsed,testAccuracy_mean,testAccuracy_sd,testAccuracy_min,testAccuracy_max,testLoss_mean')).toBe(true);
    expect(csv[2]!.startsWith('2,baseline,3,0,0.8600,0.0100,0.8500,0.8700,')).toBe(true);
    expect(csv[3]).toContain('l1-activity,3,2,');
    expect(toCsv(c, 'runs').split('\n')).toHaveLength(runs.length + 2);
    const md = toMarkdown(c).split('\n');
    expect(md[0]).toContain('| test accuracy mean | test accuracy sd | test accuracy min | test accuracy max |');
    expect(md[2]).toContain('| 1 | l2-activity | 3 | 0 | 0.8710 |');
  });
});
