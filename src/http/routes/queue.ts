/** GET /v1/queue: the runs queue at a glance, and where one waiting run stands. */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { RunsService } from '../../runs/service.js';
import { QUEUE_STATES, type QueueView } from '../../queue/view.js';
import { Problem } from '../schemas.js';
import { scopeOf } from '../plugins/guard.js';

export interface QueueRouteDeps {
  runs: RunsService;
  queue: QueueView;
}

const Counts = Type.Object(Object.fromEntries(QUEUE_STATES.map((s) => [s, Type.Integer({ minimum: 0 })])), {
  description:
    'Jobs by BullMQ state, over all owners. `prioritized`: waiting jobs with a priority (every Regula run has one); `waiting`: jobs without. ' +
    '`completed` and `failed` count the finished jobs BullMQ still keeps (the last 1000 and 5000).',
});

const QueueViewSchema = Type.Object({
  counts: Counts,
  run: Type.Union([
    Type.Object({
      id: Type.String({ format: 'uuid' }),
      state: Type.Union([Type.String(), Type.Null()], { description: "BullMQ's state of the run's job; null when the queue holds none." }),
      position: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
        description: 'Among waiting jobs, in the order workers take them: 1 is next. Null unless the job is waiting.',
      }),
    }),
    Type.Null(),
  ]),
});

export const queueRoutes =
  (deps: QueueRouteDeps): FastifyPluginAsync =>
  async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/queue',
      {
        schema: {
          tags: ['queue'],
          summary: "Queue depth by state, and a run's place in the queue",
          description:
            'Workers take waiting runs by priority (1 first), then in submission order; a running run is never preempted. ' +
            "`?runId=` gives that run's position among the waiting runs (404 for a run you cannot see).",
          querystring: Type.Object({ runId: Type.Optional(Type.String({ format: 'uuid' })) }),
          response: { 200: QueueViewSchema, 400: Problem, 401: Problem, 404: Problem, 429: Problem },
        },
      },
      async (request) => {
        const { runId } = request.query;
        if (runId !== undefined) await deps.runs.get(runId, scopeOf(request));
        const [counts, where] = await Promise.all([deps.queue.counts(), runId !== undefined ? deps.queue.position(runId) : null]);
        return { counts, run: runId !== undefined && where ? { id: runId, ...where } : null };
      },
    );
  };
