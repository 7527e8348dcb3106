import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { displayPrefix, hashApiKey, isWellFormedApiKey, newApiKeySecret, parseBearer } from '../../src/auth/keys.js';
import { canonicalJson, requestHash } from '../../src/runs/idempotency.js';
import { failureReason, RunMetrics } from '../../src/metrics/runs.js';
import { newRegistry } from '../../src/metrics/registry.js';
import { serveMetrics } from '../../src/metrics/server.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { StoredEvent } from '../../src/events/run-events.js';

describe('API key secrets', () => {
  it('are rg_ + 32 random bytes in base64url, stored as their sha256', () => {
    const a = newApiKeySecret();
    expect(a).toMatch(/^rg_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.slice(3), 'base64url')).toHaveLength(32);
    expect(newApiKeySecret()).not.toBe(a);
    expect(isWellFormedApiKey(a)).toBe(true);
    expect(isWellFormedApiKey(`${a}x`)).toBe(false);
    expect(hashApiKey(a)).toBe(createHash('sha256').update(a).digest('hex'));
    expect(displayPrefix(a)).toBe(a.slice(0, 9));
  });

  it('come as Authorization: Bearer <key>', () => {
    expect(parseBearer(undefined)).toEqual({ error: 'missing' });
    expect(parseBearer('')).toEqual({ error: 'missing' });
    expect(parseBearer('Basic abc')).toEqual({ error: 'malformed' });
    expect(parseBearer('Bearer')).toEqual({ error: 'malformed' });
    expect(parseBearer('Bearer a b')).toEqual({ error: 'malformed' });
    expect(parseBearer('bearer rg_x')).toEqual({ token: 'rg_x' });
    expect(parseBearer(['Bearer rg_y'])).toEqual({ token: 'rg_y' });
  });
});

describe('idempotency request hash', () => {
  it('ignores key order and undefined fields, not values, arrays order or the route', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(requestHash('POST /v1/runs', { a: 1, b: 2 })).toBe(requestHash('POST /v1/runs', { b: 2, a: 1, c: undefined }));
    expect(requestHash('POST /v1/runs', { a: 1 })).not.toBe(requestHash('POST /v1/runs', { a: 2 }));
    expect(requestHash('POST /v1/runs', { a: [1, 2] })).not.toBe(requestHash('POST /v1/runs', { a: [2, 1] }));
    expect(requestHash('POST /v1/runs', { a: 1 })).not.toBe(requestHash('POST /v1/studies', { a: 1 }));
  });
});

describe('worker run metrics', () => {
  const ev = (seq: number, type: string, data: unknown, at: number): StoredEvent => ({ seq, type, data, createdAt: new Date(at) });

  it('derive durations, throughput, epochs and failures from published events', async () => {
    const registry = newRegistry();
    const m = new RunMetrics(registry);
    m.observe('r1', ev(2, 'started', { backend: 'wasm' }, 1_000));
    m.observe('r1', ev(3, 'epoch', { epoch: 1, samplesPerSec: 812.5 }, 5_000));
    m.observe('r1', ev(4, 'epoch', { epoch: 2, samplesPerSec: 900 }, 9_000));
    m.observe('r1', ev(5, 'completed', { durationMs: 8_500 }, 9_500));
    m.observe('r2', ev(2, 'started', {}, 10_000));
    m.observe('r2', ev(3, 'failed', { error: 'dataset file emnist/x.gz: sha256 mismatch' }, 12_000));
    m.observe('r3', ev(2, 'cancelled', { reason: 'cancelled while queued' }, 13_000));
    const text = await registry.metrics();
    expect(text).toContain('regula_epochs_completed_total 2');
    expect(text).toContain('regula_training_samples_per_second 900');
    expect(text).toContain('regula_run_failures_total{reason="dataset"} 1');
    expect(text).toContain('regula_run_duration_seconds_sum{status="succeeded"} 8.5');
    expect(text).toContain('regula_run_duration_seconds_sum{status="failed"} 2');
    expect(text).not.toContain('status="cancelled"'); // never trained: no duration
  });

  it('classify failure messages into a few stable reasons', () => {
    expect(failureReason('Out of memory: could not allocate 2 GB')).toBe('out_of_memory');
    expect(failureReason('the loss became NaN at epoch 3')).toBe('non_finite_loss');
    expect(failureReason('ENOENT: no such file data/x.gz')).toBe('dataset');
    expect(failureReason('something odd')).toBe('other');
  });

  it('are served on their own port by a worker', async () => {
    const registry = newRegistry();
    new RunMetrics(registry);
    const server = await serveMetrics(registry, '127.0.0.1', 0);
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('# TYPE regula_epochs_completed_total counter');
      expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('operations config', () => {
  it('defaults: auth off, 600 requests/min, 20 active runs, no worker metrics port', () => {
    expect(loadConfig({})).toMatchObject({ auth: 'off', rateLimitPerMinute: 600, maxActiveRunsPerKey: 20, metricsPort: null });
    expect(loadConfig({ AUTH: 'required', RATE_LIMIT_PER_MINUTE: '0', METRICS_PORT: '9464' })).toMatchObject({
      auth: 'required',
      rateLimitPerMinute: 0,
      metricsPort: 9464,
    });
    expect(() => loadConfig({ AUTH: 'on' })).toThrow(ConfigError);
    expect(() => loadConfig({ METRICS_PORT: '0' })).toThrow(/METRICS_PORT/);
  });
});
