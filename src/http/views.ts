/**
 * What the run and study routes share: the run's JSON views, the problem responses, and how a
 * submission (POST /v1/runs, POST /v1/studies) reads its Idempotency-Key and answers a replay.
 */
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { RunRecord } from '../runs/records.js';
import type { SubmitOptions } from '../runs/submission.js';
import { requestHash } from '../runs/idempotency.js';
import { Problem, type RunView as RunViewT } from './schemas.js';
import { scopeOf } from './plugins/guard.js';

/** The problem responses of the run and study routes. */
export const problems = { 400: Problem, 401: Problem, 404: Problem, 409: Problem, 422: Problem, 429: Problem };

/** The Idempotency-Key request header of POSTs that create something. */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7E]+$',
      description:
        'Makes the POST safe to retry: the same key with the same body gives back what the first request created ' +
        '(202 again, same id, header `Idempotent-Replayed: true`); the same key with another body is a 409. Keys are per API key owner.',
    }),
  ),
});

/** The Idempotency-Key of a request, with the hash that tells whether a replay is the same request. */
export function idempotencyOf(route: string, key: string | undefined, body: unknown) {
  return key === undefined ? {} : { idempotency: { key, requestHash: requestHash(route, body) } };
}

export function runView(run: RunRecord): RunViewT {
  const self = `/v1/runs/${run.id}`;
  return {
    id: run.id,
    name: run.name,
    status: run.status,
    dataset: run.datasetName,
    paramCount: run.paramCount,
    backend: run.backend,
    backendNote: run.backendNote,
    versions: run.versions,
    error: run.error,
    cancelRequested: run.cancelRequested,
    test: run.testLoss !== null && run.testAccuracy !== null ? { loss: run.testLoss, accuracy: run.testAccuracy } : null,
    samplesPerSec: run.samplesPerSec,
    priority: run.priority,
    weights: run.weightStats,
    createdAt: run.createdAt.toISOString(),
    startedAt: run.startedAt?.toISOString() ?? null,
    finishedAt: run.finishedAt?.toISOString() ?? null,
    spec: run.spec,
    links: {
      self,
      events: `${self}/events`,
      metrics: `${self}/metrics`,
      model: `${self}/model`,
      weights: `${self}/model/weights.bin`,
      lossChart: `${self}/charts/loss.svg`,
      accuracyChart: `${self}/charts/accuracy.svg`,
      predict: `${self}/predict`,
      cancel: `${self}/cancel`,
    },
  };
}

/** A list item by default: the run without its spec and weight statistics. */
export function runSummary(run: RunRecord): Omit<RunViewT, 'spec' | 'weights'> {
  const { spec: _spec, weights: _weights, ...summary } = runView(run);
  return summary;
}

/** A submission's owner and Idempotency-Key (`route` tells requests with the same body apart). */
export function submitOptions(request: FastifyRequest, route: string, key: string | undefined): SubmitOptions {
  return { owner: scopeOf(request), ...idempotencyOf(route, key, request.body) };
}

/** Marks the answer to a request whose Idempotency-Key was seen before. */
export function markReplayed(reply: { header(name: string, value: string): unknown }, replayed: boolean): void {
  if (replayed) reply.header('idempotent-replayed', 'true');
}
