// Offline migration runner: applies prisma/migrations/*/migration.sql the way `prisma migrate deploy`
// does, without Prisma's (downloaded) schema engine, and keeps Prisma's own `_prisma_migrations`
// bookkeeping so that a later `prisma migrate deploy` / `prisma migrate status` agrees with it.
//
// Fidelity with prisma-engines (schema-engine/connectors/...):
// - `_prisma_migrations` DDL: sql-schema-connector/src/flavour/postgres.rs `create_migrations_table`.
// - Lock: the same session advisory lock Prisma Migrate takes, `pg_advisory_lock(72707369)`, so this
//   runner, other instances of it and a real `prisma migrate` exclude each other (per database).
// - Checksum: schema-connector/src/checksum.rs — SHA-256 of the script text, lowercase hex,
//   zero-padded; comparison accepts the script with CRLF->LF and LF->CRLF line endings and the
//   legacy non-zero-padded hex, exactly like `script_matches_checksum`.
// - Order: migration directories sorted with `localeCompare`, as the Prisma CLI lists them.
// - A row is "applied" when finished_at is set and rolled_back_at is null; a row with neither is
//   a failed migration, which blocks further migrations (Prisma's P3009) until resolved.
// Unlike Prisma, each migration runs inside one transaction together with its bookkeeping row, so
// a failing migration leaves nothing behind and can simply be fixed and retried.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';

export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/regula';

/** The advisory lock key Prisma Migrate uses (prisma-engines, flavour/postgres.rs). */
export const PRISMA_MIGRATE_LOCK_KEY = 72707369;

const MIGRATIONS_TABLE = '_prisma_migrations';
const LOCK_TIMEOUT_MS = 120_000;

export interface MigrateOptions {
  databaseUrl: string;
  /** Postgres schema to migrate (created if missing). Defaults to the URL's `?schema=`, else `public`. */
  schema?: string;
  log?: (message: string) => void;
  /** Override the migrations directory (default: `<package root>/prisma/migrations`). */
  migrationsDir?: string;
}

export interface MigrateResult {
  /** Names of the migrations applied by this call, in order. */
  applied: string[];
}

export interface MigrationFile {
  name: string;
  script: string;
  checksum: string;
}

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  rolled_back_at: Date | null;
  applied_steps_count: number;
}

/** Prisma's migration checksum: SHA-256 of the script's UTF-8 bytes as 64 lowercase hex digits. */
export function migrationChecksum(script: string): string {
  return createHash('sha256').update(script, 'utf8').digest('hex');
}

/** Port of prisma-engines' `script_matches_checksum` (line-ending agnostic, legacy format aware). */
export function scriptMatchesChecksum(script: string, checksum: string): boolean {
  const variants = [script, script.replaceAll('\r\n', '\n'), script.replaceAll('\n', '\r\n')];
  return variants.some((variant) => {
    const digest = createHash('sha256').update(variant, 'utf8').digest();
    const rendered =
      checksum.length !== 0 && checksum.length !== 64
        ? [...digest].map((byte) => byte.toString(16)).join('') // legacy: no zero padding
        : digest.toString('hex');
    return rendered === checksum;
  });
}

/** The package root: the nearest ancestor of this module holding a package.json (src/ or dist/ alike). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('migrate: cannot find the package root (no package.json above src/store)');
    dir = parent;
  }
}

export function defaultMigrationsDir(): string {
  return join(packageRoot(), 'prisma', 'migrations');
}

/** Reads the migrations the way the Prisma CLI does: every subdirectory, sorted, with its migration.sql. */
export function readMigrations(migrationsDir: string = defaultMigrationsDir()): MigrationFile[] {
  if (!existsSync(migrationsDir)) throw new Error(`migrate: migrations directory not found: ${migrationsDir}`);
  const lockFile = join(migrationsDir, 'migration_lock.toml');
  if (existsSync(lockFile)) {
    const provider = /^\s*provider\s*=\s*"([^"]*)"/m.exec(readFileSync(lockFile, 'utf8'))?.[1];
    if (provider !== undefined && provider !== 'postgresql') {
      throw new Error(`migrate: ${lockFile} is for provider "${provider}", not "postgresql"`);
    }
  }
  return readdirSync(migrationsDir)
    .filter((name) => statSync(join(migrationsDir, name)).isDirectory())
    .sort((a, b) => a.localeCompare(b))
    .map((name) => {
      const file = join(migrationsDir, name, 'migration.sql');
      if (!existsSync(file)) throw new Error(`migrate: ${file} is missing`);
      const script = readFileSync(file, 'utf8');
      return { name, script, checksum: migrationChecksum(script) };
    });
}

