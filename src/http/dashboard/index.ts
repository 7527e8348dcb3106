/**
 * The web dashboard at `/`: static ES modules from web/ (no bundler, no CDN) and uPlot from
 * node_modules, served by the API itself. The pages talk to the same REST + SSE API as any client;
 * nothing here reads the database or the queue.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';

/** web/ at the repository root: three levels up from src/http/dashboard/ and from dist/http/dashboard/. */
export const WEB_ROOT = fileURLToPath(new URL('../../../web/', import.meta.url));

/** uPlot's dist folder (uPlot.esm.js, uPlot.min.css), wherever npm put the package. */
function uplotDist(): string {
  return dirname(createRequire(import.meta.url).resolve('uplot'));
}

/**
 * What the pages may load and where they may connect: only this origin. Inline scripts and styles
 * are refused (the pages have none); uPlot sets element styles from script, which CSP allows.
 */
const CSP = [
  "default-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  if (!existsSync(WEB_ROOT)) throw new Error(`the dashboard's files are missing: ${WEB_ROOT}`);
  const headers = (reply: FastifyReply, path: string) => {
    reply.header('x-content-type-options', 'nosniff');
    // Assets change with the code and are small: always revalidate (ETag), never serve a stale page.
    reply.header('cache-control', 'no-cache');
    if (path.endsWith('.html')) {
      reply.header('content-security-policy', CSP);
      reply.header('referrer-policy', 'no-referrer');
    }
  };
  // wildcard: false registers one route per file at start-up, so unknown paths stay the API's
  // problem+json 404 and /v1, /docs and /openapi.json are untouched.
  await app.register(fastifyStatic, { root: WEB_ROOT, prefix: '/', wildcard: false, index: ['index.html'], setHeaders: headers });
  await app.register(fastifyStatic, {
    root: uplotDist(),
    prefix: '/vendor/uplot/',
    wildcard: false,
    decorateReply: false,
    allowedPath: (path) => path === '/uPlot.esm.js' || path === '/uPlot.min.css',
    setHeaders: headers,
  });
};
