/**
 * The Fastify app: strict validation, one problem+json error handler, OpenAPI + Swagger UI,
 * health, and the /v1 routes. Built from its dependencies so tests can build it on their own.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { clientErrorHandler, registerProblems } from './plugins/problems.js';
import { registerSseStreams } from './sse.js';
import { validatorCompiler } from './validation.js';
import { healthRoutes, type ReadinessCheck } from './routes/health.js';
import { runsRoutes, type RunsRouteDeps } from './routes/runs.js';
import { presetsRoutes } from './routes/presets.js';
import { studiesRoutes } from './routes/studies.js';
import { chartsRoutes } from './routes/charts.js';
import { queueRoutes } from './routes/queue.js';
import { metricsRoutes } from './routes/metrics.js';
import { registerGuards, type GuardOptions } from './plugins/guard.js';
import { registerSessions } from './plugins/session.js';
import { dashboardRoutes } from './dashboard/index.js';
import type { SessionStore } from '../auth/sessions.js';
import type { StudiesService } from '../studies/service.js';
import type { QueueView } from '../queue/view.js';
import { HttpMetrics, registerQueueDepth } from '../metrics/http.js';
import { newRegistry, type Registry } from '../metrics/registry.js';

export interface AppDeps extends RunsRouteDeps, GuardOptions {
  studies: StudiesService;
  readiness: Record<string, ReadinessCheck>;
  queue: QueueView;
  /** The process's metrics registry (GET /metrics); a fresh one when absent. */
  metrics?: Registry;
  /** Dashboard login sessions (used with AUTH=required). */
  sessions: SessionStore;
}

export const API_VERSION = '0.1.0';

export async function buildApp(deps: AppDeps, options: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: 1024 * 1024, clientErrorHandler, ...options });
  app.setValidatorCompiler(validatorCompiler);
  registerProblems(app);
  registerSseStreams(app);

  const registry = deps.metrics ?? newRegistry();
  const http = new HttpMetrics(registry);
  registerQueueDepth(
    registry,
    () => deps.queue.counts(),
    (err) => app.log.warn({ err }, 'metrics: could not read the queue counts'),
  );
  app.addHook('onResponse', async (request, reply) => {
    http.observe(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });
  // Before the guards: a session cookie becomes the request's principal, which the guards then check like a key.
  registerSessions(app, { auth: deps.auth, sessions: deps.sessions });
  await registerGuards(app, deps);

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
        { name: 'queue', description: 'The training queue' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'dashboard', description: 'Browser sessions of the web dashboard at /' },
      ],
      components: {
        securitySchemes: {
          apiKey: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API key (`rg_...`, from `node dist/main.js create-key --owner <name>`) as `Authorization: Bearer <key>`. ' +
              'Required by every /v1 route but /v1/presets when the server runs with AUTH=required.',
          },
        },
      },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes(deps.readiness));
  await app.register(metricsRoutes(registry));
  await app.register(runsRoutes(deps), { prefix: '/v1' });
  await app.register(presetsRoutes, { prefix: '/v1' });
  await app.register(studiesRoutes(deps), { prefix: '/v1' });
  await app.register(chartsRoutes(deps), { prefix: '/v1' });
  await app.register(queueRoutes(deps), { prefix: '/v1' });
  await app.register(dashboardRoutes);
  return app;
}
