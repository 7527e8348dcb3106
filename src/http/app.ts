/**
 * The Fastify app: strict validation, one problem+json error handler, OpenAPI + Swagger UI,
 * health, and the /v1 routes. Built from its dependencies so tests can build it on their own.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { registerProblems } from './plugins/problems.js';
import { validatorCompiler } from './validation.js';
import { healthRoutes, type ReadinessCheck } from './routes/health.js';
import { runsRoutes, type RunsRouteDeps } from './routes/runs.js';
import { presetsRoutes } from './routes/presets.js';
import { studiesRoutes } from './routes/studies.js';
import { chartsRoutes } from './routes/charts.js';
import type { StudiesService } from '../studies/service.js';

export interface AppDeps extends RunsRouteDeps {
  studies: StudiesService;
  readiness: Record<string, ReadinessCheck>;
}

export const API_VERSION = '0.1.0';

export async function buildApp(deps: AppDeps, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: 1024 * 1024, ...options });
  app.setValidatorCompiler(validatorCompiler);
  registerProblems(app);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Regula',
        version: API_VERSION,
        description:
          'Training as a service: submit a Keras-style CNN with L1 / L2 / Elastic Net regularizers on kernels, biases and activities, ' +
          'train it on EMNIST with TensorFlow.js, follow it over Server-Sent Events, and read back metrics and weights.',
      },
      tags: [
        { name: 'runs', description: 'Training runs' },
        { name: 'studies', description: 'Many runs from one request, compared side by side' },
        { name: 'presets', description: "The tutorial's configurations" },
        { name: 'charts', description: 'Training curves as SVG or PNG' },
        { name: 'health', description: 'Liveness and readiness' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes(deps.readiness));
  await app.register(runsRoutes(deps), { prefix: '/v1' });
  await app.register(presetsRoutes, { prefix: '/v1' });
  await app.register(studiesRoutes(deps), { prefix: '/v1' });
  await app.register(chartsRoutes(deps), { prefix: '/v1' });
  return app;
}
