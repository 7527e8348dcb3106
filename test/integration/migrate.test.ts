// Integration test of the offline migration runner and the Prisma client wiring, against the local
// Postgres (TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/regula_test, the database
// every integration test uses; created when missing, as the README promises). Every schema it creates
// has a random name and is dropped afterwards.
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, scriptMatchesChecksum } from '../../src/store/migrate.js';
import { createPrisma, Prisma, RunStatus } from '../../src/store/prisma.js';
import { ensureDatabase } from '../../src/store/ensure-database.js';
import { TEST_DATABASE_URL as DATABASE_URL } from '../support/harness.js';
const ROOT = join(import.meta.dirname, '..', '..');
const MIGRATIONS_DIR = join(ROOT, 'prisma', 'migrations');
const INIT = readdirSync(MIGRATIONS_DIR).find((name) => name.endsWith('_init'));
if (INIT === undefined) throw new Error('no *_init migration');
const INIT_SQL = readFileSync(join(MIGRATIONS_DIR, INIT, 'migration.sql'));
/** Every migration, in the order they apply. */
const ALL = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort((a, b) => a.localeCompare(b));

const schemas: string[] = [];
function freshSchema(): string {
  const name = `regula_test_${randomBytes(6).toString('hex')}`;
  schemas.push(name);
  return name;
}

