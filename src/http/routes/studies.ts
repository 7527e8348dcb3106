/** /v1/studies: many runs from one request, compared side by side. */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { StudyRequest } from '../../run-spec/study.js';
import type { StudiesService, StudyRecord, StudySummary } from '../../studies/service.js';
import { toCsv, toMarkdown } from '../../studies/comparison.js';
import type { RunEventBus } from '../../events/bus.js';
import type { RunsService } from '../../runs/service.js';
import { Problem, RunParams, RunView } from '../schemas.js';
import { postSubmission, problems, runView } from '../views.js';
import { scopeOf } from '../plugins/guard.js';
import { streamStudyEvents } from '../sse.js';

/** POST /v1/studies in the OpenAPI document. */
const CREATE_STUDY = {
  summary: 'Create a study: one run per variant, all queued',
  description:
    'Exactly one of `preset: "tutorial"` (the eight configurations), `grid` (type × target × λ on every Conv2D/Dense layer of base.model) ' +
    'or `variants`. Every run is validated before any is stored.',
};

export interface StudiesRouteDeps {
  studies: StudiesService;
  runs: RunsService;
  bus: RunEventBus;
}

const StudyLinks = Type.Object({
  self: Type.String(),
  events: Type.String({ description: 'Server-Sent Events of all its runs (GET).' }),
  comparison: Type.String({ description: 'JSON; `?format=csv` or `?format=md` for a table.' }),
  valAccuracyChart: Type.String({ description: 'SVG overlay of every run; .png beside it.' }),
  valLossChart: Type.String({ description: 'SVG overlay of every run; .png beside it.' }),
  cancel: Type.String({ description: 'POST to cancel every unfinished run.' }),
});

const StudyStatus = Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('cancelled')]);
const finishedAt = Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
  description: 'When its last run finished; null while any run is queued or running.',
});

/** What a study's list item and its full view share. */
const studySummaryFields = {
  id: Type.String({ format: 'uuid' }),
  name: Type.Union([Type.String(), Type.Null()]),
  status: StudyStatus,
  cancelRequested: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  finishedAt,
  counts: Type.Record(Type.String(), Type.Integer(), { description: 'Runs by status.' }),
  links: StudyLinks,
};

const StudySummaryView = Type.Object(studySummaryFields);

const StudyView = Type.Object({
  ...studySummaryFields,
  runs: Type.Array(Type.Intersect([Type.Object({ variant: Type.Union([Type.String(), Type.Null()]) }), RunView])),
});

const StudyList = Type.Object({ items: Type.Array(StudySummaryView), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() });
const StudyListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  offset: Type.Integer({ minimum: 0, default: 0 }),
});

function studyLinks(id: string) {
  const self = `/v1/studies/${id}`;
  return {
    self,
    events: `${self}/events`,
    comparison: `${self}/comparison`,
    valAccuracyChart: `${self}/charts/val-accuracy.svg`,
    valLossChart: `${self}/charts/val-loss.svg`,
    cancel: `${self}/cancel`,
  };
}

function summaryView(s: StudySummary) {
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    cancelRequested: s.cancelRequested,
    createdAt: s.createdAt.toISOString(),
    finishedAt: s.finishedAt?.toISOString() ?? null,
    counts: s.counts,
    links: studyLinks(s.id),
  };
}

