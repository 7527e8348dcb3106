/**
 * Issue 12, API hardening: nothing a client sends can stall the API, leak per-request resources or
 * come back as a 500, and no answer shows where the server keeps its files.
 *
 * The harness gets its own DATA_DIR (a temporary copy of the fixtures) so these tests can plant
 * symlink loops and gzip bombs without touching the repository.
 */
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { crc32, deflateSync, gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { appDeps } from '../../src/context.js';
import { fromPng } from '../../src/http/images.js';
import { FIXTURES, startHarness, type Harness } from '../support/harness.js';
import { suiteHarness } from '../support/suite.js';
import { call, expectProblem, fixtureDataset, tinyRun, type Problem } from '../support/client.js';

/** Polls `check` until it holds; fails (with `what`) after `ms`. Waits on a condition, not a time. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** A grayscale PNG whose IHDR says width × height, with `rows` rows of real (zero) image data (or `rawBytes` zeros). */
function pngWithHeader(width: number, height: number, rows: number, opts: { interlaced?: boolean; rawBytes?: number } = {}): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grayscale
  ihdr[12] = opts.interlaced ? 1 : 0;
  const raw = Buffer.alloc(opts.rawBytes ?? rows * (width + 1)); // filter byte 0 + zero pixels per row
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An IDX labels file: header for `count` labels, then `count` labels 0/1, then `extra` zero bytes. */
function labelsIdx(count: number, extra = 0): Buffer {
  const header = Buffer.from([0, 0, 8, 1, 0, 0, 0, 0]);
  header.writeUInt32BE(count, 4);
  const labels = Buffer.alloc(count);
  for (let i = 0; i < count; i++) labels[i] = i % 2;
  return Buffer.concat([header, labels, Buffer.alloc(extra)]);
}

describe('API hardening (issue 12)', () => {
  let h: Harness;
  let dataDir: string;
  let queuedId: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'regula-hardening-'));
    await mkdir(path.join(dataDir, 'emnist-mini'));
    for (const f of Object.values(fixtureDataset.train).concat(Object.values(fixtureDataset.test))) {
      await copyFile(path.join(FIXTURES, f), path.join(dataDir, f));
    }
    await mkdir(path.join(dataDir, 'loop'));
    await symlink('b', path.join(dataDir, 'loop', 'a'));
    await symlink('a', path.join(dataDir, 'loop', 'b'));
    await mkdir(path.join(dataDir, 'bomb'));
    // 10 labels announced, 32 MiB more inflated behind them, and the gzip stream cut short: a reader
    // that inflates everything ends on the truncation, one that stops at the announced length never gets there.
    const gz = gzipSync(labelsIdx(10, 32 * 1024 * 1024));
    await writeFile(path.join(dataDir, 'bomb', 'cut-labels.gz'), gz.subarray(0, gz.length - 64));
    // A 200-byte file cannot inflate to the 4 GB its header announces.
    await writeFile(
      path.join(dataDir, 'bomb', 'liar-labels.gz'),
      gzipSync(Buffer.concat([Buffer.from([0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff]), Buffer.alloc(64)])),
    );
    h = await startHarness({ env: { DATA_DIR: dataDir } });
    const r = await call<{ id: string }>(h, 'POST', '/v1/runs', { body: tinyRun() });
    expect(r.status, r.text).toBe(202);
    queuedId = r.body.id;
  });
  afterAll(async () => {
    await h?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const withTrain = (train: Record<string, string>) => tinyRun({ dataset: { ...fixtureDataset, train: { ...fixtureDataset.train, ...train } } });

  describe('item 6: SSE clients that reset at once leave nothing behind', () => {
    /** CLIENTS clients that send `GET path` and reset while the stream subscribes: nothing may stay behind. */
    async function resetWhileSubscribing(path: string, subscriptionsPerStream: number): Promise<void> {
      const CLIENTS = 60;
      const bus = h.ctx.bus;
      const original = bus.subscribe.bind(bus);
      let calls = 0;
      let release!: () => void;
      const allClosed = new Promise<void>((r) => (release = r));
      // Hold every subscription until the clients are gone: the window the leak needs, made certain.
      const spy = vi.spyOn(bus, 'subscribe').mockImplementation(async (...args) => {
        calls++;
        await allClosed;
        return original(...args);
      });
      const before = h.app.sseStreams.stats();
      const serverSide: net.Socket[] = [];
      const track = (s: net.Socket) => serverSide.push(s);
      h.app.server.on('connection', track);
      try {
        const sockets = await Promise.all(
          Array.from(
            { length: CLIENTS },
            () =>
              new Promise<net.Socket>((resolve, reject) => {
                const s = net.connect(Number(new URL(h.baseUrl).port), '127.0.0.1', () => {
                  s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n`, () => resolve(s));
                });
                s.on('error', reject);
              }),
          ),
        );
        await waitFor('every stream to reach its subscription', () => calls === CLIENTS * subscriptionsPerStream);
        for (const s of sockets) s.resetAndDestroy();
        await waitFor('the server to see every connection closed', () => serverSide.length === CLIENTS && serverSide.every((s) => s.destroyed));
        release();
        await waitFor('every stream handler to return', () => h.app.sseStreams.stats().handled - before.handled === CLIENTS);
        await waitFor(
          'no open stream, keep-alive timer or bus subscription',
          () => {
            const s = h.app.sseStreams.stats();
            return s.open === 0 && s.keepAlives === 0 && bus.subscriptionCount === 0;
          },
          5_000,
        );
      } finally {
        h.app.server.off('connection', track);
        release();
        spy.mockRestore();
      }
      expect(h.app.sseStreams.stats()).toMatchObject({ open: 0, keepAlives: 0 });
      expect(bus.subscriptionCount).toBe(0);
    }

    it('60 clients that reset while their run stream subscribes leave no stream, timer or subscription', async () => {
      await resetWhileSubscribing(`/v1/runs/${queuedId}/events`, 1);
    });

    it('the same for a study stream (one subscription per run)', async () => {
      const study = await call<{ id: string; runs: unknown[] }>(h, 'POST', '/v1/studies', {
        body: {
          variants: [
            { label: 'a', ...tinyRun() },
            { label: 'b', ...tinyRun() },
          ].map(({ label, model }) => ({ label, model })),
          training: { epochs: 1 },
          dataset: fixtureDataset,
        },
      });
      expect(study.status, study.text).toBe(202);
      await resetWhileSubscribing(`/v1/studies/${study.body.id}/events`, study.body.runs.length);
    });
  });

  describe('item 10: Last-Event-ID above 2^31-1', () => {
    it('is a 400 problem+json naming the header, not an empty stream', async () => {
      const big = await call(h, 'GET', `/v1/runs/${queuedId}/events`, { headers: { 'last-event-id': '2147483648' } });
      const p = expectProblem(big, 400);
      expect(p.errors?.[0]?.pointer).toBe('/headers/last-event-id');
      const q = await call(h, 'GET', `/v1/runs/${queuedId}/events?lastEventId=99999999999`);
      expect(expectProblem(q, 400).errors?.[0]?.pointer).toBe('/query/lastEventId');
    });
  });

  describe('item 3: PNG decompression bombs on predict', () => {
    const bomb = pngWithHeader(20000, 20000, 4);

    it('checks the run first: an unknown run is a 404 and the PNG is never decoded', async () => {
      const read = vi.spyOn(PNG.sync, 'read');
      try {
        const r = await request(h.app.server).post('/v1/runs/00000000-0000-4000-8000-000000000000/predict').set('content-type', 'image/png').send(bomb);
        expect(r.status).toBe(404);
        expect(r.headers['content-type']).toMatch(/problem\+json/);
        const queued = await request(h.app.server).post(`/v1/runs/${queuedId}/predict`).set('content-type', 'image/png').send(bomb);
        expect(queued.status).toBe(409); // no model yet
        expect(read).not.toHaveBeenCalled();
      } finally {
        read.mockRestore();
      }
    });

    it('refuses anything but 28×28 at the IHDR, before inflating', () => {
      const read = vi.spyOn(PNG.sync, 'read');
      try {
        expect(() => fromPng(bomb, false)).toThrow(/20000x20000/);
        expect(read).not.toHaveBeenCalled();
        expect(() => fromPng(Buffer.from('GIF89a not a png at all, long enough to hold a header'), false)).toThrow(/not a readable PNG/);
        expect(fromPng(pngWithHeader(28, 28, 28), false)).toHaveLength(784);
        // pngjs inflates interlaced images without a bound: 32 MiB behind a 28×28 header.
        expect(() => fromPng(pngWithHeader(28, 28, 0, { interlaced: true, rawBytes: 32 * 1024 * 1024 }), false)).toThrow(/interlaced/);
        expect(read).toHaveBeenCalledTimes(1); // only the good one
      } finally {
        read.mockRestore();
      }
    });
  });

  describe('item 9: 500s that are bad input', () => {
    it('a 512-character dataset path is a 400 naming the field', async () => {
      const p = expectProblem(await call(h, 'POST', '/v1/runs', { body: withTrain({ images: 'a'.repeat(512) }) }), 400);
      expect(p.errors?.[0]?.pointer).toBe('/dataset/train/images');
    });
    it('a symlink loop is a 400 naming the field', async () => {
      const p = expectProblem(await call(h, 'POST', '/v1/runs', { body: withTrain({ labels: 'loop/a' }) }), 400);
      expect(p.errors?.[0]?.pointer).toBe('/dataset/train/labels');
    });
    it.each([
      ['a NUL', 'a\u0000b'],
      ['a lone surrogate', 'a\ud800b'],
    ])('%s in name is a 400 naming the field', async (_what, name) => {
      const r = await request(h.app.server)
        .post('/v1/runs')
        .set('content-type', 'application/json')
        .send(JSON.stringify(tinyRun({ name })));
      expect(r.status, r.text).toBe(400);
      expect(r.headers['content-type']).toMatch(/problem\+json/);
      expect((JSON.parse(r.text) as Problem).errors?.[0]?.pointer).toBe('/name');
    });
    it('a JSON string body on predict is a 400', async () => {
      const r = await request(h.app.server).post(`/v1/runs/${queuedId}/predict`).set('content-type', 'application/json').send('"hello"');
      expect(r.status, r.text).toBe(400);
      expect(r.headers['content-type']).toMatch(/problem\+json/);
    });
  });

  describe('item 5: gzip bombs', () => {
    it('stops inflating a labels file at the length its header announces', async () => {
      const p = expectProblem(await call(h, 'POST', '/v1/runs', { body: withTrain({ labels: 'bomb/cut-labels.gz' }) }), 400);
      expect(p.errors?.[0]?.pointer).toBe('/dataset/train/labels');
      expect(p.detail).toMatch(/more data than its header announces/);
    });
    it('refuses a header that announces more than the file could inflate to', async () => {
      const p = expectProblem(await call(h, 'POST', '/v1/runs', { body: withTrain({ labels: 'bomb/liar-labels.gz' }) }), 400);
      expect(p.detail).toMatch(/at most/);
    });
  });

  describe('item 11: error messages', () => {
    it('show data paths relative to DATA_DIR, never the server path', async () => {
      const missing = expectProblem(await call(h, 'POST', '/v1/runs', { body: withTrain({ labels: 'emnist-mini/nope.gz' }) }), 422);
      const bad = expectProblem(await call(h, 'POST', '/v1/runs', { body: withTrain({ labels: fixtureDataset.train.images }) }), 400);
      for (const p of [missing, bad]) {
        expect(JSON.stringify(p)).not.toContain(dataDir);
        expect(JSON.stringify(p)).not.toContain(os.tmpdir());
      }
      expect(missing.detail).toContain('emnist-mini/nope.gz');
      expect(bad.detail).toContain(fixtureDataset.train.images);
    });
    it('names a __proto__ key instead of calling the body invalid JSON', async () => {
      const r = await request(h.app.server)
        .post('/v1/runs')
        .set('content-type', 'application/json')
        .send('{"name":"x","model":{"__proto__":{"polluted":true},"layers":[]}}');
      expect(r.status).toBe(400);
      const p = JSON.parse(r.text) as Problem;
      expect(p.detail).not.toMatch(/not valid JSON/i);
      expect(p.errors?.[0]?.pointer).toBe('/model/__proto__');
    });
    it('answers 431 (headers too large) as problem+json', async () => {
      const raw = await new Promise<string>((resolve, reject) => {
        const s = net.connect(Number(new URL(h.baseUrl).port), '127.0.0.1', () => {
          s.write(`GET /v1/runs HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
        });
        let got = '';
        s.on('data', (d) => (got += d.toString('latin1')));
        s.on('end', () => resolve(got));
        s.on('close', () => resolve(got));
        s.on('error', (e) => (got ? resolve(got) : reject(e)));
      });
      expect(raw).toMatch(/^HTTP\/1\.1 431/);
      expect(raw).toMatch(/content-type: application\/problem\+json/i);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Problem;
      expect(body).toMatchObject({ status: 431, title: 'Request Header Fields Too Large' });
    });
  });

  describe('GET /v1/runs is lean by default (issue 10)', () => {
    it('leaves the spec and weight statistics out of list items unless ?view=full', async () => {
      const lean = await call<{ items: Record<string, unknown>[] }>(h, 'GET', '/v1/runs');
      expect(lean.status).toBe(200);
      expect(lean.body.items.length).toBeGreaterThan(0);
      for (const item of lean.body.items) {
        expect(item).not.toHaveProperty('spec');
        expect(item).not.toHaveProperty('weights');
        expect(item).toHaveProperty('id');
      }
      const full = await call<{ items: Record<string, unknown>[] }>(h, 'GET', '/v1/runs?view=full');
      expect(full.body.items[0]).toHaveProperty('spec');
      expect(full.body.items[0]).toHaveProperty('weights');
    });
  });
});

describe('rate limits in Redis, before the key lookup (issue 12 item 8)', () => {
  const h = suiteHarness({ env: { AUTH: 'required', RATE_LIMIT_PER_MINUTE: '3' } });

  it('random keys from one client cost at most RATE_LIMIT_PER_MINUTE key lookups', async () => {
    const lookups = vi.spyOn(h.ctx.apiKeys, 'findByHash');
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const key = 'rg_' + Buffer.from(`${i}`.padStart(32, 'x')).toString('base64url');
        statuses.push((await call(h, 'GET', '/v1/runs', { key })).status);
      }
      expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
      expect(new Set(statuses.slice(3))).toEqual(new Set([429]));
      expect(lookups.mock.calls.length).toBeLessThanOrEqual(3);
    } finally {
      lookups.mockRestore();
    }
  });

  it('two API instances share one limit', async () => {
    const second = await buildApp(appDeps(h.ctx));
    try {
      const key = await h.createKey('carol');
      // Another address than the test above, whose unknown keys used up 127.0.0.1's budget for failures.
      const get = { method: 'GET' as const, url: '/v1/runs', headers: { authorization: `Bearer ${key}` }, remoteAddress: '10.1.2.3' };
      const statuses = [
        (await h.app.inject(get)).statusCode,
        (await second.inject(get)).statusCode,
        (await h.app.inject(get)).statusCode,
        (await second.inject(get)).statusCode,
      ];
      expect(statuses).toEqual([200, 200, 200, 429]);
    } finally {
      await second.close();
    }
  });
});
