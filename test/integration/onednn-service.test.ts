/**
 * The service trains a run end to end on Regula's oneDNN backend and records it as the run's
 * backend. Skipped where the addon is not built (no libdnnl-dev), unless ONEDNN_REQUIRED=1 (CI).
 */
import { describe, expect, it } from 'vitest';
import { readSse } from '../support/harness.js';
import { suiteHarness } from '../support/suite.js';
import { onednnAvailable } from '../support/onednn.js';
import { fixtureDataset, postJson } from '../support/client.js';

const available = await onednnAvailable();

describe.skipIf(!available)('the oneDNN backend in the service', () => {
  const h = suiteHarness({ worker: true, env: { TFJS_BACKEND: 'onednn' } }, 120_000);

  it('trains the tutorial CNN through the API and records onednn as the backend', async () => {
    const res = await postJson(h, '/v1/runs', { preset: 'l2-activity', training: { epochs: 2, seed: 3 }, dataset: fixtureDataset });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const events = await readSse(`${h.baseUrl}/v1/runs/${id}/events`);
    expect(events.at(-1)?.event).toBe('completed');
    expect(events.find((e) => e.event === 'started')?.data.backend).toBe('onednn');
    expect(events.find((e) => e.event === 'started')?.data.step).toEqual({ path: 'native', note: null });
    const run = (await (await fetch(`${h.baseUrl}/v1/runs/${id}`)).json()) as {
      status: string;
      backend: string;
      test: { accuracy: number };
      versions: { backend: string; backendDetail: string | null };
    };
    expect(run.status).toBe('succeeded');
    expect(run.backend).toBe('onednn');
    expect(run.versions.backend).toBe('onednn');
    expect(run.versions.backendDetail).toMatch(/oneDNN \d+\.\d+/);
    expect(run.test.accuracy).toBeGreaterThan(1 / 47);
  }, 180_000);
});
