/** A small fetch wrapper for integration tests, and a run request that validates fast. */
import { expect } from 'vitest';
import type { Layer } from '../../src/run-spec/schema.js';
import type { Harness } from './harness.js';

export const fixtureDataset = {
  name: 'idx',
  train: { images: 'emnist-mini/emnist-mini-train-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-train-labels-idx1-ubyte.gz' },
  test: { images: 'emnist-mini/emnist-mini-test-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-test-labels-idx1-ubyte.gz' },
};

export function tinyRun(extra: Record<string, unknown> = {}) {
  return {
    model: {
      layers: [{ type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relu' }, { type: 'Flatten' }, { type: 'Dense', units: 47, activation: 'softmax' }],
    },
    training: { epochs: 1 },
    dataset: fixtureDataset,
    ...extra,
  };
}

/**
 * A small CNN without Dropout (tfjs does not seed its masks, so a resumed run can reproduce an
 * uninterrupted one exactly), with a kernel and an activity penalty that a resume must carry on.
 */
export function noDropoutLayers(filters: number, units: number, classes: number): Layer[] {
  return [
    { type: 'Conv2D', filters, kernelSize: 3, activation: 'relu', kernelRegularizer: { type: 'l2', l2: 0.001 } },
    { type: 'MaxPooling2D', poolSize: 2 },
    { type: 'Flatten' },
    { type: 'Dense', units, activation: 'relu', activityRegularizer: { type: 'l1', l1: 0.0001 } },
    { type: 'Dense', units: classes, activation: 'softmax' },
  ];
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: { pointer: string; detail: string }[];
}

export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export async function call<T = Record<string, unknown>>(
  h: Harness,
  method: string,
  path: string,
  opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key !== undefined) headers.authorization = `Bearer ${opts.key}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${h.baseUrl}${path}`, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  const text = await res.text();
  let body: unknown = text;
  if (/json/.test(res.headers.get('content-type') ?? '')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: body as T, text };
}

/** POST a JSON body with plain fetch, for tests that read the raw Response. */
export function postJson(h: Harness, path: string, body: unknown): Promise<Response> {
  return fetch(`${h.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Asserts a problem+json reply with this status (and a detail matching `detail`), and returns it. */
export function expectProblem(r: { status: number; headers: Headers; body: unknown; text?: string }, status: number, detail?: RegExp): Problem {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const p = r.body as Problem;
  expect(p.status).toBe(status);
  if (detail) expect(p.detail).toMatch(detail);
  return p;
}
