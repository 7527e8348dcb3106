/**
 * The service end to end: POST a spec → BullMQ → worker thread trains on the EMNIST fixture →
 * PostgreSQL → SSE, metrics and model download; the downloaded model reloads in tfjs and
 * reproduces the run's test metrics.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { loadDataset } from '../../src/engine/data/load.js';
import { getDatasetInfo } from '../../src/engine/data/registry.js';
import { readSse, type Harness, type SseEvent } from '../support/harness.js';
import { suiteHarness } from '../support/suite.js';
import { fixtureDataset, postJson } from '../support/client.js';
import { normalizeSpec } from '../../src/run-spec/normalize.js';
import { PRESET_NAMES } from '../../src/run-spec/presets.js';
import type { RunRequest } from '../../src/run-spec/schema.js';

const dataset = {
  ...fixtureDataset,
  classNames: [...getDatasetInfo('emnist-balanced').labelNames],
};

function tinySpec(epochs: number, extra: Record<string, unknown> = {}) {
  return {
    name: 'e2e tiny',
    model: {
      layers: [
        {
          type: 'Conv2D',
          filters: 8,
          kernelSize: 3,
          activation: 'relu',
          kernelRegularizer: { type: 'l2', l2: 0.001 },
          activityRegularizer: { type: 'l1', l1: 0.0001 },
        },
        { type: 'MaxPooling2D', poolSize: 2 },
        { type: 'Dropout', rate: 0.25 },
        { type: 'Flatten' },
        { type: 'Dense', units: 32, activation: 'relu', biasRegularizer: { type: 'l1_l2', l1: 0.001, l2: 0.001 } },
        { type: 'Dense', units: 47, activation: 'softmax' },
      ],
    },
    training: { epochs, batchSize: 64, validationSplit: 0.2, seed: 42, optimizer: { type: 'adam', learningRate: 0.003 } },
    dataset,
    ...extra,
  };
}

const post = (h: Harness, body: unknown): Promise<Response> => postJson(h, '/v1/runs', body);

describe('a run end to end', () => {
  const h = suiteHarness({ worker: true }, 120_000);

  it('trains, streams its events, stores metrics and a model that reloads with the same predictions', async () => {
    const res = await post(h, tinySpec(2));
    expect(res.status).toBe(202);
    const run = (await res.json()) as { id: string; status: string };
    expect(res.headers.get('location')).toBe(`/v1/runs/${run.id}`);
    expect(run.status).toBe('queued');

    const events = await readSse(`${h.baseUrl}/v1/runs/${run.id}/events`);
    const types = events.map((e) => e.event);
    expect(types[0]).toBe('queued');
    expect(types[1]).toBe('started');
    expect(types.at(-1)).toBe('completed');
    expect(types.filter((t) => t === 'epoch')).toHaveLength(2);
    expect(types.filter((t) => t === 'batch').length).toBeGreaterThanOrEqual(2);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => i + 1));
    const epochEvents = events.filter((e) => e.event === 'epoch');
    expect(epochEvents.map((e) => e.data.epoch)).toEqual([1, 2]);
    // The activity penalty is part of the training loss and is reported on its own.
    const train1 = epochEvents[0]!.data.train as Record<string, number>;
    expect(train1.activityPenalty).toBeGreaterThan(0);
    expect(train1.kernelPenalty).toBeGreaterThan(0);
    expect(train1.loss).toBeCloseTo(train1.dataLoss! + train1.kernelPenalty! + train1.biasPenalty! + train1.activityPenalty!, 6);
    const started = events[1]!.data;
    expect(started.backend).toBe('wasm');
    expect(started.step).toEqual({ path: 'tfjs', note: null }); // wasm has no native whole step
    expect(started.trainCount).toBe(1128);
    expect(started.valCount).toBe(282);

    // The run, its epoch rows and test metrics.
    const got = (await (await fetch(`${h.baseUrl}/v1/runs/${run.id}`)).json()) as Record<string, unknown>;
    expect(got.status).toBe('succeeded');
    expect(got.backend).toBe('wasm');
    // What a rerun needs besides the spec (seed included): the versions it trained with.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(got.versions).toEqual({ regula: pkg.version, tfjs: tf.version.tfjs, backend: 'wasm', backendDetail: null, node: process.version });
    expect((got.spec as { training: { seed: number } }).training.seed).toBe(42);
    const metrics = (await (await fetch(`${h.baseUrl}/v1/runs/${run.id}/metrics`)).json()) as {
      epochs: { epoch: number; loss: number; valAccuracy: number; durationMs: number }[];
      test: { loss: number; accuracy: number; parts: Record<string, number> };
    };
    expect(metrics.epochs.map((e) => e.epoch)).toEqual([1, 2]);
    metrics.epochs.forEach((row, i) => {
      expect(row.loss).toBe(epochEvents[i]!.data.loss);
      expect(row.valAccuracy).toBe(epochEvents[i]!.data.valAccuracy);
      expect(row.durationMs).toBeGreaterThan(0);
    });
    // 2 epochs on 1,128 real EMNIST images: well above the 1/47 chance rate.
    expect(metrics.test.accuracy).toBeGreaterThan(0.1);
    const completed = events.at(-1)!.data.test as Record<string, number>;
    expect(completed.accuracy).toBe(metrics.test.accuracy);

    // Everything is in PostgreSQL.
    const stored = await h.ctx.repo.events(run.id);
    expect(stored.map((e) => e.type)).toEqual(types);
    expect(await h.ctx.prisma.epochMetric.count({ where: { runId: run.id } })).toBe(2);

    // Resume after event 3: exactly the rest, in order.
    const resumed = await readSse(`${h.baseUrl}/v1/runs/${run.id}/events`, { headers: { 'last-event-id': '3' } });
    expect(resumed.map((e) => e.id)).toEqual(events.slice(3).map((e) => e.id));

    // Download the model and its weights; reload with tfjs over HTTP.
    const modelJson = (await (await fetch(`${h.baseUrl}/v1/runs/${run.id}/model`)).json()) as { sha256: string };
    const weights = new Uint8Array(await (await fetch(`${h.baseUrl}/v1/runs/${run.id}/model/weights.bin`)).arrayBuffer());
    expect(createHash('sha256').update(weights).digest('hex')).toBe(modelJson.sha256);
    await tf.ready();
    const model = await tf.loadLayersModel(`${h.baseUrl}/v1/runs/${run.id}/model`);

    // Same predictions: the reloaded model's test accuracy and crossentropy equal the worker's.
    const data = await loadDataset({ name: 'idx', train: dataset.train, test: dataset.test, transposed: true }, h.config.dataDir);
    const { accuracy, dataLoss, top3 } = tf.tidy(() => {
      const xs = tf.tensor4d(data.test.images, [data.test.count, 28, 28, 1]);
      const ys = tf.oneHot(tf.tensor1d(data.test.labels, 'int32'), 47).toFloat();
      const probs = model.predict(xs) as tf.Tensor;
      return {
        accuracy: tf.mean(tf.cast(tf.equal(tf.argMax(probs, -1), tf.argMax(ys, -1)), 'float32')).dataSync()[0]!,
        dataLoss: tf.mean(tf.metrics.categoricalCrossentropy(ys, probs)).dataSync()[0]!,
        top3: Array.from(tf.argMax(probs, -1).dataSync()).slice(0, 3),
      };
    });
    model.dispose();
    expect(accuracy).toBeCloseTo(metrics.test.accuracy, 6);
    expect(dataLoss).toBeCloseTo(metrics.test.parts.dataLoss!, 4);

    // The predict endpoint agrees with the reloaded model and names the characters.
    const images = [0, 1, 2].map((i) => Array.from(data.test.images.subarray(i * 784, (i + 1) * 784)));
    const predicted = await fetch(`${h.baseUrl}/v1/runs/${run.id}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ images }),
    });
    expect(predicted.status).toBe(200);
    const p = (await predicted.json()) as {
      classNames: string[];
      predictions: { class: number; label: string; probability: number; probabilities: number[] }[];
    };
    expect(p.classNames.slice(0, 12)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B']);
    expect(p.predictions.map((x) => x.class)).toEqual(top3);
    for (const x of p.predictions) {
      expect(x.label).toBe(p.classNames[x.class]);
      expect(x.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
      expect(x.probability).toBe(Math.max(...x.probabilities));
    }
    // The same first image as a PNG upload gives the same answer.
    const png = new PNG({ width: 28, height: 28 });
    images[0]!.forEach((v, i) => {
      const g = Math.round(v * 255);
      png.data.set([g, g, g, 255], i * 4);
    });
    const fromPng = await fetch(`${h.baseUrl}/v1/runs/${run.id}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: PNG.sync.write(png),
    });
    expect(fromPng.status).toBe(200);
    expect(((await fromPng.json()) as typeof p).predictions[0]!.class).toBe(top3[0]);
    const tooBig = new PNG({ width: 32, height: 32 });
    const rejected = await fetch(`${h.baseUrl}/v1/runs/${run.id}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: PNG.sync.write(tooBig),
    });
    expect(rejected.status).toBe(422);
  }, 180_000);

  it('cancels a queued run at once and a running one within a batch', async () => {
    const long = (await (await post(h, tinySpec(50))).json()) as { id: string };
    const queued = (await (await post(h, tinySpec(1))).json()) as { id: string };

    // Wait until the first run is training, then cancel the second (still queued behind it).
    await readSse(`${h.baseUrl}/v1/runs/${long.id}/events`, { until: (e) => e.event === 'batch' });
    const c1 = await fetch(`${h.baseUrl}/v1/runs/${queued.id}/cancel`, { method: 'POST' });
    expect(c1.status).toBe(202);
    expect(((await c1.json()) as { status: string }).status).toBe('cancelled');

    const c2 = await fetch(`${h.baseUrl}/v1/runs/${long.id}/cancel`, { method: 'POST' });
    expect(c2.status).toBe(202);
    expect(((await c2.json()) as { cancelRequested: boolean }).cancelRequested).toBe(true);
    const rest: SseEvent[] = await readSse(`${h.baseUrl}/v1/runs/${long.id}/events`);
    expect(rest.at(-1)?.event).toBe('cancelled');
    const epochsDone = rest.filter((e) => e.event === 'epoch').length;
    expect(epochsDone).toBeLessThan(50);

    const final = (await (await fetch(`${h.baseUrl}/v1/runs/${long.id}`)).json()) as { status: string };
    expect(final.status).toBe('cancelled');
    const again = await fetch(`${h.baseUrl}/v1/runs/${long.id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);

    // The cancelled queued run never started, and is not picked up later.
    const qEvents = await h.ctx.repo.events(queued.id);
    expect(qEvents.map((e) => e.type)).toEqual(['queued', 'cancelled']);
    const model = await fetch(`${h.baseUrl}/v1/runs/${long.id}/model`);
    expect(model.status).toBe(409);
  }, 180_000);

  it('trains a tutorial preset with overrides; its epoch events carry the activity penalty', async () => {
    const list = (await (await fetch(`${h.baseUrl}/v1/presets`)).json()) as { items: { name: string; model: { layers: unknown[] } }[] };
    expect(list.items.map((p) => p.name)).toEqual([...PRESET_NAMES]);
    const both = await post(h, { ...tinySpec(1), preset: 'baseline' });
    expect(both.status).toBe(422);
    expect(((await both.json()) as { errors: { pointer: string }[] }).errors[0]!.pointer).toBe('/model');

    const res = await post(h, { preset: 'l2-activity', training: { epochs: 1, seed: 5 }, dataset: { ...dataset, limit: 600 } });
    expect(res.status).toBe(202);
    const run = (await res.json()) as { id: string; paramCount: number; spec: { preset: string; model: { layers: { activityRegularizer?: unknown }[] } } };
    expect(run.paramCount).toBe(440751);
    expect(run.spec.preset).toBe('l2-activity');
    expect(run.spec.model.layers[0]!.activityRegularizer).toEqual({ type: 'l2', l1: 0, l2: 0.01 });
    const events = await readSse(`${h.baseUrl}/v1/runs/${run.id}/events`);
    expect(events.at(-1)?.event).toBe('completed');
    const epoch = events.find((e) => e.event === 'epoch')!;
    const train = epoch.data.train as Record<string, number>;
    const val = epoch.data.val as Record<string, number>;
    expect(train.activityPenalty).toBeGreaterThan(0);
    expect(val.activityPenalty).toBeGreaterThan(0);
    expect(train.kernelPenalty).toBe(0);
    expect(epoch.data.valLoss).toBeCloseTo(val.dataLoss! + val.activityPenalty!, 6);
  }, 180_000);

  it('restarts a run from epoch 1 when its worker was lost (stalled job handed to another worker)', async () => {
    const request = tinySpec(1) as unknown as RunRequest;
    const { spec, shapes } = normalizeSpec(request, { numClasses: 47, seed: 1 });
    const id = '11111111-2222-4333-8444-555555555555';
    await h.ctx.repo.create({ id, name: 'lost worker', specSubmitted: request, spec, datasetName: 'idx', paramCount: shapes.paramCount }, { status: 'queued' });
    // What a worker that died mid-epoch leaves behind: status running, a partial epoch row.
    expect(await h.ctx.repo.markRunning(id, 'wasm', null)).toBe(true);
    await h.ctx.repo.saveEpoch(id, { epoch: 1, loss: 99, accuracy: 0, valLoss: null, valAccuracy: null, durationMs: 1, details: null });
    await h.ctx.queue.enqueue(id);

    const events = await readSse(`${h.baseUrl}/v1/runs/${id}/events`);
    expect(events.map((e) => e.event).filter((t) => t !== 'batch')).toEqual(['queued', 'restarted', 'started', 'epoch', 'completed']);
    const metrics = (await (await fetch(`${h.baseUrl}/v1/runs/${id}/metrics`)).json()) as { status: string; epochs: { epoch: number; loss: number }[] };
    expect(metrics.status).toBe('succeeded');
    expect(metrics.epochs).toHaveLength(1);
    expect(metrics.epochs[0]!.loss).not.toBe(99);
  }, 120_000);
});
