// The Prisma client for Regula's store, connected through the node-postgres driver adapter.
// The client itself is generated into ./generated/prisma (`npm run prisma:generate`).
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.js';
import { parseDatabaseUrl } from './migrate.js';

export { Prisma, PrismaClient, RunStatus } from './generated/prisma/client.js';
export type { EpochMetric, ModelArtifact, Run, RunEvent } from './generated/prisma/client.js';

export interface CreatePrismaOptions {
  databaseUrl: string;
  /** Postgres schema holding the tables. Defaults to the URL's `?schema=`, else `public`. */
  schema?: string;
}

/** libpq `options` value setting search_path to exactly `schema` (spaces/backslashes escaped). */
function searchPathOption(schema: string): string {
  const ident = `"${schema.replaceAll('"', '""')}"`;
  return `-c search_path=${ident.replaceAll('\\', '\\\\').replaceAll(' ', '\\ ')}`;
}

/**
 * A PrismaClient over a pg pool. Queries are qualified with the schema by the adapter, and the
 * connections' search_path is set to it too, so raw SQL with unqualified names hits the same tables.
 * Call `$disconnect()` to close the pool.
 */
export function createPrisma(opts: CreatePrismaOptions): PrismaClient {
  const { connectionString, schema: urlSchema } = parseDatabaseUrl(opts.databaseUrl);
  const schema = opts.schema ?? urlSchema ?? 'public';
  const adapter = new PrismaPg({ connectionString, options: searchPathOption(schema) }, { schema });
  return new PrismaClient({ adapter });
}
