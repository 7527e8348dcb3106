/** The OpenAPI document, generated from the route schemas (the committed copy lives in openapi/). */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunEventBus } from '../events/bus.js';
import type { RunsService } from '../runs/service.js';
import type { StudiesService } from '../studies/service.js';
import type { QueueView } from '../queue/view.js';
import type { ApiKeyLookup } from '../auth/authenticate.js';
import type { SessionStore } from '../auth/sessions.js';
import { buildApp } from './app.js';

export const OPENAPI_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'openapi', 'openapi.json');

/** Builds the app with dependencies that refuse to be used: only the route schemas are read. */
export async function generateOpenApi(): Promise<string> {
  const unused = new Proxy(
    {},
    {
      get: () => {
        throw new Error('not available while generating the OpenAPI document');
      },
    },
  );
  const app = await buildApp(
    {
      runs: unused as RunsService,
      studies: unused as StudiesService,
      bus: unused as RunEventBus,
      queue: unused as QueueView,
      readiness: {},
      auth: { mode: 'required', keys: unused as ApiKeyLookup },
      rateLimitPerMinute: 0,
      sessions: unused as SessionStore,
    },
    { logger: false },
  );
  await app.ready();
  const doc = JSON.stringify(app.swagger(), null, 2) + '\n';
  await app.close();
  return doc;
}

export async function readCommittedOpenApi(): Promise<string> {
  return readFile(OPENAPI_FILE, 'utf8');
}

if (process.argv[1] !== undefined && import.meta.url === `file://${path.resolve(process.argv[1])}`) {
  await writeFile(OPENAPI_FILE, await generateOpenApi());
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`);
}
