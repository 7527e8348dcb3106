/**
 * HTTP latency and throughput of two API routes beside a bare Fastify route, with autocannon.
 *
 *   node --import tsx bench/load-http.ts
 *
 * In process, on loopback only: the test harness (the real app on 127.0.0.1, a private PostgreSQL
 * schema in regula_test, a private Redis queue prefix, DATA_DIR=test/fixtures, no worker so the
 * submitted runs stay queued, RATE_LIMIT_PER_MINUTE=0 so nothing is throttled, LOG_LEVEL=warn) and a
 * bare Fastify instance on another port answering `GET /bare` with a constant. autocannon runs in
 * a child process (its CLI, --json) so that the load generator does not share the server's event
 * loop. Measures, one after the other, DURATION_S (default 10) seconds each with CONNECTIONS
 * (default 50) connections: GET /bare, GET /v1/runs/:id, GET /v1/runs?limit=12 (lean, then
 * ?view=full: 12 runs stored), POST /v1/runs (a small valid spec on the emnist-mini fixture), then
 * GET /v1/runs/:id again on a second app with AUTH=required and the rate limit on (a key per
 * request, counts in Redis; RATE_LIMIT_PER_MINUTE high enough never to refuse), and GET /bare once
 * more (the machine is shared: the two bare figures show how much it drifted). Prints p50 / p99
 * latency, requests/s, response size, non-2xx and errors for each and the p99 ratio to the first bare
 * route, the load average before and after, and writes the table to bench/results/load-http.md.
 * Exit code 1 when a route answered anything but 2xx or had errors. The schemas and the queue keys
 * are dropped at the end.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { startHarness, type Harness } from '../test/support/harness.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const AUTOCANNON = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
const DURATION_S = Number(process.env.DURATION_S ?? 10);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);

const spec = {
  name: 'load-http',
  model: {
    layers: [
      { type: 'Conv2D', filters: 8, kernelSize: 3, activation: 'relu', kernelRegularizer: { type: 'l2', l2: 0.001 } },
      { type: 'MaxPooling2D', poolSize: 2 },
      { type: 'Flatten' },
      { type: 'Dense', units: 47, activation: 'softmax' },
    ],
  },
  training: { epochs: 1, batchSize: 64 },
  dataset: {
    name: 'idx',
    train: { images: 'emnist-mini/emnist-mini-train-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-train-labels-idx1-ubyte.gz' },
    test: { images: 'emnist-mini/emnist-mini-test-images-idx3-ubyte.gz', labels: 'emnist-mini/emnist-mini-test-labels-idx1-ubyte.gz' },
  },
};

interface Result {
  name: string;
  /** Bytes of one response body. */
  bytes: number;
  p50: number;
  p99: number;
  rps: number;
  requests: number;
  non2xx: number;
  errors: number;
}

/** autocannon's CLI in a child process; its --json report on stdout. */
async function cannon(name: string, url: string, opts: { method?: string; body?: string; key?: string } = {}): Promise<Result> {
  const one = await fetch(url, {
    method: opts.method ?? 'GET',
    headers: { ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}) },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });
  const bytes = (await one.arrayBuffer()).byteLength;
  const args = [AUTOCANNON, '-j', '-c', String(CONNECTIONS), '-d', String(DURATION_S)];
  if (opts.method) args.push('-m', opts.method);
  if (opts.body !== undefined) args.push('-H', 'content-type=application/json', '-b', opts.body);
  if (opts.key) args.push('-H', `authorization=Bearer ${opts.key}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}`));
      const r = JSON.parse(out) as {
        latency: { p50: number; p99: number };
        requests: { average: number; total: number };
        non2xx: number;
        errors: number;
        timeouts: number;
      };
      resolve({
        name,
        bytes,
        p50: r.latency.p50,
        p99: r.latency.p99,
        rps: r.requests.average,
        requests: r.requests.total,
        non2xx: r.non2xx,
        errors: r.errors + r.timeouts,
      });
    });
  });
}

