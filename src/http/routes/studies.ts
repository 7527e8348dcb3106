/** /v1/studies: many runs from one request, compared side by side. */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { StudyRequest } from '../../spec/study.js';
import type { StudiesService, StudyRecord } from '../../studies/service.js';
import { toCsv, toMarkdown } from '../../studies/comparison.js';
import type { RunEventBus } from '../../events/bus.js';
import type { RunsService } from '../../runs/service.js';
import { Problem, RunParams, RunView } from '../schemas.js';
import { IdempotencyHeaders, idempotencyOf, runView } from './runs.js';
import { scopeOf } from '../plugins/guard.js';
import { streamStudyEvents } from '../sse.js';

export interface StudiesRouteDeps {
  studies: StudiesService;
  runs: RunsService;
  bus: RunEventBus;
}

const problems = { 400: Problem, 401: Problem, 404: Problem, 409: Problem, 422: Problem, 429: Problem };

const StudyView = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.Union([Type.String(), Type.Null()]),
  status: Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('cancelled')]),
  cancelRequested: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  counts: Type.Record(Type.String(), Type.Integer(), { description: 'Runs by status.' }),
  runs: Type.Array(Type.Intersect([Type.Object({ variant: Type.Union([Type.String(), Type.Null()]) }), RunView])),
  links: Type.Object({ self: Type.String(), events: Type.String(), comparison: Type.String() }),
});

const Nullable = (t: ReturnType<typeof Type.Number>) => Type.Union([t, Type.Null()]);
const ComparisonView = Type.Object({
  studyId: Type.String({ format: 'uuid' }),
  status: Type.String(),
  baseline: Type.Union([Type.String(), Type.Null()]),
  rows: Type.Array(
    Type.Object({
      rank: Type.Integer(),
      variant: Type.String(),
      runId: Type.String(),
      status: Type.String(),
      epochs: Type.Integer(),
      testLoss: Nullable(Type.Number()),
      testAccuracy: Nullable(Type.Number()),
      bestValAccuracy: Nullable(Type.Number()),
      bestValEpoch: Type.Union([Type.Integer(), Type.Null()]),
      finalPenalty: Nullable(Type.Number({ description: 'kernel + bias + activity penalty of the last epoch (training).' })),
      sparsity: Nullable(Type.Number({ description: 'Fraction of Conv2D/Dense kernel weights with |w| < 1e-3 in the final model.' })),
      trainingSeconds: Type.Number(),
      deltaVsBaselinePp: Nullable(Type.Number({ description: 'Test accuracy minus the baseline run\'s, in percentage points.' })),
    }),
  ),
});

function studyView(s: StudyRecord) {
  const counts: Record<string, number> = {};
  for (const r of s.runs) counts[r.status] = (counts[r.status] ?? 0) + 1;
  const self = `/v1/studies/${s.id}`;
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    cancelRequested: s.cancelRequested,
    createdAt: s.createdAt.toISOString(),
    counts,
    runs: s.runs.map((r) => ({ variant: r.variant, ...runView(r) })),
    links: { self, events: `${self}/events`, comparison: `${self}/comparison` },
  };
}

export const studiesRoutes =
  (deps: StudiesRouteDeps): FastifyPluginAsync =>
  async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const { studies } = deps;

    app.post(
      '/studies',
      {
        schema: {
          tags: ['studies'],
          summary: 'Create a study: one run per variant, all queued',
          description:
            'Exactly one of `preset: "tutorial"` (the eight configurations), `grid` (type × target × λ on every Conv2D/Dense layer of base.model) ' +
            'or `variants`. Every run is validated before any is stored.',
          body: StudyRequest,
          headers: IdempotencyHeaders,
          response: { 202: StudyView, ...problems },
        },
      },
      async (request, reply) => {
        const { value: s, replayed } = await studies.create(request.body, {
          owner: scopeOf(request),
          ...idempotencyOf('POST /v1/studies', request.headers['idempotency-key'], request.body),
        });
        if (replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(202).header('location', `/v1/studies/${s.id}`).send(studyView(s));
      },
    );

    app.get(
      '/studies/:id',
      { schema: { tags: ['studies'], summary: 'A study with its runs', params: RunParams, response: { 200: StudyView, ...problems } } },
      async (request) => studyView(await studies.get(request.params.id, scopeOf(request))),
    );

    app.post(
      '/studies/:id/cancel',
      { schema: { tags: ['studies'], summary: 'Cancel every unfinished run of a study', params: RunParams, response: { 202: StudyView, ...problems } } },
      async (request, reply) => reply.code(202).send(studyView(await studies.cancel(request.params.id, scopeOf(request)))),
    );

    app.get(
      '/studies/:id/comparison',
      {
        schema: {
          tags: ['studies'],
          summary: 'The runs side by side, ranked by test accuracy',
          description: 'JSON by default; `Accept: text/csv` or `Accept: text/markdown` for a table.',
          params: RunParams,
          produces: ['application/json', 'text/csv', 'text/markdown'],
          response: {
            200: {
              content: {
                'application/json': { schema: ComparisonView },
                'text/csv': { schema: Type.String() },
                'text/markdown': { schema: Type.String() },
              },
            },
            ...problems,
          },
        },
      },
      async (request, reply) => {
        const { study, comparison } = await studies.comparison(request.params.id, scopeOf(request));
        const accept = request.headers.accept ?? '';
        if (/text\/csv/.test(accept)) return reply.type('text/csv; charset=utf-8').send(toCsv(comparison));
        if (/text\/markdown/.test(accept)) return reply.type('text/markdown; charset=utf-8').send(toMarkdown(comparison));
        return { studyId: study.id, status: study.status, ...comparison };
      },
    );

    app.get(
      '/studies/:id/events',
      {
        schema: {
          tags: ['studies'],
          summary: 'Server-Sent Events of all runs of a study',
          description:
            'The runs\' events (each with `runId` and `variant`), replayed then live. The event id is a cursor over all runs; ' +
            'send it back as `Last-Event-ID` to resume. Ends with `study-completed`.',
          params: RunParams,
          produces: ['text/event-stream'],
          response: { 200: Type.String({ description: 'text/event-stream' }), ...problems },
        },
      },
      async (request, reply) => {
        const scope = scopeOf(request);
        const s = await studies.get(request.params.id, scope);
        const header = request.headers['last-event-id'];
        await streamStudyEvents(
          request,
          reply,
          s.runs.map((r) => ({ id: r.id, variant: r.variant })),
          Array.isArray(header) ? header[0] : header,
          { bus: deps.bus, replay: (runId, after) => deps.runs.events(runId, after, scope) },
        );
      },
    );
  };
