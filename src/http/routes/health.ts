/** Liveness and readiness. */
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';

export type ReadinessCheck = () => Promise<void>;

const Checks = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Record(Type.String(), Type.String()),
});

export const healthRoutes =
  (checks: Record<string, ReadinessCheck>): FastifyPluginAsync =>
  async (app) => {
    app.get(
      '/healthz',
      { schema: { tags: ['health'], summary: 'Liveness', security: [], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
      async () => ({
        status: 'ok' as const,
      }),
    );

    app.get(
      '/readyz',
      { schema: { tags: ['health'], summary: 'Readiness: PostgreSQL and Redis answer', security: [], response: { 200: Checks, 503: Checks } } },
      async (_request, reply) => {
        const results: Record<string, string> = {};
        await Promise.all(
          Object.entries(checks).map(async ([name, check]) => {
            try {
              await withTimeout(check(), 2000);
              results[name] = 'ok';
            } catch (err) {
              results[name] = err instanceof Error ? err.message : String(err);
            }
          }),
        );
        const ok = Object.values(results).every((r) => r === 'ok');
        return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks: results });
      },
    );
  };

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
