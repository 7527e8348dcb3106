/** /v1/runs: thin routes over RunsService. */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { RunRequest } from '../../run-spec/schema.js';
import type { RunsService } from '../../runs/service.js';
import type { RunEventBus } from '../../events/bus.js';
import type { RunRecord } from '../../runs/records.js';
import { ListQuery, MetricsView, ModelView, Problem, RunList, RunParams, RunView, type RunView as RunViewT } from '../schemas.js';
import { postSubmission, problems, runSummary, runView } from '../views.js';
import { lastEventId, MAX_EVENT_ID, streamRunEvents } from '../sse.js';
import { fromArrays, fromPng, PIXELS } from '../images.js';
import { scopeOf } from '../plugins/guard.js';
import { AppError } from '../../errors.js';
import { isTerminalStatus } from '../../events/run-events.js';

/** POST /v1/runs in the OpenAPI document. */
const SUBMIT_RUN = {
  summary: 'Submit a training run',
  description:
    'Validates the spec (schema, then shape inference against the dataset), stores the run and queues it. ' +
    "Defaults are the tutorial's: batch 250, 25 epochs, validation split 0.2, Adam, dataset emnist-balanced.",
};

export interface RunsRouteDeps {
  runs: RunsService;
  bus: RunEventBus;
}

const ListRunsQuery = Type.Object({
  ...ListQuery.properties,
  view: Type.Union([Type.Literal('summary'), Type.Literal('full')], {
    default: 'summary',
    description: '`summary` (default): items without `spec` and `weights`; `full`: items as GET /v1/runs/{id} returns them.',
  }),
});

const RunListView = Type.Object({
  ...RunList.properties,
  items: Type.Array(
    Type.Object({
      ...RunView.properties,
      spec: Type.Optional(RunView.properties.spec),
      weights: Type.Optional(RunView.properties.weights),
    }),
  ),
});