async function main(): Promise<boolean> {
  let h: Harness | undefined;
  let authed: Harness | undefined;
  const loadBefore = os.loadavg();
  const bare = Fastify();
  bare.get('/bare', async () => ({ ok: true }));
  try {
    h = await startHarness({ env: { RATE_LIMIT_PER_MINUTE: '0', LOG_LEVEL: 'warn' } });
    await bare.listen({ host: '127.0.0.1', port: 0 });
    const bareAddr = bare.server.address();
    const bareUrl = `http://127.0.0.1:${typeof bareAddr === 'object' && bareAddr ? bareAddr.port : 0}/bare`;
    const body = JSON.stringify(spec);
    const res = await fetch(`${h.baseUrl}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (res.status !== 202) throw new Error(`POST /v1/runs answered ${res.status}: ${await res.text()}`);
    const run = (await res.json()) as { id: string };
    for (let i = 1; i < 12; i++) {
      const more = await fetch(`${h.baseUrl}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (more.status !== 202) throw new Error(`POST /v1/runs answered ${more.status}`);
    }
    authed = await startHarness({ env: { AUTH: 'required', RATE_LIMIT_PER_MINUTE: '1000000', LOG_LEVEL: 'warn' } });
    const key = await authed.createKey('load-http');
    const authedRun = await fetch(`${authed.baseUrl}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body,
    });
    if (authedRun.status !== 202) throw new Error(`POST /v1/runs (auth) answered ${authedRun.status}`);
    const authedId = ((await authedRun.json()) as { id: string }).id;
    console.log(`[load-http] app ${h.baseUrl} (schema ${h.schema}), bare ${bareUrl}; ${CONNECTIONS} connections, ${DURATION_S} s each`);

    const results: Result[] = [];
    for (const [name, url, opts] of [
      ['GET /bare (bare Fastify)', bareUrl, {}],
      ['GET /v1/runs/:id', `${h.baseUrl}/v1/runs/${run.id}`, {}],
      ['GET /v1/runs?limit=12 (lean, default)', `${h.baseUrl}/v1/runs?limit=12`, {}],
      ['GET /v1/runs?limit=12&view=full', `${h.baseUrl}/v1/runs?limit=12&view=full`, {}],
      ['POST /v1/runs', `${h.baseUrl}/v1/runs`, { method: 'POST', body }],
      ['GET /v1/runs/:id, AUTH=required + rate limit (Redis)', `${authed.baseUrl}/v1/runs/${authedId}`, { key }],
      ['GET /bare again (drift)', bareUrl, {}],
    ] satisfies [name: string, url: string, opts: { method?: string; body?: string; key?: string }][]) {
      console.log(`[load-http] ${name} …`);
      results.push(await cannon(name, url, opts));
    }
    // autocannon stops with up to CONNECTIONS POSTs still being handled: let them finish (the queue
    // stops growing) before the schema is dropped.
    let queued = await h.ctx.queueView.counts();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const now = await h.ctx.queueView.counts();
      const same = JSON.stringify(now) === JSON.stringify(queued);
      queued = now;
      if (same) break;
    }

    const base = results[0]!;
    const lines = [
      `# load-http: API routes beside a bare Fastify route (autocannon)`,
      '',
      `${new Date().toISOString()} · ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version} · loopback, ${CONNECTIONS} connections, ${DURATION_S} s per route, ` +
        `autocannon in a child process; app in process with LOG_LEVEL=warn, RATE_LIMIT_PER_MINUTE=0, AUTH=off, no worker (POSTed runs stay queued), ` +
        `except the AUTH=required row (its own app: RATE_LIMIT_PER_MINUTE=1000000, one API key). ` +
        `Load average (1, 5, 15 min) before: ${loadBefore.map((x) => x.toFixed(1)).join(', ')}; after: ${os
          .loadavg()
          .map((x) => x.toFixed(1))
          .join(', ')}.`,
      '',
      '| route | p50 ms | p99 ms | req/s | requests | bytes | non-2xx | errors | p99 / bare p99 |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...results.map(
        (r) =>
          `| ${r.name} | ${r.p50} | ${r.p99} | ${r.rps.toFixed(0)} | ${r.requests} | ${r.bytes} | ${r.non2xx} | ${r.errors} | ${(r.p99 / Math.max(base.p99, 1)).toFixed(1)}× |`,
      ),
      '',
      `Queue after the run: ${JSON.stringify(queued)}. The bare route's p99 is clamped to ≥ 1 ms for the ratio.`,
    ];
    console.log('');
    console.log(lines.join('\n'));
    await writeFile(path.join(ROOT, 'bench', 'results', 'load-http.md'), `${lines.join('\n')}\n`);
    console.log('\n[load-http] wrote bench/results/load-http.md');
    const bad = results.filter((r) => r.non2xx > 0 || r.errors > 0 || r.requests === 0);
    for (const r of bad) console.log(`FAIL ${r.name}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.requests} requests`);
    return bad.length === 0;
  } finally {
    await bare.close();
    await h?.close().catch((err: unknown) => console.error('cleanup failed:', err));
    await authed?.close().catch((err: unknown) => console.error('cleanup failed:', err));
  }
}

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (err: unknown) => {
    console.error('[load-http] failed:', err);
    process.exit(1);
  },
);
