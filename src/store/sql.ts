/**
 * Plain SQL beside Prisma, through node-postgres: what the hot paths (a run's submission, an epoch's
 * checkpoint) send as one statement or a short transaction on one pooled connection. Prisma's
 * interactive transactions cost several round trips and a transaction-manager hop each, and expire
 * 5 s after they start; a statement here only waits on the database.
 *
 * Without a database URL (a repository built on a bare Prisma client, as some tests do) the same
 * SQL goes through Prisma's raw queries instead.
 */
import pg from 'pg';
import type { PrismaClient } from './prisma.js';
import { parseDatabaseUrl, quoteIdent } from './migrate.js';

/** Runs a statement with $1… parameters and returns its rows. */
export interface Sql {
  query<R>(text: string, params: readonly unknown[]): Promise<R[]>;
}

/** Connections kept for the API's submissions and a worker's checkpoint writes. */
const POOL_MAX = 10;

/** Prisma interactive transactions for submissions (the fallback): requests with the same key may wait on each other. */
const PRISMA_TX = { maxWait: 10_000, timeout: 30_000 } as const;

interface RawQueries {
  $queryRawUnsafe<T>(query: string, ...values: unknown[]): Promise<T>;
}

const prismaSql = (db: RawQueries): Sql => ({ query: <R>(text: string, params: readonly unknown[]) => db.$queryRawUnsafe<R[]>(text, ...params) });

const pgSql = (c: pg.Pool | pg.PoolClient): Sql => ({
  query: async <R>(text: string, params: readonly unknown[]) => (await c.query(text, params as unknown[])).rows as R[],
});

export class SqlPool {
  private pool: pg.Pool | undefined;

  constructor(
    private readonly db: PrismaClient,
    private readonly databaseUrl: string | undefined,
  ) {}

  /** The node-postgres pool (opened on first use), or undefined without a database URL. */
  raw(): pg.Pool | undefined {
    if (!this.databaseUrl) return undefined;
    if (!this.pool) {
      const { connectionString, schema } = parseDatabaseUrl(this.databaseUrl);
      const searchPath = quoteIdent(schema ?? 'public')
        .replaceAll('\\', '\\\\')
        .replaceAll(' ', '\\ ');
      // Idle connections close after a few seconds, and an idle pool never keeps a script alive.
      this.pool = new pg.Pool({ connectionString, options: `-c search_path=${searchPath}`, max: POOL_MAX, idleTimeoutMillis: 5000, allowExitOnIdle: true });
      this.pool.on('error', () => {}); // an idle connection dropped by the server: the next query opens another
    }
    return this.pool;
  }

  /** One statement (atomic by itself). */
  query<R>(text: string, params: readonly unknown[]): Promise<R[]> {
    const pool = this.raw();
    return pool ? pgSql(pool).query<R>(text, params) : prismaSql(this.db).query<R>(text, params);
  }

  /** `fn`'s statements in one transaction on one connection; rolled back if it throws. */
  async transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const pool = this.raw();
    if (!pool) return this.db.$transaction((tx) => fn(prismaSql(tx)), PRISMA_TX);
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(pgSql(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e)); // the connection is not reused
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool?.end();
    this.pool = undefined;
  }
}
