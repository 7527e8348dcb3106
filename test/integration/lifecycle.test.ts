/**
 * The run lifecycle's rules (runs/lifecycle.ts) without a queue or a training thread: start,
 * resume, restart, cancel before start, hand back, retry and fail, against the real store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../support/harness.js';
import { call, tinyRun } from '../support/client.js';
import { RunJournal, type StoredEvent } from '../../src/events/run-events.js';
import { RunLifecycle } from '../../src/runs/lifecycle.js';

const backend = { name: 'wasm', note: null };
const first = { attempt: 1, attempts: 3 };

describe('run lifecycle', () => {
  let h: Harness;
  let lifecycle: RunLifecycle;
  const published: { runId: string; event: StoredEvent }[] = [];

  beforeAll(async () => {
    h = await startHarness();
    lifecycle = new RunLifecycle(h.ctx.repo, new RunJournal(h.ctx.repo, h.ctx.bus));
    h.ctx.bus.onPublish((runId, event) => published.push({ runId, event }));
  });
  afterAll(async () => {
    await h?.close();
  });

  const submit = async () => (await call<{ id: string }>(h, 'POST', '/v1/runs', { body: tinyRun() })).body.id;
  const types = async (id: string) => (await h.ctx.repo.events(id)).map((e) => e.type);
  const row = (epoch: number) => ({ epoch, loss: 1 / epoch, accuracy: 0.1 * epoch, valLoss: null, valAccuracy: null, durationMs: 5, details: null });
  const checkpoint = (epoch: number) => ({ epoch, weights: new Uint8Array([1, 2, 3]), optimizer: new Uint8Array([4]), specs: { format: 1 } });

  it('starts a queued run: running on the backend, nothing to resume', async () => {
    const id = await submit();
    const start = await lifecycle.start(id, backend, first);
    expect(start.kind).toBe('train');
    if (start.kind !== 'train') return;
    expect(start.resume).toBeUndefined();
    expect(start.spec.training.epochs).toBe(1);
    expect(await h.ctx.repo.get(id)).toMatchObject({ status: 'running', backend: 'wasm' });
    expect(await types(id)).toEqual(['queued']);
  });

  it('restarts a running run without a checkpoint from epoch 1, dropping its rows', async () => {
    const id = await submit();
    await lifecycle.start(id, backend, first);
    await h.ctx.repo.saveEpoch(id, row(1));
    const start = await lifecycle.start(id, backend, first);
    expect(start.kind === 'train' && start.resume).toBeUndefined();
    expect(await h.ctx.repo.epochs(id)).toEqual([]);
    const events = await h.ctx.repo.events(id);
    expect(events.map((e) => e.type)).toEqual(['queued', 'restarted']);
    expect(events[1]!.data).toEqual({ reason: 'the worker training this run was lost or shut down; no epoch was completed, training restarts from epoch 1' });
    expect(published.some((p) => p.runId === id && p.event.type === 'restarted')).toBe(true);
  });

  it('resumes a running run after its checkpoint, keeping the rows up to it', async () => {
    const id = await submit();
    await lifecycle.start(id, backend, first);
    await h.ctx.repo.saveEpoch(id, row(1), checkpoint(1));
    await h.ctx.repo.saveEpoch(id, row(2));
    const start = await lifecycle.start(id, backend, { attempt: 2, attempts: 3, failedReason: 'boom' });
    expect(start.kind).toBe('train');
    if (start.kind !== 'train') return;
    expect(start.resume?.epoch).toBe(1);
    expect(Array.from(start.resume!.weights)).toEqual([1, 2, 3]);
    expect((await h.ctx.repo.epochs(id)).map((e) => e.epoch)).toEqual([1]);
    const events = await h.ctx.repo.events(id);
    expect(events.at(-1)).toMatchObject({ type: 'resumed', data: { fromEpoch: 2, reason: 'attempt 2 of 3 after: boom' } });
  });

  it('ends a run whose cancel came first, and skips one that is not queued or running', async () => {
    const running = await submit();
    await lifecycle.start(running, backend, first);
    expect(await h.ctx.repo.requestCancel(running)).toBe(true);
    expect((await lifecycle.start(running, backend, first)).kind).toBe('cancelled');
    expect((await h.ctx.repo.get(running))?.status).toBe('cancelled');
    expect((await h.ctx.repo.events(running)).at(-1)).toMatchObject({ type: 'cancelled', data: { reason: 'cancelled before start' } });

    const cancelled = await submit();
    expect(await h.ctx.repo.cancelQueued(cancelled)).toBe(true);
    expect(await lifecycle.start(cancelled, backend, first)).toEqual({ kind: 'skip', status: 'cancelled' });
    expect(await types(cancelled)).toEqual(['queued']);
  });

  it('records training, hands a run back on shutdown, and ends a cancelled one', async () => {
    const id = await submit();
    const start = await lifecycle.start(id, backend, first);
    if (start.kind !== 'train') throw new Error(`not started: ${start.kind}`);
    const training = lifecycle.training(id, backend, start.resume);
    training.onEvent({ type: 'batch', epoch: 1, batch: 1, batches: 2, loss: 1, accuracy: 0, samplesPerSec: 10 });
    const loss = { loss: 1, dataLoss: 1, kernelPenalty: 0, biasPenalty: 0, activityPenalty: 0, accuracy: 0.5 };
    training.onEvent({
      type: 'epoch',
      epoch: 1,
      epochs: 2,
      durationMs: 7,
      samplesPerSec: 42,
      train: loss,
      val: null,
      weights: [],
      checkpoint: checkpoint(1) as never,
    });
    await training.flush();
    expect(training.lastEpoch).toBe(1);
    // The epoch's headline figures, as its stored row and its event both carry them.
    const headline = { epoch: 1, loss: 1, accuracy: 0.5, valLoss: null, valAccuracy: null, durationMs: 7 };
    expect(await h.ctx.repo.epochs(id)).toEqual([{ ...headline, details: { train: loss, val: null, samplesPerSec: 42, weights: [] } }]);
    expect((await h.ctx.repo.events(id)).at(-1)?.data).toEqual({
      ...headline,
      epochs: 2,
      samplesPerSec: 42,
      train: loss,
      val: null,
      weights: [],
    });

    await training.handBack();
    expect((await h.ctx.repo.get(id))?.status).toBe('running');
    expect((await h.ctx.repo.events(id)).at(-1)).toMatchObject({ type: 'interrupted', data: { resumeFromEpoch: 2 } });

    await training.cancelled(false);
    expect(await h.ctx.repo.get(id)).toMatchObject({ status: 'cancelled', samplesPerSec: 42 });
    expect(await h.ctx.repo.checkpoint(id)).toBeNull();
    expect((await h.ctx.repo.events(id)).at(-1)).toMatchObject({ type: 'cancelled', data: { reason: 'cancelled by request', epochsCompleted: 1 } });
  });

  it('retries a failed attempt while attempts remain, then fails the run once', async () => {
    const id = await submit();
    const start = await lifecycle.start(id, backend, first);
    if (start.kind !== 'train') throw new Error(`not started: ${start.kind}`);
    const training = lifecycle.training(id, backend, start.resume);
    expect(await lifecycle.attemptFailed(training, 'database away', { unrecoverable: false, attempt: 1, attempts: 2 })).toBe('retrying');
    expect((await h.ctx.repo.get(id))?.status).toBe('running');
    expect((await h.ctx.repo.events(id)).at(-1)).toMatchObject({
      type: 'retrying',
      data: { error: 'database away', attempt: 1, attempts: 2, resumeFromEpoch: 1 },
    });

    expect(await lifecycle.attemptFailed(training, 'database away again', { unrecoverable: false, attempt: 2, attempts: 2 })).toBe('failed');
    expect(await h.ctx.repo.get(id)).toMatchObject({ status: 'failed', error: 'database away again' });
    await lifecycle.fail(id, 'a second verdict');
    expect((await types(id)).filter((t) => t === 'failed')).toHaveLength(1);

    const trap = await submit();
    const s2 = await lifecycle.start(trap, backend, first);
    if (s2.kind !== 'train') throw new Error(`not started: ${s2.kind}`);
    expect(await lifecycle.attemptFailed(lifecycle.training(trap, backend, undefined), 'trapped', { unrecoverable: true, attempt: 1, attempts: 3 })).toBe(
      'failed',
    );
    expect((await h.ctx.repo.get(trap))?.status).toBe('failed');
  });
});