export const runsRoutes =
  (deps: RunsRouteDeps): FastifyPluginAsync =>
  async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const { runs } = deps;
    const serializedViews = new WeakMap<RunRecord, string>();

    postSubmission(fastify, {
      url: '/runs',
      doc: SUBMIT_RUN,
      body: RunRequest,
      view: RunView,
      submit: (body, opts) => runs.submit(body, opts),
      render: runView,
    });

    app.get(
      '/runs',
      {
        schema: {
          tags: ['runs'],
          summary: 'List runs, newest first',
          description:
            "With auth on, only the runs of the API key's owner. Items leave out `spec` and `weights` (the bulk of a run: " +
            'GET /v1/runs/{id} has them) unless `?view=full`.',
          querystring: ListRunsQuery,
          response: { 200: RunListView, 400: Problem, 401: Problem, 429: Problem },
        },
      },
      async (request) => {
        const { status, limit, offset, view } = request.query;
        const page = await runs.list({ ...(status ? { status } : {}), limit, offset }, scopeOf(request));
        return { items: page.items.map(view === 'full' ? runView : runSummary), total: page.total, limit, offset };
      },
    );

    app.get(
      '/runs/:id',
      { schema: { tags: ['runs'], summary: 'One run', params: RunParams, response: { 200: RunView, ...problems } } },
      async (request, reply) => {
        const run = await runs.view(request.params.id, scopeOf(request));
        // A run served from memory is the same object until it changes: serialize it once. runView
        // builds exactly RunView's fields, so the string is what the schema's serializer would write.
        let json = serializedViews.get(run);
        if (json === undefined) {
          json = JSON.stringify(runView(run));
          serializedViews.set(run, json);
        }
        // Fastify sends a string with a JSON content type as it is; the type provider only knows objects.
        return reply.type('application/json; charset=utf-8').send(json as unknown as RunViewT);
      },
    );

    app.get(
      '/runs/:id/metrics',
      {
        schema: {
          tags: ['runs'],
          summary: 'Per-epoch metrics and the final test metrics',
          params: RunParams,
          response: { 200: MetricsView, ...problems },
        },
      },
      async (request) => {
        const { run, epochs } = await runs.metrics(request.params.id, scopeOf(request));
        return {
          runId: run.id,
          status: run.status,
          epochs: epochs.map((e) => {
            const { details: d, ...row } = e;
            return {
              ...row,
              ...(d?.train ? { train: d.train } : {}),
              ...(d && d.val !== undefined ? { val: d.val } : {}),
              ...(d?.weights ? { weights: d.weights } : {}),
            };
          }),
          test: run.testLoss !== null && run.testAccuracy !== null ? { loss: run.testLoss, accuracy: run.testAccuracy, parts: run.testMetrics } : null,
        };
      },
    );

    app.get(
      '/runs/:id/events',
      {
        schema: {
          tags: ['runs'],
          summary: 'Server-Sent Events of a run',
          description:
            'Replays the stored events (queued, started, batch, epoch, completed | failed | cancelled), then follows live ones. ' +
            'Each event carries an `id:`; reconnect with `Last-Event-ID` (or `?lastEventId=`) to resume. The stream ends after the terminal event.',
          params: RunParams,
          querystring: Type.Object({ lastEventId: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_EVENT_ID })) }),
          produces: ['text/event-stream'],
          response: { 200: Type.String({ description: 'text/event-stream' }), ...problems },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const scope = scopeOf(request);
        await runs.get(id, scope);
        await streamRunEvents(request, reply, id, lastEventId(request, request.query), {
          bus: deps.bus,
          replay: (after) => runs.events(id, after, scope),
          isFinished: async () => isTerminalStatus((await runs.get(id, scope)).status),
        });
      },
    );

    app.post(
      '/runs/:id/cancel',
      {
        schema: {
          tags: ['runs'],
          summary: 'Cancel a run',
          description: 'A queued run is cancelled at once; a running one stops before its next batch (cancelRequested is true until then).',
          params: RunParams,
          response: { 202: RunView, ...problems },
        },
      },
      async (request, reply) => reply.code(202).send(runView(await runs.cancel(request.params.id, scopeOf(request)))),
    );

    app.get(
      '/runs/:id/model',
      {
        schema: {
          tags: ['runs'],
          summary: 'The trained model as tfjs model.json',
          description: "Load it with `tf.loadLayersModel('<base>/v1/runs/<id>/model')`: the weights manifest points at `model/weights.bin`.",
          params: RunParams,
          response: { 200: ModelView, ...problems },
        },
      },
      async (request, reply) => {
        const a = await runs.model(request.params.id, scopeOf(request));
        return reply.header('etag', `"${a.sha256}"`).send({
          format: 'layers-model',
          modelTopology: a.modelTopology,
          weightsManifest: [{ paths: ['model/weights.bin'], weights: a.weightSpecs as unknown[] }],
          sha256: a.sha256,
        });
      },
    );

    app.addContentTypeParser('image/png', { parseAs: 'buffer', bodyLimit: 1024 * 1024 }, (_req, body, done) => done(null, body));

    const PredictBody = Type.Union(
      [
        Type.Object(
          {
            images: Type.Array(Type.Array(Type.Number({ minimum: 0, maximum: 1 }), { minItems: PIXELS, maxItems: PIXELS }), {
              minItems: 1,
              maxItems: 256,
              description: 'Upright 28×28 grayscale images, row-major, ink bright on a dark background (EMNIST style), values in [0, 1].',
            }),
          },
          { additionalProperties: false },
        ),
        Type.Unsafe<Buffer>({ type: 'string', format: 'binary', description: 'One 28×28 PNG (Content-Type: image/png).' }),
      ],
      {
        // A vertical bar (an "I" or a "1"), so Swagger UI's "Try it out" works as it stands.
        examples: [{ images: [Array.from({ length: PIXELS }, (_, i) => (i % 28 >= 12 && i % 28 < 16 && i >= 4 * 28 && i < 24 * 28 ? 1 : 0))] }],
      },
    );

    app.post(
      '/runs/:id/predict',
      {
        schema: {
          tags: ['runs'],
          summary: 'Classify images with a trained run',
          description:
            'JSON `{"images": [[784 numbers], ...]}` or one 28×28 PNG as `image/png` (`?invert=true` for dark ink on white). ' +
            "Returns each image's class probabilities and its top class as the dataset's character.",
          params: RunParams,
          querystring: Type.Object({
            invert: Type.Optional(Type.Boolean({ default: false, description: 'PNG only: the image has dark ink on a light background.' })),
          }),
          body: PredictBody,
          response: {
            200: Type.Object({
              classNames: Type.Array(Type.String()),
              predictions: Type.Array(
                Type.Object({ class: Type.Integer(), label: Type.String(), probability: Type.Number(), probabilities: Type.Array(Type.Number()) }),
              ),
            }),
            ...problems,
          },
        },
      },
      async (request) => {
        const body: unknown = request.body;
        // The schema lets a JSON string through (the binary alternative is typed as a string for OpenAPI).
        if (!Buffer.isBuffer(body) && (typeof body !== 'object' || body === null || Array.isArray(body))) {
          throw new AppError(400, 'Invalid request', 'the body must be a JSON object {"images": [...]} or one PNG sent as image/png', '');
        }
        const decode = () => (Buffer.isBuffer(body) ? fromPng(body, request.query.invert ?? false) : fromArrays((body as { images: number[][] }).images));
        return runs.predict(request.params.id, decode, scopeOf(request));
      },
    );

    app.get(
      '/runs/:id/model/weights.bin',
      {
        schema: {
          tags: ['runs'],
          summary: 'The trained weights (binary, little-endian float32, in manifest order)',
          params: RunParams,
          produces: ['application/octet-stream'],
          response: { 200: Type.Unsafe<Buffer>({ type: 'string', format: 'binary' }), 401: Problem, 404: Problem, 409: Problem, 429: Problem },
        },
      },
      async (request, reply) => {
        const a = await runs.model(request.params.id, scopeOf(request));
        return reply
          .type('application/octet-stream')
          .header('etag', `"${a.sha256}"`)
          .header('x-content-sha256', a.sha256)
          .send(Buffer.from(a.weightData.buffer, a.weightData.byteOffset, a.weightData.byteLength));
      },
    );
  };
