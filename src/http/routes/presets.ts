/** GET /v1/presets: the tutorial's configurations, usable as {"preset": name}. */
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import { PRESETS, PRESET_NAMES } from '../../run-spec/presets.js';

const PresetView = Type.Object({
  name: Type.String(),
  description: Type.String(),
  model: Type.Object({ layers: Type.Array(Type.Unknown()) }),
  tutorial: Type.Object({
    testLoss: Type.Union([Type.Number(), Type.Null()]),
    testAccuracy: Type.Union([Type.Number(), Type.Null()]),
    note: Type.String(),
  }),
});

export const presetsRoutes: FastifyPluginAsync = async (app) => {
  app.get(
    '/presets',
    {
      schema: {
        tags: ['presets'],
        summary: "The tutorial's eight configurations",
        security: [],
        description:
          'Submit one with `{"preset": "<name>"}` plus optional `training` / `dataset` overrides. ' +
          '`tutorial` gives the figures the tutorial reports (25 epochs on EMNIST Balanced) where it gives any.',
        response: { 200: Type.Object({ items: Type.Array(PresetView) }) },
      },
    },
    async () => ({
      items: PRESET_NAMES.map((n) => {
        const p = PRESETS[n];
        return { name: p.name, description: p.description, model: { layers: p.layers }, tutorial: p.tutorial };
      }),
    }),
  );
};