const Nullable = (t: ReturnType<typeof Type.Number>) => Type.Union([t, Type.Null()]);
const Spread = Type.Object(
  {
    n: Type.Integer(),
    mean: Type.Number(),
    sd: Type.Number({ description: 'Sample standard deviation (n − 1); 0 for one run.' }),
    min: Type.Number(),
    max: Type.Number(),
  },
  { description: "Over the variant's finished runs." },
);
const MaybeSpread = Type.Union([Spread, Type.Null()]);
const ComparisonView = Type.Object({
  studyId: Type.String({ format: 'uuid' }),
  status: Type.String(),
  baseline: Type.Union([Type.String(), Type.Null()]),
  rows: Type.Array(
    Type.Object({
      rank: Type.Integer(),
      variant: Type.String(),
      seed: Type.Union([Type.Integer(), Type.Null()], { description: 'The seed of this repeat, for studies with `seeds` or `repeats`.' }),
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
      deltaVsBaselinePp: Nullable(Type.Number({ description: "Test accuracy minus the baseline run's, in percentage points." })),
    }),
  ),
  variants: Type.Array(
    Type.Object({
      rank: Type.Integer({ description: 'By mean test accuracy.' }),
      variant: Type.String(),
      runs: Type.Integer(),
      finished: Type.Integer({ description: 'Succeeded runs: the ones the figures are over.' }),
      seeds: Type.Array(Type.Integer()),
      collapsed: Type.Integer({ description: "Finished runs whose test accuracy is within 0.5 pp of the test split's majority-class rate." }),
      metrics: Type.Object({
        testAccuracy: MaybeSpread,
        testLoss: MaybeSpread,
        bestValAccuracy: MaybeSpread,
        finalPenalty: MaybeSpread,
        sparsity: MaybeSpread,
        trainingSeconds: MaybeSpread,
      }),
      deltaVsBaselinePp: Nullable(Type.Number({ description: "Mean test accuracy minus the baseline's mean, in percentage points." })),
      overlapsWith: Type.Array(Type.String(), {
        description: "Variants whose [min, max] test accuracy overlaps this one's: their order is not settled by these seeds.",
      }),
    }),
    { description: 'One row per variant with the spread over its seeds (one run per variant without `seeds`/`repeats`).' },
  ),
});

function studyView(s: StudyRecord) {
  const counts: Record<string, number> = {};
  for (const r of s.runs) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return { ...summaryView({ ...s, counts }), runs: s.runs.map((r) => ({ variant: r.variant, ...runView(r) })) };
}

export const studiesRoutes =
  (deps: StudiesRouteDeps): FastifyPluginAsync =>
  async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const { studies } = deps;

    postSubmission(fastify, {
      url: '/studies',
      doc: CREATE_STUDY,
      body: StudyRequest,
      view: StudyView,
      submit: (body, opts) => studies.create(body, opts),
      render: studyView,
    });

    app.get(
      '/studies',
      {
        schema: {
          tags: ['studies'],
          summary: 'List studies, newest first',
          description: "With auth on, only the studies of the API key's owner. Each with its runs counted by status; GET /v1/studies/{id} for the runs.",
          querystring: StudyListQuery,
          response: { 200: StudyList, 400: Problem, 401: Problem, 429: Problem },
        },
      },
      async (request) => {
        const { limit, offset } = request.query;
        const page = await studies.list({ limit, offset }, scopeOf(request));
        return { items: page.items.map(summaryView), total: page.total, limit, offset };
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
          description:
            'JSON by default; a table with `?format=csv` or `?format=md` (links and browsers), or `Accept: text/csv` / `Accept: text/markdown`. ' +
            'The query parameter wins over the header.',
          params: RunParams,
          querystring: Type.Object({
            format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv'), Type.Literal('md')], { description: 'Overrides the Accept header.' })),
            table: Type.Optional(
              Type.Union([Type.Literal('variants'), Type.Literal('runs')], {
                description:
                  'CSV and Markdown: one row per variant (mean, sd, min, max over its seeds) or per run. Default: variants when a variant has several runs.',
              }),
            ),
          }),
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
        // deltaVsBaselinePp comes rounded to 2 decimals from studies/comparison.ts.
        const { study, comparison } = await studies.comparison(request.params.id, scopeOf(request));
        const accept = request.headers.accept ?? '';
        const format = request.query.format ?? (/text\/csv/.test(accept) ? 'csv' : /text\/markdown/.test(accept) ? 'md' : 'json');
        const table = request.query.table;
        if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(toCsv(comparison, table));
        if (format === 'md') return reply.type('text/markdown; charset=utf-8').send(toMarkdown(comparison, table));
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
            "The runs' events (each with `runId` and `variant`), replayed then live. The event id is a cursor over all runs; " +
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
