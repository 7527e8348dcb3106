/**
 * Who may call what, and how often. Three onRequest hooks, in order:
 *
 * 1. rate limit (@fastify/rate-limit, counted in Redis, so every API replica shares one budget):
 *    RATE_LIMIT_PER_MINUTE requests per presented API key (counted by its sha256, before any
 *    database lookup), or per IP for requests without one; health, readiness and metrics are exempt;
 * 2. authenticate (AUTH=required, routes that need a key): `Authorization: Bearer <key>` → the
 *    request's principal, or the reason it has none. A key that turns out not to exist counts against
 *    its client's IP, and an IP past RATE_LIMIT_PER_MINUTE such failures gets a 429 *before* the
 *    lookup: random keys cannot buy database work with fresh per-key budgets;
 * 3. refuse (AUTH=required): a route that needs a key and has no principal → 401.
 *
 * Every /v1 route but GET /v1/presets needs a key; /docs, /openapi.json, /healthz, /readyz and
 * /metrics never do.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { RunEventBus } from '../../events/bus.js';
import { AppError } from '../../errors.js';
import { authenticate, type ApiKeyLookup } from '../../auth/authenticate.js';
import { hashApiKey, isWellFormedApiKey, parseBearer } from '../../auth/keys.js';
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
  /** Its Redis holds the counts, shared by every replica. */
  bus: RunEventBus;
}

/** The bucket a request is counted in, known before any lookup: the presented key's hash, or the IP. */
function limitKey(request: FastifyRequest): string {
  if (request.principal) return `key:${request.principal.keyId}`; // e.g. a dashboard session
  const bearer = parseBearer(request.headers.authorization);
  if ('token' in bearer && isWellFormedApiKey(bearer.token)) return `key:${hashApiKey(bearer.token)}`;
  return `ip:${request.ip}`;
}

const OPEN_V1 = new Set(['/v1/presets']);
const NOT_LIMITED = new Set(['/healthz', '/readyz', '/metrics']);

/** Does this route (by its template) need an API key when auth is on? */
export function needsKey(route: string | undefined): boolean {
  return route?.startsWith('/v1/') === true && !OPEN_V1.has(route);
}

/** The owner whose runs and studies this request may see and create (null: auth off, everything). */
export function scopeOf(request: FastifyRequest): Scope {
  return request.principal?.owner ?? null;
}

export async function registerGuards(app: FastifyInstance, opts: GuardOptions): Promise<void> {
  app.decorateRequest('principal', null);
  app.decorateRequest('authFailure', null);
  const required = opts.auth.mode === 'required';
  const max = opts.rateLimitPerMinute;
  let failedLookups: ReturnType<FastifyInstance['createRateLimit']> | null = null;

  if (max > 0) {
    await app.register(rateLimit, {
      global: false,
      max,
      timeWindow: 60_000,
      redis: opts.bus.rateLimitConnection,
      nameSpace: `${opts.bus.keyPrefix}:ratelimit:`,
      // Redis away: serve rather than refuse everyone (submissions fail on their own without Redis).
      skipOnError: true,
      keyGenerator: limitKey,
      allowList: (request) => NOT_LIMITED.has(request.routeOptions.url ?? ''),
      errorResponseBuilder: (_request, context) =>
        new AppError(429, 'Too Many Requests', `more than ${context.max} requests per minute (RATE_LIMIT_PER_MINUTE); retry in ${context.after}`),
    });
    app.addHook('onRequest', app.rateLimit());
    if (required) failedLookups = app.createRateLimit({ keyGenerator: (request: FastifyRequest) => `badkey:${request.ip}` });
  }

  if (required) {
    app.addHook('onRequest', async (request, reply) => {
      if (!needsKey(request.routeOptions.url) || request.principal) return;
      const bearer = parseBearer(request.headers.authorization);
      const lookup = 'token' in bearer && isWellFormedApiKey(bearer.token);
      if (lookup && failedLookups) {
        const seen = await failedLookups(request, { increment: false });
        if (!seen.isAllowed && seen.remaining === 0) {
          reply.header('retry-after', String(seen.ttlInSeconds));
          throw new AppError(
            429,
            'Too Many Requests',
            `more than ${max} requests with unknown API keys per minute from this address (RATE_LIMIT_PER_MINUTE); retry in ${seen.ttlInSeconds} seconds`,
          );
        }
      }
      const outcome = await authenticate(request.headers.authorization, opts.auth.keys);
      if ('principal' in outcome) request.principal = outcome.principal;
      else {
        request.authFailure = outcome.failure;
        if (lookup && failedLookups) await failedLookups(request);
      }
    });
  }

  if (required) {
    app.addHook('onRequest', async (request, reply) => {
      if (!needsKey(request.routeOptions.url) || request.principal) return;
      reply.header('www-authenticate', 'Bearer realm="regula"');
      throw new AppError(401, 'Unauthorized', request.authFailure ?? 'an API key is required: send "Authorization: Bearer <key>"');
    });
  }
}