/** Splits Prisma's `?schema=` convention off a connection URL (pg does not understand it). */
export function parseDatabaseUrl(databaseUrl: string): { connectionString: string; schema: string | undefined } {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new Error('migrate: DATABASE_URL is not a valid URL');
  }
  const schema = url.searchParams.get('schema') ?? undefined;
  url.searchParams.delete('schema');
  return { connectionString: url.toString(), schema: schema === '' ? undefined : schema };
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Applies all pending migrations; safe to call concurrently from several processes. */
export async function migrate(opts: MigrateOptions): Promise<MigrateResult> {
  const log = opts.log ?? (() => {});
  const { connectionString, schema: urlSchema } = parseDatabaseUrl(opts.databaseUrl);
  const schema = opts.schema ?? urlSchema ?? 'public';
  const migrations = readMigrations(opts.migrationsDir);

  const client = new pg.Client({ connectionString, application_name: 'regula-migrate' });
  client.on('error', (err) => log(`migrate: connection error: ${err.message}`)); // surfaced by the pending query
  await client.connect();
  let locked = false;
  try {
    await client.query(`SET lock_timeout = ${LOCK_TIMEOUT_MS}`);
    try {
      await client.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATE_LOCK_KEY]);
    } catch (err) {
      throw new Error(`migrate: could not take the migration lock within ${LOCK_TIMEOUT_MS / 1000}s`, { cause: err });
    }
    locked = true;
    await client.query('SET lock_timeout = 0');

    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
    // Exactly the one schema, like Prisma's connection: unqualified names in migration.sql land in it.
    await client.query(`SET search_path TO ${quoteIdent(schema)}`);

    const rows = await loadMigrationRows(client, schema);
    const pending = pendingMigrations(migrations, rows, log);
    if (pending.length > 0) log(`${pending.length} pending migration(s) for schema "${schema}"`);

    const applied: string[] = [];
    for (const migration of pending) {
      log(`applying migration ${migration.name}`);
      const id = randomUUID();
      await client.query('BEGIN');
      try {
        await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (id, checksum, started_at, migration_name) VALUES ($1, $2, now(), $3)`, [
          id,
          migration.checksum,
          migration.name,
        ]);
        await client.query(migration.script); // simple query protocol: multi-statement scripts allowed
        await client.query(`UPDATE ${MIGRATIONS_TABLE} SET applied_steps_count = applied_steps_count + 1, finished_at = clock_timestamp() WHERE id = $1`, [id]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        const message = err instanceof Error ? err.message : String(err);
        throw new Error(`migrate: migration ${migration.name} failed (rolled back): ${message}`, { cause: err });
      }
      applied.push(migration.name);
    }
    log(applied.length === 0 ? `schema "${schema}" is up to date` : `applied ${applied.length} migration(s) to schema "${schema}"`);
    return { applied };
  } finally {
    if (locked) await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK_KEY]).catch(() => {});
    await client.end().catch(() => {});
  }
}

/** Creates `_prisma_migrations` when missing (refusing a non-empty unmanaged schema, like Prisma's P3005). */
async function loadMigrationRows(client: pg.Client, schema: string): Promise<MigrationRow[]> {
  const tables = await client.query<{ table_name: string }>(
    `SELECT c.relname AS table_name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname = $1`,
    [schema],
  );
  const names = tables.rows.map((row) => row.table_name);
  if (!names.includes(MIGRATIONS_TABLE)) {
    if (names.length > 0) {
      throw new Error(
        `migrate: schema "${schema}" is not empty (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''}) ` +
          `but has no ${MIGRATIONS_TABLE} table; baseline it first (see Prisma's P3005)`,
      );
    }
    // Same DDL as prisma-engines' PostgresFlavour::create_migrations_table.
    await client.query(`CREATE TABLE ${MIGRATIONS_TABLE} (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`);
    return [];
  }
  const result = await client.query<MigrationRow>(
    `SELECT id, checksum, finished_at, migration_name, rolled_back_at, applied_steps_count
     FROM ${MIGRATIONS_TABLE} ORDER BY started_at ASC`,
  );
  return result.rows;
}

function pendingMigrations(migrations: MigrationFile[], rows: MigrationRow[], log: (m: string) => void): MigrationFile[] {
  const failed = rows.filter((row) => row.finished_at === null && row.rolled_back_at === null);
  if (failed.length > 0) {
    throw new Error(
      `migrate: migration(s) ${failed.map((row) => row.migration_name).join(', ')} failed earlier and are not resolved ` +
        `(Prisma P3009); fix the database and mark them with \`prisma migrate resolve\``,
    );
  }
  const applied = rows.filter((row) => row.finished_at !== null && row.rolled_back_at === null);
  const byName = new Map(migrations.map((migration) => [migration.name, migration]));
  for (const row of applied) {
    const file = byName.get(row.migration_name);
    if (file === undefined) {
      log(`warning: migration ${row.migration_name} is recorded as applied but is not in the migrations directory`);
      continue;
    }
    if (!scriptMatchesChecksum(file.script, row.checksum)) {
      throw new Error(
        `migrate: migration ${row.migration_name} was modified after it was applied ` +
          `(recorded checksum ${row.checksum}, file checksum ${file.checksum}); restore the original migration.sql`,
      );
    }
  }
  // Like Prisma: a migration is pending unless a non-rolled-back row exists for it.
  const done = new Set(rows.filter((row) => row.rolled_back_at === null).map((row) => row.migration_name));
  return migrations.filter((migration) => !done.has(migration.name));
}

// CLI: `node --import tsx src/store/migrate.ts` or `node dist/store/migrate.js` (uses DATABASE_URL).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const databaseUrl = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  migrate({ databaseUrl, log: (message) => console.log(message) }).then(
    ({ applied }) => {
      if (applied.length > 0) console.log(`applied: ${applied.join(', ')}`);
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
