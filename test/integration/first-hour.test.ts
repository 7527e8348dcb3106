/**
 * Issue 11, "the first hour": what a new user hit, each checked against the real API, PostgreSQL,
 * Redis and (where a run must finish) a real worker.
 */
import { describe, expect, it } from 'vitest';
import { suiteHarness } from '../support/suite.js';
import { call, tinyRun, type Problem } from '../support/client.js';
import { generateOpenApi } from '../../src/http/openapi.js';
import { compare } from '../../src/studies/comparison.js';
import { classNamesOf } from '../../src/runs/class-names.js';
import type { NormalizedSpec } from '../../src/run-spec/normalized.js';

const TERMINAL = ['succeeded', 'failed', 'cancelled'];

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 240_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('first hour: dashboard, examples, studies (worker)', () => {
  const h = suiteHarness({ worker: true }, 120_000);

  it('serves the dashboard at / with its assets from the project and a strict CSP; other paths stay problem+json', async () => {
    const page = await fetch(`${h.baseUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const html = await page.text();
    expect(html).toContain('/js/app.js');
    expect(html).not.toMatch(/https?:\/\//); // nothing from a CDN
    for (const asset of ['/js/app.js', '/js/runs.js', '/style.css', '/vendor/uplot/uPlot.esm.js', '/vendor/uplot/uPlot.min.css']) {
      const r = await fetch(`${h.baseUrl}${asset}`);
      expect(r.status, asset).toBe(200);
      expect(await r.text(), asset).not.toMatch(/(src|href)=["']https?:/);
    }
    const other = await fetch(`${h.baseUrl}/vendor/uplot/uPlot.cjs.js`);
    expect(other.status).toBeGreaterThanOrEqual(400);
    const missing = await call(h, 'GET', '/nope');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/problem\+json/);
    expect((await call(h, 'GET', '/auth/session')).body).toEqual({ auth: 'off', owner: null, csrfToken: null, expiresAt: null });
  });

  it("Swagger's POST /v1/runs example is accepted as is and trains on the built-in sample; predictions are characters", { timeout: 300_000 }, async () => {
    const doc = JSON.parse(await generateOpenApi()) as {
      paths: Record<string, Record<string, { requestBody: { content: Record<string, { example?: unknown }> } }>>;
    };
    const example = doc.paths['/v1/runs']!.post!.requestBody.content['application/json']!.example;
    expect(example).toMatchObject({ dataset: { name: 'emnist-sample' } });
    const created = await call(h, 'POST', '/v1/runs', { body: example });
    expect(created.status, created.text).toBe(202);
    const id = created.body.id as string;
    const run = await until('the example run', async () => {
      const r = (await call(h, 'GET', `/v1/runs/${id}`)).body;
      return TERMINAL.includes(r.status as string) ? r : undefined;
    });
    expect(run.status, String(run.error)).toBe('succeeded');
    expect(run.dataset).toBe('emnist-sample');

    const links = run.links as Record<string, string>;
    for (const [name, path] of Object.entries(links)) {
      if (name === 'events' || name === 'predict' || name === 'cancel') continue;
      expect((await fetch(`${h.baseUrl}${path}`)).status, `${name} ${path}`).toBe(200);
    }
    const predictExample = doc.paths['/v1/runs/{id}/predict']!.post!.requestBody.content['application/json']!.example;
    const p = await call(h, 'POST', links.predict!, { body: predictExample });
    expect(p.status, p.text).toBe(200);
    expect((p.body.classNames as string[]).slice(9, 12)).toEqual(['9', 'A', 'B']);
    expect(links.cancel).toBe(`/v1/runs/${id}/cancel`);
  });

  it('lists studies with finishedAt and complete links; the comparison takes ?format=csv|md over Accept', { timeout: 300_000 }, async () => {
    const created = await call(h, 'POST', '/v1/studies', {
      body: {
        name: 'first-hour study',
        training: { epochs: 1, batchSize: 50 },
        dataset: { name: 'emnist-sample', limit: 200 },
        variants: [
          { label: 'baseline', model: tinyRun().model },
          { label: 'other', model: tinyRun().model },
        ],
      },
    });
    expect(created.status, created.text).toBe(202);
    const id = created.body.id as string;
    expect(created.body.finishedAt).toBeNull();
    const list = await call<{ items: Record<string, unknown>[]; total: number }>(h, 'GET', '/v1/studies');
    expect(list.status).toBe(200);
    expect(list.body.items.map((s) => s.id)).toContain(id);

    const done = await until('the study', async () => {
      const s = (await call(h, 'GET', `/v1/studies/${id}`)).body;
      return s.status === 'completed' ? s : undefined;
    });
    const runs = done.runs as { finishedAt: string }[];
    const last = runs
      .map((r) => r.finishedAt)
      .sort()
      .at(-1);
    expect(done.finishedAt).toBe(last);
    const summary = (await call<{ items: Record<string, unknown>[] }>(h, 'GET', '/v1/studies?limit=5')).body.items.find((s) => s.id === id)!;
    expect(summary).toMatchObject({ status: 'completed', finishedAt: last, counts: { succeeded: 2 } });

    const links = done.links as Record<string, string>;
    expect(Object.keys(links).sort()).toEqual(['cancel', 'comparison', 'events', 'self', 'valAccuracyChart', 'valLossChart']);
    for (const k of ['self', 'comparison', 'valAccuracyChart', 'valLossChart']) expect((await fetch(`${h.baseUrl}${links[k]}`)).status, k).toBe(200);

    const csv = await call(h, 'GET', `${links.comparison}?format=csv`, { headers: { accept: 'application/json' } });
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    expect(csv.text.split('\n')[0]).toContain('variant');
    const md = await call(h, 'GET', `${links.comparison}?format=md`);
    expect(md.headers.get('content-type')).toMatch(/text\/markdown/);
    expect(md.text.startsWith('|')).toBe(true);
    const json = await call(h, 'GET', `${links.comparison}?format=json`, { headers: { accept: 'text/csv' } });
    expect(json.body.studyId).toBe(id);
    expect((await call(h, 'GET', `${links.comparison}?format=xls`)).status).toBe(400);
  });
});

describe('first hour: error messages (no worker)', () => {
  const h = suiteHarness(undefined, 120_000);

  it('an enum error lists the allowed values, once', async () => {
    const layers = [
      { type: 'Conv2D', filters: 4, kernelSize: 3, activation: 'relux' },
      { type: 'Flatten' },
      { type: 'Dense', units: 47, activation: 'softmax' },
    ];
    const bad = await call<Problem>(h, 'POST', '/v1/runs', { body: tinyRun({ model: { layers } }) });
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toEqual([{ pointer: '/model/layers/0/activation', detail: expect.stringContaining('must be one of "linear", "relu"') }]);
    const opt = await call<Problem>(h, 'POST', '/v1/runs', { body: tinyRun({ training: { optimizer: { type: 'adamw' } } }) });
    expect(opt.body.detail).toBe('/training/optimizer/type must be one of "adam", "sgd", "rmsprop"');
    const ds = await call<Problem>(h, 'POST', '/v1/runs', { body: tinyRun({ dataset: { name: 'emnist-nope' } }) });
    expect(ds.body.errors?.[0]?.pointer).toBe('/dataset/name');
    expect(ds.body.errors?.[0]?.detail).toMatch(/unknown value "emnist-nope"; one of .*"emnist-sample".*"idx"/);
  });

  it('a missing named dataset says where to get it once, names /dataset/name, and offers data:fetch and the sample', async () => {
    const r = await call<Problem>(h, 'POST', '/v1/runs', { body: { preset: 'baseline', dataset: { name: 'emnist-balanced' } } });
    expect(r.status).toBe(422);
    expect(r.body.errors?.[0]?.pointer).toBe('/dataset/name');
    expect(r.body.detail.split('biometrics.nist.gov').length - 1).toBe(1);
    expect(r.body.detail).toContain('npm run data:fetch -- emnist-balanced');
    expect(r.body.detail).toContain('"emnist-sample"');
  });

  it('rounds deltaVsBaselinePp', () => {
    const run = (id: string, variant: string, testAccuracy: number) => ({
      id,
      variant,
      seed: null,
      majorityRate: null,
      status: 'succeeded',
      testLoss: 1,
      testAccuracy,
      weightStats: null,
      epochs: [],
    });
    expect((0.83 - 0.9) * 100).not.toBe(-7); // the float noise the issue quotes
    const out = compare([run('b', 'baseline', 0.9), run('x', 'v', 0.83)]);
    expect(out.rows.find((r) => r.variant === 'v')!.deltaVsBaselinePp).toBe(-7);
  });

  it('EMNIST IDX files get their characters by default; other IDX files their indices', () => {
    const spec = (images: string, numClasses: number, classNames: string[] | null = null) =>
      ({
        dataset: { name: 'idx', train: { images, labels: images.replace('images', 'labels') }, classNames },
        input: { numClasses },
      }) as unknown as NormalizedSpec;
    expect(classNamesOf(spec('bymerge/emnist-bymerge-test-images-idx3-ubyte.gz', 47)).slice(9, 12)).toEqual(['9', 'A', 'B']);
    expect(classNamesOf(spec('emnist-mini/emnist-mini-train-images-idx3-ubyte.gz', 47))[46]).toBe('t');
    expect(classNamesOf(spec('x/emnist-byclass-train-images-idx3-ubyte.gz', 62))[61]).toBe('z');
    expect(classNamesOf(spec('mine/train-images-idx3-ubyte.gz', 47))[46]).toBe('46');
    expect(classNamesOf(spec('x/emnist-bymerge-test-images-idx3-ubyte.gz', 47, ['a', 'b']))).toEqual(['a', 'b']);
  });
});

describe('first hour: dashboard sessions with AUTH=required (no worker)', () => {
  const h = suiteHarness({ env: { AUTH: 'required' } }, 120_000);

  const login = async (key: string) => {
    const r = await fetch(`${h.baseUrl}/auth/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key }) });
    return { status: r.status, cookie: r.headers.get('set-cookie') ?? '', body: (await r.json()) as Record<string, unknown> };
  };

  it('a login sets an HttpOnly SameSite=Strict cookie; cookie POSTs need the CSRF token; studies and runs stay per owner; revoking the key ends the session', async () => {
    const alice = await h.createKey('alice');
    const bob = await h.createKey('bob');
    const mine = await call(h, 'POST', '/v1/studies', {
      key: alice,
      body: { name: 'alice study', dataset: { name: 'emnist-sample', limit: 200 }, variants: [{ label: 'baseline', model: tinyRun().model }] },
    });
    expect(mine.status, mine.text).toBe(202);

    expect((await login('rg_wrong')).status).toBe(401);
    const s = await login(bob);
    expect(s.status).toBe(200);
    expect(s.body).toMatchObject({ auth: 'required', owner: 'bob' });
    expect(s.cookie).toMatch(/^regula_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+/);
    expect(s.cookie).not.toContain(bob);
    const cookie = s.cookie.split(';')[0]!;
    const csrf = s.body.csrfToken as string;

    // The cookie alone authenticates reads; bob sees none of alice's studies or runs.
    const studies = await call<{ items: unknown[]; total: number }>(h, 'GET', '/v1/studies', { headers: { cookie } });
    expect(studies.status).toBe(200);
    expect(studies.body.total).toBe(0);
    expect((await call(h, 'GET', `/v1/studies/${mine.body.id as string}`, { headers: { cookie } })).status).toBe(404);
    const aliceRun = (mine.body.runs as { id: string }[])[0]!.id;
    for (const path of [
      `/v1/runs/${aliceRun}`,
      `/v1/runs/${aliceRun}/events`,
      `/v1/runs/${aliceRun}/metrics`,
      `/v1/studies/${mine.body.id as string}/events`,
    ]) {
      expect((await call(h, 'GET', path, { headers: { cookie } })).status, path).toBe(404);
    }
    expect((await call<{ total: number }>(h, 'GET', '/v1/runs', { headers: { cookie } })).body.total).toBe(0);
    expect((await call<{ total: number }>(h, 'GET', '/v1/studies', { key: alice })).body.total).toBe(1);
    expect((await call(h, 'GET', '/auth/session', { headers: { cookie } })).body).toMatchObject({ owner: 'bob', csrfToken: csrf });

    // Writes with the cookie need the token.
    const run = await call(h, 'POST', '/v1/runs', { headers: { cookie }, body: tinyRun() });
    expect(run.status).toBe(403);
    expect((run.body as unknown as Problem).detail).toContain('x-csrf-token');
    const ok = await call(h, 'POST', '/v1/runs', {
      headers: { cookie, 'x-csrf-token': csrf },
      body: tinyRun({ dataset: { name: 'emnist-sample', limit: 200 } }),
    });
    expect(ok.status, ok.text).toBe(202);
    expect((await call(h, 'POST', `/v1/runs/${ok.body.id as string}/cancel`, { headers: { cookie, 'x-csrf-token': 'x'.repeat(43) } })).status).toBe(403);

    // Revoked: the session is no longer a key.
    const [key] = await h.ctx.apiKeys.list('bob');
    await h.ctx.apiKeys.revoke(key!.id);
    expect((await call(h, 'GET', '/v1/runs', { headers: { cookie } })).status).toBe(401);
    expect((await call(h, 'GET', '/auth/session', { headers: { cookie } })).body).toMatchObject({ owner: null });

    // Logout clears the cookie.
    const s2 = await login(alice);
    const cookie2 = s2.cookie.split(';')[0]!;
    const out = await fetch(`${h.baseUrl}/auth/session`, { method: 'DELETE', headers: { cookie: cookie2, 'x-csrf-token': s2.body.csrfToken as string } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^regula_session=; .*Max-Age=0/);
    expect((await call(h, 'GET', '/v1/runs', { headers: { cookie: cookie2 } })).status).toBe(401);
  });
});
