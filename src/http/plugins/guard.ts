/**
 * Who may call what, and how often. Three onRequest hooks, in order:
 *
 * 1. authenticate (AUTH=required, routes that need a key): `Authorization: Bearer <key>` → the
 *    request's principal, or the reason it has none;
 * 2. rate limit (@fastify/rate-limit, in memory, per process): RATE_LIMIT_PER_MINUTE requests per
 *    key, or per IP for requests without a valid key; health, readiness and metrics are exempt;
 * 3. refuse (AUTH=required): a route that needs a key and has no principal → 401.
 *
 * Every /v1 route but GET /v1/presets needs a key; /docs, /openapi.json, /healthz, /readyz and
 * /metrics never do.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { AppError } from '../../errors.js';
import { authenticate, type ApiKeyLookup } from '../../auth/authenticate.js';
import type { Principal, Scope } from '../../auth/principal.js';
import type { AuthMode } from '../../config.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's API key (null with auth off, and on open routes). */
    principal: Principal | null;
    /** Why the presented key (or its absence) was refused. */
    authFailure: string | null;
  }
}

export interface GuardOptions {
  auth: { mode: AuthMode; keys: ApiKeyLookup };
  /** Requests per minute per key or IP; 0 turns rate limiting off. */
  rateLimitPerMinute: number;
}

const OPEN_V1 = new Set(['/v1/presets']);
const NOT_LIMITED = new Set(['/healthz', '/readyz', '/metrics']);

/** Does this route (by its template) need an API key when auth is on? */
export function needsKey(route: string | undefined): boolean {
  return route !== undefined && route.startsWith('/v1/') && !OPEN_V1.has(route);
}

/** The owner whose runs and studies this request may see and create (null: auth off, everything). */
export function scopeOf(request: FastifyRequest): Scope {
  return request.principal?.owner ?? null;
}

export async function registerGuards(app: FastifyInstance, opts: GuardOptions): Promise<void> {
  app.decorateRequest('principal', null);
  app.decorateRequest('authFailure', null);
  const required = opts.auth.mode === 'required';

  if (required) {
    app.addHook('onRequest', async (request) => {
      if (!needsKey(request.routeOptions.url)) return;
      const outcome = await authenticate(request.headers.authorization, opts.auth.keys);
      if ('principal' in outcome) request.principal = outcome.principal;
      else request.authFailure = outcome.failure;
    });
  }

  if (opts.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      global: false,
      max: opts.rateLimitPerMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => (request.principal ? `key:${request.principal.keyId}` : `ip:${request.ip}`),
      allowList: (request) => NOT_LIMITED.has(request.routeOptions.url ?? ''),
      errorResponseBuilder: (_request, context) =>
        new AppError(429, 'Too Many Requests', `more than ${context.max} requests per minute (RATE_LIMIT_PER_MINUTE); retry in ${context.after}`),
    });
    app.addHook('onRequest', app.rateLimit());
  }

  if (required) {
    app.addHook('onRequest', async (request, reply) => {
      if (!needsKey(request.routeOptions.url) || request.principal) return;
      reply.header('www-authenticate', 'Bearer realm="regula"');
      throw new AppError(401, 'Unauthorized', request.authFailure ?? 'an API key is required: send "Authorization: Bearer <key>"');
    });
  }
}