let admin: pg.Client;
beforeAll(async () => {
  await ensureDatabase(DATABASE_URL);
  admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
});
afterAll(async () => {
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

async function migrationRows(schema: string) {
  const { rows } = await admin.query(`SELECT * FROM "${schema}"."_prisma_migrations" ORDER BY started_at`);
  return rows as Array<Record<string, unknown>>;
}

describe('migrate()', () => {
  const schema = freshSchema();

  it('applies the init migration to a fresh schema, then is idempotent', async () => {
    const logs: string[] = [];
    expect(await migrate({ databaseUrl: DATABASE_URL, schema, log: (m) => logs.push(m) })).toEqual({ applied: ALL });
    expect(logs.some((m) => m.includes(INIT))).toBe(true);
    expect(await migrate({ databaseUrl: DATABASE_URL, schema })).toEqual({ applied: [] });
    expect(await migrationRows(schema)).toHaveLength(ALL.length);
  });

  it("keeps Prisma's _prisma_migrations bookkeeping", async () => {
    const [row] = await migrationRows(schema);
    expect(row).toMatchObject({
      migration_name: INIT,
      checksum: createHash('sha256').update(INIT_SQL).digest('hex'),
      applied_steps_count: 1,
      logs: null,
      rolled_back_at: null,
    });
    expect(row?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(row?.finished_at).toBeInstanceOf(Date);
    expect(row?.started_at).toBeInstanceOf(Date);

    const { rows: columns } = await admin.query(
      `SELECT column_name, data_type, character_maximum_length, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = $1 AND table_name = '_prisma_migrations'
       ORDER BY ordinal_position`,
      [schema],
    );
    expect(columns).toEqual([
      { column_name: 'id', data_type: 'character varying', character_maximum_length: 36, is_nullable: 'NO', column_default: null },
      { column_name: 'checksum', data_type: 'character varying', character_maximum_length: 64, is_nullable: 'NO', column_default: null },
      { column_name: 'finished_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'migration_name', data_type: 'character varying', character_maximum_length: 255, is_nullable: 'NO', column_default: null },
      { column_name: 'logs', data_type: 'text', character_maximum_length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'rolled_back_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'started_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'NO', column_default: 'now()' },
      { column_name: 'applied_steps_count', data_type: 'integer', character_maximum_length: null, is_nullable: 'NO', column_default: '0' },
    ]);
    const { rows: pk } = await admin.query(`SELECT conname FROM pg_constraint WHERE contype = 'p' AND conrelid = $1::regclass`, [
      `"${schema}"._prisma_migrations`,
    ]);
    expect(pk).toEqual([{ conname: '_prisma_migrations_pkey' }]);
  });

  it('creates the tables, enum, indexes and cascading foreign keys inside the schema', async () => {
    const { rows: tables } = await admin.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`, [schema]);
    expect(tables.map((t: { table_name: string }) => t.table_name)).toEqual([
      'ApiKey',
      'Checkpoint',
      'EpochMetric',
      'IdempotencyKey',
      'ModelArtifact',
      'Run',
      'RunEvent',
      'Study',
      '_prisma_migrations',
    ]);
    const { rows: enumValues } = await admin.query(
      `SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = $1 AND t.typname = 'RunStatus' ORDER BY e.enumsortorder`,
      [schema],
    );
    expect(enumValues.map((v: { enumlabel: string }) => v.enumlabel)).toEqual(Object.values(RunStatus));
    const { rows: indexes } = await admin.query(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`, [schema]);
    expect(indexes.map((i: { indexname: string }) => i.indexname)).toEqual([
      'ApiKey_hash_key',
      'ApiKey_pkey',
      'Checkpoint_pkey',
      'EpochMetric_pkey',
      'IdempotencyKey_pkey',
      'ModelArtifact_pkey',
      'RunEvent_pkey',
      'Run_createdAt_idx',
      'Run_owner_createdAt_idx',
      'Run_pkey',
      'Run_status_createdAt_idx',
      'Run_studyId_idx',
      'Study_pkey',
      '_prisma_migrations_pkey',
    ]);
    const { rows: fks } = await admin.query(
      `SELECT c.conname, c.confdeltype, c.confupdtype FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
       WHERE n.nspname = $1 AND c.contype = 'f' ORDER BY c.conname`,
      [schema],
    );
    expect(fks).toEqual([
      { conname: 'Checkpoint_runId_fkey', confdeltype: 'c', confupdtype: 'c' },
      { conname: 'EpochMetric_runId_fkey', confdeltype: 'c', confupdtype: 'c' },
      { conname: 'IdempotencyKey_runId_fkey', confdeltype: 'c', confupdtype: 'c' },
      { conname: 'IdempotencyKey_studyId_fkey', confdeltype: 'c', confupdtype: 'c' },
      { conname: 'ModelArtifact_runId_fkey', confdeltype: 'c', confupdtype: 'c' },
      { conname: 'RunEvent_runId_fkey', confdeltype: 'c', confupdtype: 'c' },
      { conname: 'Run_studyId_fkey', confdeltype: 'n', confupdtype: 'c' },
    ]);
  });

  it('refuses an applied migration whose checksum differs from the file', async () => {
    const table = `"${schema}"."_prisma_migrations"`;
    const [row] = await migrationRows(schema);
    await admin.query(`UPDATE ${table} SET checksum = $1 WHERE migration_name = $2`, ['0'.repeat(64), INIT]);
    try {
      await expect(migrate({ databaseUrl: DATABASE_URL, schema })).rejects.toThrow(/modified after it was applied/);
    } finally {
      await admin.query(`UPDATE ${table} SET checksum = $1 WHERE migration_name = $2`, [row?.checksum, INIT]);
    }
    expect(await migrate({ databaseUrl: DATABASE_URL, schema })).toEqual({ applied: [] });
  });

  it('matches checksums the way Prisma does (line endings, legacy unpadded hex)', () => {
    const script = 'CREATE TABLE "a" ("b" INTEGER);\nSELECT 1;\n';
    const lf = createHash('sha256').update(script).digest();
    expect(scriptMatchesChecksum(script, lf.toString('hex'))).toBe(true);
    expect(scriptMatchesChecksum(script.replaceAll('\n', '\r\n'), lf.toString('hex'))).toBe(true);
    expect(scriptMatchesChecksum(script, [...lf].map((b) => b.toString(16)).join(''))).toBe(true);
    expect(scriptMatchesChecksum(`${script} `, lf.toString('hex'))).toBe(false);
  });

  it('serialises concurrent calls: the migration is applied exactly once', async () => {
    const concurrent = freshSchema();
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate({ databaseUrl: DATABASE_URL, schema: concurrent })));
    expect(results.flatMap((r) => r.applied)).toEqual(ALL);
    expect(await migrationRows(concurrent)).toHaveLength(ALL.length);
  });

  it('runs as a CLI from several processes at once, honouring ?schema= in DATABASE_URL', async () => {
    const cliSchema = freshSchema();
    const url = new URL(DATABASE_URL);
    url.searchParams.set('schema', cliSchema);
    const run = () =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/store/migrate.ts'], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: url.toString() },
      });
    const outputs = await Promise.all([run(), run()]);
    expect(outputs.filter((o) => o.stdout.includes(`applied: ${INIT}`))).toHaveLength(1);
    expect(await migrationRows(cliSchema)).toHaveLength(ALL.length);
  });

  it('rolls a failing migration back completely and reports it', async () => {
    const failing = freshSchema();
    const dir = mkdtempSync(join(tmpdir(), 'regula-migrations-'));
    try {
      mkdirSync(join(dir, '20000101000000_ok'));
      writeFileSync(join(dir, '20000101000000_ok', 'migration.sql'), 'CREATE TABLE "A" ("id" INTEGER NOT NULL);\n');
      mkdirSync(join(dir, '20000102000000_broken'));
      writeFileSync(join(dir, '20000102000000_broken', 'migration.sql'), 'CREATE TABLE "B" ("id" INTEGER);\nSELECT nope;\n');
      await expect(migrate({ databaseUrl: DATABASE_URL, schema: failing, migrationsDir: dir })).rejects.toThrow(/20000102000000_broken failed/);
      const rows = await migrationRows(failing);
      expect(rows.map((r) => r.migration_name)).toEqual(['20000101000000_ok']);
      const { rows: tables } = await admin.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, [failing]);
      expect(tables.map((t: { table_name: string }) => t.table_name).sort()).toEqual(['A', '_prisma_migrations']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createPrisma()', () => {
  const schema = freshSchema();
  let prisma: ReturnType<typeof createPrisma>;

  beforeAll(async () => {
    await migrate({ databaseUrl: DATABASE_URL, schema });
    prisma = createPrisma({ databaseUrl: DATABASE_URL, schema });
  });
  afterAll(async () => {
    await prisma.$disconnect();
  });

  it('round-trips a run with an epoch metric, an event and a model artifact', async () => {
    const id = randomUUID();
    const weights = new Uint8Array(randomBytes(1024));
    await prisma.run.create({
      data: {
        id,
        name: 'smoke',
        specSubmitted: { epochs: 1 },
        spec: { epochs: 1, batchSize: 32 },
        datasetName: 'emnist-letters',
        paramCount: 1234,
        epochs: {
          create: { epoch: 1, loss: 0.5, accuracy: 0.9, durationMs: 1000, details: { train: { dataLoss: 0.4 } } },
        },
        events: { create: { seq: 1, type: 'queued', data: { status: 'queued' } } },
        artifact: {
          create: {
            format: 'tfjs-layers',
            modelTopology: { class_name: 'Sequential' },
            weightSpecs: [{ name: 'dense/kernel', shape: [2, 2], dtype: 'float32' }],
            weightData: weights,
            sha256: createHash('sha256').update(weights).digest('hex'),
            sizeBytes: weights.length,
          },
        },
      },
    });

    const run = await prisma.run.findUniqueOrThrow({
      where: { id },
      include: { epochs: true, events: true, artifact: true },
    });
    expect(run.status).toBe(RunStatus.queued);
    expect(run.cancelRequested).toBe(false);
    expect(run.createdAt).toBeInstanceOf(Date);
    expect(run.spec).toEqual({ epochs: 1, batchSize: 32 });
    expect(run.epochs).toMatchObject([{ epoch: 1, loss: 0.5, accuracy: 0.9, valLoss: null, details: { train: { dataLoss: 0.4 } } }]);
    expect(run.events).toMatchObject([{ seq: 1, type: 'queued', data: { status: 'queued' } }]);
    expect(Buffer.from(run.artifact?.weightData ?? new Uint8Array()).equals(weights)).toBe(true);
    expect(run.artifact?.weightData).toBeInstanceOf(Uint8Array);

    const updated = await prisma.run.update({
      where: { id },
      data: { status: RunStatus.running, startedAt: new Date(), testMetrics: Prisma.DbNull },
    });
    expect(updated.status).toBe('running');
    expect(await prisma.run.count({ where: { status: { in: [RunStatus.running] } } })).toBe(1);

    // The rows live in the test schema (not public).
    const { rows } = await admin.query(`SELECT status::text AS status FROM "${schema}"."Run" WHERE id = $1`, [id]);
    expect(rows).toEqual([{ status: 'running' }]);

    await prisma.run.delete({ where: { id } });
    expect(await prisma.epochMetric.count({ where: { runId: id } })).toBe(0);
    expect(await prisma.runEvent.count({ where: { runId: id } })).toBe(0);
    expect(await prisma.modelArtifact.count({ where: { runId: id } })).toBe(0);
  });
});
