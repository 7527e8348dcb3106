/**
 * What the run and study routes share: the run's JSON views, the problem responses, and how a
 * submission (POST /v1/runs, POST /v1/studies) reads its Idempotency-Key and answers a replay.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type Static, Type, type TSchema } from 'typebox';
import type { RunRecord } from '../runs/records.js';
import type { SubmitOptions, Submitted } from '../runs/submission.js';
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

/**
 * Registers the POST that stores a submission (a run at /runs, a study at /studies): its body
 * schema, the Idempotency-Key header, 202 with the stored thing's view and location (marked
 * Idempotent-Replayed when an earlier request with the key stored it), or a problem.
 */
export function postSubmission<B extends TSchema, T extends { id: string }>(
  app: FastifyInstance,
  o: {
    url: '/runs' | '/studies';
    doc: { summary: string; description: string };
    body: B;
    view: TSchema;
    submit: (body: Static<B>, opts: SubmitOptions) => Promise<Submitted<T>>;
    render: (stored: T) => unknown;
  },
): void {
  const schema = { tags: [o.url.slice(1)], ...o.doc, body: o.body, headers: IdempotencyHeaders, response: { 202: o.view, ...problems } };
  app.post(o.url, { schema }, async (request, reply) => {
    const key = (request.headers as { 'idempotency-key'?: string })['idempotency-key'];
    const { value, replayed } = await o.submit(request.body as Static<B>, submitOptions(request, `POST /v1${o.url}`, key));
    if (replayed) reply.header('idempotent-replayed', 'true');
    return reply.code(202).header('location', `/v1${o.url}/${value.id}`).send(o.render(value));
  });
}
