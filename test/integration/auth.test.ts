/**
 * API keys with AUTH=required: 401s as problem+json (missing, malformed, unknown, revoked key),
 * open routes, owner scoping (another owner's run or study is a 404), the per-owner limit on
 * unfinished runs, the key CLI, and keys at rest (only their sha256 is stored).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_DATABASE_URL, type Harness } from '../support/harness.js';
import { call, expectProblem, tinyRun } from '../support/client.js';
import { runKeyCommand, UsageError } from '../../src/auth/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('API keys (AUTH=required)', () => {
  let h: Harness;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    h = await startHarness({ env: { AUTH: 'required', MAX_ACTIVE_RUNS_PER_KEY: '3' } });
    alice = await h.createKey('alice', 'laptop');
    bob = await h.createKey('bob');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('refuses a request without a key: 401 problem+json with WWW-Authenticate', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/runs'],
      ['POST', '/v1/runs', tinyRun()],
      ['GET', '/v1/runs/00000000-0000-4000-8000-000000000000'],
      ['GET', '/v1/queue'],
      ['POST', '/v1/studies', { preset: 'tutorial' }],
      ['GET', '/v1/studies/00000000-0000-4000-8000-000000000000/comparison'],
    ] as const) {
      const r = await call(h, method, path, body ? { body } : {});
      expectProblem(r, 401, /API key is required/);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    // Nothing was stored for the refused POSTs.
    expect(await h.ctx.prisma.run.count()).toBe(0);
  });

  it('refuses a malformed header, an unknown key and a revoked key', async () => {
    expectProblem(await call(h, 'GET', '/v1/runs', { headers: { authorization: `Token ${alice}` } }), 401, /must be "Bearer <key>"/);
    expectProblem(await call(h, 'GET', '/v1/runs', { key: 'not-a-key' }), 401, /not valid/);
    const forged = `rg_${randomBytes(32).toString('base64url')}`;
    expectProblem(await call(h, 'GET', '/v1/runs', { key: forged }), 401, /not valid/);

    const doomed = await h.createKey('carol');
    expect((await call(h, 'GET', '/v1/runs', { key: doomed })).status).toBe(200);
    const [revoked] = await h.ctx.apiKeys.revoke((await h.ctx.apiKeys.list('carol'))[0]!.id);
    expect(revoked?.revokedAt).toBeInstanceOf(Date);
    expectProblem(await call(h, 'GET', '/v1/runs', { key: doomed }), 401, /revoked/);
  });

  it('leaves docs, the OpenAPI document, health, readiness, metrics and presets open', async () => {
    for (const path of ['/healthz', '/readyz', '/openapi.json', '/docs/', '/metrics', '/v1/presets']) {
      expect((await call(h, 'GET', path)).status, path).toBe(200);
    }
    const doc = (
      await call<{ components: { securitySchemes: Record<string, unknown> }; paths: Record<string, Record<string, { security?: unknown[] }>> }>(
        h,
        'GET',
        '/openapi.json',
      )
    ).body;
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/v1/presets']!.get!.security).toEqual([]);
  });

  it("scopes runs and studies to the key's owner: another owner's are 404, lists are per owner", async () => {
    const created = await call<{ id: string }>(h, 'POST', '/v1/runs', { key: alice, body: tinyRun({ name: 'alice run' }) });
    expect(created.status, created.text).toBe(202);
    const id = created.body.id;
    expect((await h.ctx.prisma.run.findUniqueOrThrow({ where: { id } })).owner).toBe('alice');

    expect((await call(h, 'GET', `/v1/runs/${id}`, { key: alice })).status).toBe(200);
    for (const [method, path] of [
      ['GET', `/v1/runs/${id}`],
      ['GET', `/v1/runs/${id}/metrics`],
      ['GET', `/v1/runs/${id}/events`],
      ['GET', `/v1/runs/${id}/model`],
      ['GET', `/v1/runs/${id}/charts/loss.svg`],
      ['POST', `/v1/runs/${id}/cancel`],
      ['GET', `/v1/queue?runId=${id}`],
    ] as const) {
      expectProblem(await call(h, method, path, { key: bob }), 404, /not found/);
    }
    const predict = await call(h, 'POST', `/v1/runs/${id}/predict`, { key: bob, body: { images: [new Array(784).fill(0)] } });
    expectProblem(predict, 404);

    const aliceList = (await call<{ total: number; items: { id: string }[] }>(h, 'GET', '/v1/runs', { key: alice })).body;
    expect(aliceList.items.map((r) => r.id)).toEqual([id]);
    expect((await call<{ total: number }>(h, 'GET', '/v1/runs', { key: bob })).body.total).toBe(0);

    const study = await call<{ id: string; runs: { id: string }[] }>(h, 'POST', '/v1/studies', {
      key: bob,
      body: { variants: [{ label: 'only', model: tinyRun().model }], training: { epochs: 1 }, dataset: tinyRun().dataset },
    });
    expect(study.status, study.text).toBe(202);
    expect((await h.ctx.prisma.study.findUniqueOrThrow({ where: { id: study.body.id } })).owner).toBe('bob');
    expect((await h.ctx.prisma.run.findUniqueOrThrow({ where: { id: study.body.runs[0]!.id } })).owner).toBe('bob');
    expect((await call(h, 'GET', `/v1/studies/${study.body.id}`, { key: bob })).status).toBe(200);
    for (const path of ['', '/comparison', '/events', '/charts/val-loss.svg']) {
      expectProblem(await call(h, 'GET', `/v1/studies/${study.body.id}${path}`, { key: alice }), 404);
    }
    expectProblem(await call(h, 'POST', `/v1/studies/${study.body.id}/cancel`, { key: alice }), 404);
    // Runs of a study are the owner's runs too.
    expectProblem(await call(h, 'GET', `/v1/runs/${study.body.runs[0]!.id}`, { key: alice }), 404);
  });

  it('limits unfinished runs per owner (MAX_ACTIVE_RUNS_PER_KEY) with a 429 that says why', async () => {
    const dave = await h.createKey('dave');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await call<{ id: string }>(h, 'POST', '/v1/runs', { key: dave, body: tinyRun() });
      expect(r.status).toBe(202);
      ids.push(r.body.id);
    }
    const over = expectProblem(await call(h, 'POST', '/v1/runs', { key: dave, body: tinyRun() }), 429, /limit is 3 \(MAX_ACTIVE_RUNS_PER_KEY\)/);
    expect(over.title).toBe('Too many active runs');
    // Another owner is not affected; a cancelled run frees a slot.
    expect((await call(h, 'POST', '/v1/runs', { key: alice, body: tinyRun() })).status).toBe(202);
    expect((await call(h, 'POST', `/v1/runs/${ids[0]}/cancel`, { key: dave })).status).toBe(202);
    expect((await call(h, 'POST', '/v1/runs', { key: dave, body: tinyRun() })).status).toBe(202);
    // A study counts all its runs.
    const erin = await h.createKey('erin');
    const twoRuns = { variants: [{ label: 'a' }, { label: 'b' }], base: { model: tinyRun().model }, training: { epochs: 1 }, dataset: tinyRun().dataset };
    expect((await call(h, 'POST', '/v1/studies', { key: erin, body: twoRuns })).status).toBe(202);
    expectProblem(await call(h, 'POST', '/v1/studies', { key: erin, body: twoRuns }), 429, /would make 4 unfinished/);
    expect(await h.ctx.prisma.run.count({ where: { owner: 'erin' } })).toBe(2);
  });

  it('creates keys from the command line (the secret once, on stdout), lists and revokes them', { timeout: 120_000 }, async () => {
    const created = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/main.ts', 'create-key', '--owner', 'frank', '--name', 'ci'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: h.config.databaseUrl, LOG_LEVEL: 'silent' },
    });
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^rg_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/shown only now/);
    expect((await call(h, 'GET', '/v1/runs', { key: secret })).status).toBe(200);

    // The other commands, in process (what main.ts runs for them).
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    await runKeyCommand('list-keys', ['--owner', 'frank'], h.ctx.apiKeys, io);
    expect(out).toHaveLength(1);
    expect(out[0]).toContain(`${secret.slice(0, 9)}…`);
    expect(out[0]).toContain('active');
    expect(out[0]).not.toContain(secret);
    await runKeyCommand('revoke-key', [secret.slice(0, 9)], h.ctx.apiKeys, io);
    expect(err.at(-1)).toMatch(/is revoked/);
    expectProblem(await call(h, 'GET', '/v1/runs', { key: secret }), 401, /revoked/);
    await expect(runKeyCommand('create-key', [], h.ctx.apiKeys, io)).rejects.toThrow(UsageError);
    await expect(runKeyCommand('revoke-key', ['rg_nothing'], h.ctx.apiKeys, io)).rejects.toThrow(/no API key/);
  });

  it('stores only the sha256 of a key: no table holds the secret', async () => {
    const rows = await h.ctx.prisma.apiKey.findMany({ where: { owner: 'alice' } });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.hash).toBe(createHash('sha256').update(alice).digest('hex'));
    expect(rows[0]!.prefix).toBe(alice.slice(0, 9));
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      const { rows: tables } = await client.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, [
        h.schema,
      ]);
      expect(tables.length).toBeGreaterThan(5);
      for (const { table_name } of tables) {
        for (const secret of [alice, bob]) {
          const { rows: hits } = await client.query<{ n: string }>(
            `SELECT count(*) AS n FROM "${h.schema}"."${table_name}" t WHERE strpos(row_to_json(t)::text, $1) > 0 OR strpos(row_to_json(t)::text, $2) > 0`,
            [secret, secret.slice(3)],
          );
          expect(Number(hits[0]!.n), `${table_name} holds a secret`).toBe(0);
        }
      }
    } finally {
      await client.end();
    }
  });
});
