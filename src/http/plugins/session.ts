/**
 * Dashboard sessions (see src/auth/sessions.ts for the design):
 *
 *   GET    /auth/session   {auth: "off" | "required", owner, csrfToken, expiresAt}: who the browser is
 *   POST   /auth/session   {key}: checks the API key, sets the session cookie (HttpOnly, SameSite=Strict)
 *   DELETE /auth/session   logs out (needs X-CSRF-Token)
 *
 * An onRequest hook, added before the guard's (src/http/plugins/guard.ts), turns a valid session
 * cookie into the request's principal when the request has no Authorization header; the guard then
 * treats it like a key. A request authenticated by the cookie that changes state (any method but
 * GET/HEAD/OPTIONS) must carry the session's CSRF token in X-CSRF-Token, or it is a 403: SameSite
 * already keeps other sites' forms out, the token also covers same-site subdomains and old browsers.
 * Bearer requests are untouched (no cookie, no CSRF: nothing a browser sends on its own).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { authenticate, type ApiKeyLookup } from '../../auth/authenticate.js';
import { hashApiKey } from '../../auth/keys.js';
import { sameToken, SESSION_TTL_SECONDS, type SessionRecord, type SessionStore } from '../../auth/sessions.js';
import type { AuthMode } from '../../config.js';
import { Problem } from '../schemas.js';

export const SESSION_COOKIE = 'regula_session';
export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

declare module 'fastify' {
  interface FastifyRequest {
    /** The dashboard session that authenticated this request, if it was the cookie. */
    session: SessionRecord | null;
  }
}

export interface SessionPluginOptions {
  auth: { mode: AuthMode; keys: ApiKeyLookup };
  sessions: SessionStore;
}

/** The value of one cookie of the request's Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function isHttps(request: FastifyRequest): boolean {
  return request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
}

function setCookie(reply: FastifyReply, request: FastifyRequest, value: string, maxAge: number): void {
  const attrs = [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${maxAge}`];
  if (isHttps(request)) attrs.push('Secure');
  reply.header('set-cookie', attrs.join('; '));
}

const SessionView = Type.Object({
  auth: Type.Union([Type.Literal('off'), Type.Literal('required')]),
  owner: Type.Union([Type.String(), Type.Null()], { description: 'The logged-in owner; null with auth off or when not logged in.' }),
  csrfToken: Type.Union([Type.String(), Type.Null()], { description: 'Send it as X-CSRF-Token on every POST/DELETE made with the session cookie.' }),
  expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

export function registerSessions(app: FastifyInstance, opts: SessionPluginOptions): void {
  const required = opts.auth.mode === 'required';
  app.decorateRequest('session', null);

  if (required) {
    app.addHook('onRequest', async (request) => {
      if (request.headers.authorization !== undefined) return;
      const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
      if (!token) return;
      const session = await opts.sessions.get(token);
      if (!session) return;
      // The key may have been revoked since the login: sessions never outlive their key.
      const key = await opts.auth.keys.findByHash(session.keyHash);
      if (!key || key.revokedAt) return;
      if (!SAFE_METHODS.has(request.method)) {
        const sent = request.headers[CSRF_HEADER];
        if (typeof sent !== 'string' || !sameToken(sent, session.csrf)) {
          throw new AppError(403, 'Forbidden', `a request made with the session cookie must send the session's CSRF token in the ${CSRF_HEADER} header`);
        }
      }
      request.session = session;
      request.principal = { keyId: key.id, owner: key.owner };
    });
  }

  const api = app.withTypeProvider<TypeBoxTypeProvider>();
  const view = (s: SessionRecord | null) => ({
    auth: opts.auth.mode,
    owner: s?.owner ?? null,
    csrfToken: s?.csrf ?? null,
    expiresAt: s?.expiresAt ?? null,
  });

  api.get(
    '/auth/session',
    {
      schema: {
        tags: ['dashboard'],
        summary: "The browser's dashboard session",
        description: 'Whether the server needs a key (auth) and, with a valid session cookie, its owner and CSRF token.',
        security: [],
        response: { 200: SessionView },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return view(request.session);
    },
  );

  api.post(
    '/auth/session',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'Log the dashboard in with an API key',
        description:
          'Checks the key and sets an HttpOnly, SameSite=Strict session cookie (12 hours; ends at once when the key is revoked). ' +
          'The key is not kept in the browser. POSTs and DELETEs made with the cookie need the returned csrfToken as X-CSRF-Token.',
        security: [],
        body: Type.Object({ key: Type.String({ minLength: 1, maxLength: 200, description: 'An API key (rg_...).' }) }, { additionalProperties: false }),
        response: { 200: SessionView, 400: Problem, 401: Problem, 429: Problem },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      if (!required) return view(null);
      const key = request.body.key.trim();
      const outcome = await authenticate(`Bearer ${key}`, opts.auth.keys);
      if (!('principal' in outcome)) throw new AppError(401, 'Unauthorized', outcome.failure, '/key');
      const { token, record } = await opts.sessions.create(outcome.principal, hashApiKey(key));
      setCookie(reply, request, token, SESSION_TTL_SECONDS);
      return view(record);
    },
  );

  api.delete(
    '/auth/session',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'Log the dashboard out',
        security: [],
        response: { 204: Type.Null(), 403: Problem },
      },
    },
    async (request, reply) => {
      const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
      // The onRequest hook checked the CSRF token of a live session; a dead one is only cleared.
      if (token && request.session) await opts.sessions.delete(token);
      setCookie(reply, request, '', 0);
      return reply.code(204).send(null);
    },
  );
}
