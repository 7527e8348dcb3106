/**
 * Graceful shutdown of the API: closing the app ends every open event stream with a final
 * `shutdown` event that keeps the id of the last event delivered (clients resume elsewhere with
 * Last-Event-ID), and the close does not wait for the streams' clients.
 */
import { describe, expect, it } from 'vitest';
import { readSse, startHarness, type SseEvent } from '../support/harness.js';
import { postJson, tinyRun } from '../support/client.js';

const spec = tinyRun({ name: 'shutdown' });

describe('API graceful shutdown', () => {
  it('ends an open run event stream with a shutdown event carrying the last id, then closes', async () => {
    const h = await startHarness(); // no worker: the run stays queued and its stream stays open
    let closed = false;
    try {
      const res = await postJson(h, '/v1/runs', spec);
      expect(res.status).toBe(202);
      const run = (await res.json()) as { id: string };

      let sawQueued!: () => void;
      const queued = new Promise<void>((resolve) => (sawQueued = resolve));
      const stream = readSse(`${h.baseUrl}/v1/runs/${run.id}/events`, {
        timeoutMs: 20_000,
        onEvent: (e: SseEvent) => e.event === 'queued' && sawQueued(),
      });
      await queued;
      expect(h.app.sseStreams.size).toBe(1);

      const started = Date.now();
      await h.close(); // app.close() → preClose drains the streams → the server closes
      closed = true;
      expect(Date.now() - started).toBeLessThan(10_000);

      const events = await stream; // resolves only once the server ended the response
      expect(events.map((e) => e.event)).toEqual(['queued', 'shutdown']);
      const [first, last] = events as [SseEvent, SseEvent];
      expect(last.data).toEqual({ reason: 'server shutting down', retry: true });
      expect(last.id).toBe(first.id); // the id of the last event delivered: resume with Last-Event-ID
      expect(h.app.sseStreams.size).toBe(0);
      await expect(fetch(`${h.baseUrl}/v1/runs/${run.id}`)).rejects.toThrow(); // no longer listening
    } finally {
      if (!closed) await h.close();
    }
  });
});
