/** Training-curve charts of runs and studies, as SVG (or PNG), rendered with Vega-Lite. */
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { chartPng, overlayChart, runAccuracyChart, runLossChart } from '../../charts/index.js';
import type { RunsService } from '../../runs/service.js';
import type { StudiesService } from '../../studies/service.js';
import { Problem } from '../schemas.js';
import { scopeOf } from '../plugins/guard.js';

export interface ChartsRouteDeps {
  runs: RunsService;
  studies: StudiesService;
}

const Image = Type.Unsafe<string | Buffer>({ type: 'string', description: 'image/svg+xml or image/png' });
const problems = { 400: Problem, 401: Problem, 404: Problem, 429: Problem };

/** A chart route's schema: the run or study `:id`, and `:chart`, chart `a` or `b` as .svg or .png. */
function chartSchema<A extends string, B extends string>(summary: string, [a, b]: [A, B]) {
  const chart = Type.Union([Type.Literal(`${a}.svg`), Type.Literal(`${b}.svg`), Type.Literal(`${a}.png`), Type.Literal(`${b}.png`)]);
  return {
    tags: ['charts'],
    summary,
    params: Type.Object({ id: Type.String({ format: 'uuid' }), chart }),
    produces: ['image/svg+xml', 'image/png'],
    response: { 200: Image, ...problems },
  };
}

const RunChart = chartSchema('Training vs validation curves of a run (loss or accuracy per epoch)', ['loss', 'accuracy']);
const StudyChart = chartSchema('Validation accuracy or loss of every run of a study, overlaid', ['val-accuracy', 'val-loss']);

async function send(reply: FastifyReply, svg: string, format: 'svg' | 'png'): Promise<FastifyReply> {
  reply.header('cache-control', 'no-cache');
  if (format === 'png') return reply.type('image/png').send(await chartPng(svg));
  return reply.type('image/svg+xml; charset=utf-8').send(svg);
}

export const chartsRoutes =
  (deps: ChartsRouteDeps): FastifyPluginAsync =>
  async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/runs/:id/charts/:chart', { schema: RunChart }, async (request, reply) => {
      const { run, epochs } = await deps.runs.metrics(request.params.id, scopeOf(request));
      const [kind, format] = request.params.chart.split('.') as ['loss' | 'accuracy', 'svg' | 'png'];
      const title = `${run.name ?? run.id}: ${kind}`;
      return send(reply, kind === 'loss' ? await runLossChart(title, epochs) : await runAccuracyChart(title, epochs), format);
    });

    app.get('/studies/:id/charts/:chart', { schema: StudyChart }, async (request, reply) => {
      const { study, epochs } = await deps.studies.curves(request.params.id, scopeOf(request));
      const [kind, format] = request.params.chart.split('.') as ['val-accuracy' | 'val-loss', 'svg' | 'png'];
      const seeds = (r: (typeof study.runs)[number]) => (r.spec as { training?: { seed?: number } } | null)?.training?.seed;
      const repeated = new Set(study.runs.map((r) => r.variant)).size < study.runs.length;
      // With repeated seeds: one line per run, one colour and legend entry per variant.
      const series = study.runs.map((r) => ({
        label: repeated ? `${r.variant ?? r.id} (seed ${seeds(r) ?? '?'})` : (r.variant ?? r.id),
        ...(repeated ? { group: r.variant ?? r.id } : {}),
        points: (epochs.get(r.id) ?? []).map((e) => ({ epoch: e.epoch, value: kind === 'val-loss' ? e.valLoss : e.valAccuracy })),
      }));
      const what = kind === 'val-loss' ? 'Validation loss' : 'Validation accuracy';
      return send(reply, await overlayChart(`${study.name ?? study.id}: ${what.toLowerCase()}`, what, series), format);
    });
  };
