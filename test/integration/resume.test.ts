/**
 * Checkpoints and resume through the real worker host, PostgreSQL and BullMQ, without killing
 * processes (faults/fault-kill-worker.ts does that):
 *  - a lost worker: a run left `running` with epoch rows 1-2 and the epoch-2 checkpoint resumes at
 *    epoch 3 and ends with rows 1..4 exactly once — and exactly where an uninterrupted run with
 *    the same spec ends (same rows, test metrics, artifact bytes), which only happens if the
 *    checkpoint's weights and optimizer state were really used. The spec has no Dropout (tfjs
 *    does not seed its masks): everything else is deterministic on the wasm backend;
 *  - a transient failure (the database "away" while storing epoch 2): BullMQ retries the job
 *    after its backoff and the retry resumes after epoch 1, again ending exactly like the reference;
 *  - a graceful shutdown: the worker stops at the next batch, the run stays `running`, its job goes
 *    back to the queue and another worker resumes it;
 *  - a spec that can never train (a dataset file that is not there) fails at once, without retries.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backends/index.js';
import { loadDataset } from '../../src/engine/data/load.js';
import { toDatasetSpec } from '../../src/engine/dataset-spec.js';
import { train } from '../../src/engine/train.js';
import type { TrainingCheckpoint, EpochReport } from '../../src/engine/types.js';
import type { NormalizedSpec } from '../../src/run-spec/normalized.js';
import { RunsRepo, type CheckpointRow, type EpochRow } from '../../src/store/runs-repo.js';
import type { WorkerHost } from '../../src/worker/host.js';
import { TrainerPool } from '../../src/worker/pool.js';
import { readSse, startHarness, type Harness, type SseEvent } from '../support/harness.js';
import { fixtureDataset, noDropoutLayers } from '../support/client.js';
import { workerHost } from '../support/worker.js';
import { pino } from 'pino';

const EPOCHS = 4;
const dataset = fixtureDataset;

/** No Dropout: a resumed run can then reproduce an uninterrupted one exactly. */
const request = {
  name: 'resume reference',
  model: { layers: noDropoutLayers(8, 32, 47) },
  training: { epochs: EPOCHS, batchSize: 64, validationSplit: 0.2, seed: 7, optimizer: { type: 'adam', learningRate: 0.003 } },
  dataset,
};

interface Outcome {
  status: string;
  backend: string | null;
  rows: { epoch: number; loss: number; accuracy: number; valLoss: number | null; valAccuracy: number | null }[];
  testMetrics: unknown;
  sha256: string | undefined;
  events: SseEvent[];
}

class FlakyRepo extends RunsRepo {
  failures = 0;
  constructor(
    db: ConstructorParameters<typeof RunsRepo>[0],
    private failAtEpoch: number,
  ) {
    super(db);
  }
  override async saveEpoch(runId: string, row: EpochRow, checkpoint?: CheckpointRow): Promise<void> {
    if (row.epoch === this.failAtEpoch) {
      this.failAtEpoch = -1;
      this.failures++;
      throw new Error('database unreachable (simulated)');
    }
    return super.saveEpoch(runId, row, checkpoint);
  }
}

describe('resuming runs from their checkpoints', () => {
  let h: Harness;
  let pool: TrainerPool;
  let spec: NormalizedSpec;
  let reference: Outcome;
  const hosts: WorkerHost[] = [];
  const pools: TrainerPool[] = [];

  function startHost(opts: { repo?: RunsRepo; pool?: TrainerPool } = {}): Promise<WorkerHost> {
    const host = workerHost(h, opts.pool ?? pool, { repo: opts.repo ?? h.ctx.repo, log: pino({ level: h.config.logLevel }) });
    hosts.push(host);
    return host.start().then(() => host);
  }

  async function outcome(id: string): Promise<Outcome> {
    const events = await readSse(`${h.baseUrl}/v1/runs/${id}/events`, { timeoutMs: 170_000 });
    const run = await h.ctx.repo.get(id);
    const rows = (await h.ctx.repo.epochs(id)).map(({ epoch, loss, accuracy, valLoss, valAccuracy }) => ({ epoch, loss, accuracy, valLoss, valAccuracy }));
    const artifact = await h.ctx.repo.artifact(id);
    return { status: run!.status, backend: run!.backend, rows, testMetrics: run!.testMetrics, sha256: artifact?.sha256, events };
  }

  /** A run created straight in the store (what POST /v1/runs does, minus the queue). */
  async function createRun(id: string, s: NormalizedSpec = spec): Promise<void> {
    await h.ctx.repo.create({ id, name: 'resume test', specSubmitted: request, spec: s, datasetName: 'idx', paramCount: 1 }, { status: 'queued' });
  }

  const types = (o: Outcome) => o.events.map((e) => e.event).filter((t) => t !== 'batch');

  beforeAll(async () => {
    h = await startHarness();
    pool = await TrainerPool.start(1, h.config.tfjsBackend);
    pools.push(pool);
  }, 120_000);
  afterAll(async () => {
    for (const host of hosts) await host.close().catch(() => {});
    for (const p of pools) await p.close();
    await h?.close();
  });

  it('an uninterrupted reference run (wasm, no Dropout) has no checkpoint left once it succeeded', async () => {
    await startHost();
    const res = await fetch(`${h.baseUrl}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    reference = await outcome(id);
    expect(reference.status).toBe('succeeded');
    expect(reference.backend).toBe('wasm');
    expect(reference.rows.map((r) => r.epoch)).toEqual([1, 2, 3, 4]);
    expect(types(reference)).toEqual(['queued', 'started', 'epoch', 'epoch', 'epoch', 'epoch', 'completed']);
    expect(await h.ctx.repo.checkpoint(id)).toBeNull();
    spec = (await h.ctx.repo.get(id))!.spec as unknown as NormalizedSpec;
  }, 180_000);

  it('a lost worker: resumes at epoch 3 from the epoch-2 checkpoint and ends exactly like the uninterrupted run', async () => {
    // What a worker that died during epoch 3 leaves behind, computed here on the same backend.
    await initBackend('wasm');
    const data = await loadDataset(toDatasetSpec(spec.dataset), h.config.dataDir);
    const reports: EpochReport[] = [];
    let checkpoint: TrainingCheckpoint | undefined;
    const tensors = tf.memory().numTensors;
    const partial = await train(spec, data, {
      checkpoints: true,
      shouldStop: () => reports.length === 2,
      onEvent: (e) => {
        if (e.type !== 'epoch') return;
        const { type: _t, checkpoint: cp, ...report } = e;
        reports.push(report);
        if (report.epoch === 2) checkpoint = cp;
      },
    });
    expect(partial.status).toBe('cancelled');
    expect(tf.memory().numTensors).toBe(tensors);
    expect(checkpoint?.epoch).toBe(2);
    // The same first two epochs as the worker computed for the reference run.
    expect(reports.map((r) => r.train.loss)).toEqual(reference.rows.slice(0, 2).map((r) => r.loss));

    const id = '22222222-3333-4444-8555-666666666666';
    await createRun(id);
    expect(await h.ctx.repo.markRunning(id, 'wasm', null)).toBe(true);
    for (const r of reports) {
      const row = {
        epoch: r.epoch,
        loss: r.train.loss,
        accuracy: r.train.accuracy,
        valLoss: r.val?.loss ?? null,
        valAccuracy: r.val?.accuracy ?? null,
        durationMs: r.durationMs,
        details: null,
      };
      await h.ctx.repo.saveEpoch(id, row, r.epoch === 2 ? checkpoint : undefined);
    }
    expect((await h.ctx.repo.checkpoint(id))?.epoch).toBe(2);
    await h.ctx.queue.enqueue(id);

    const o = await outcome(id);
    expect(o.status).toBe('succeeded');
    expect(types(o)).toEqual(['queued', 'resumed', 'started', 'epoch', 'epoch', 'completed']);
    const resumed = o.events.find((e) => e.event === 'resumed')!;
    expect(resumed.data.fromEpoch).toBe(3);
    expect(o.events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)).toEqual([3, 4]);
    expect(o.events.filter((e) => e.event === 'batch').every((e) => (e.data.epoch as number) >= 3)).toBe(true);
    // Rows 1..4 exactly once (the primary key forbids duplicates; the count rules out gaps)…
    expect(o.rows.map((r) => r.epoch)).toEqual([1, 2, 3, 4]);
    // …and the resumed epochs, test metrics and model bytes are those of the uninterrupted run.
    expect(o.rows).toEqual(reference.rows);
    expect(o.testMetrics).toEqual(reference.testMetrics);
    expect(o.sha256).toBe(reference.sha256);
    expect(await h.ctx.repo.checkpoint(id)).toBeNull();
  }, 180_000);

  it('a spec that can never train fails at once: no retry, the reason stored on the run', async () => {
    const id = '33333333-4444-4555-8666-777777777777';
    const missing = structuredClone(spec);
    if (missing.dataset.name !== 'idx') throw new Error('expected an idx dataset');
    missing.dataset.train = { ...missing.dataset.train, images: 'emnist-mini/not-there-idx3-ubyte.gz' };
    await createRun(id, missing);
    await h.ctx.queue.enqueue(id);
    const o = await outcome(id);
    expect(o.status).toBe('failed');
    expect(types(o)).toEqual(['queued', 'failed']);
    const run = await h.ctx.repo.get(id);
    expect(run?.error).toMatch(/not-there/);
    const job = await h.ctx.queue.queue.getJob(id);
    expect(await job?.getState()).toBe('failed');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.opts.attempts).toBeGreaterThan(1);
    for (const host of hosts.splice(0)) await host.close();
  }, 60_000);

  it('a transient failure (the database away while storing epoch 2): BullMQ retries after its backoff and the retry resumes after epoch 1', async () => {
    const flaky = new FlakyRepo(h.ctx.prisma, 2);
    await startHost({ repo: flaky });
    const id = '44444444-5555-4666-8777-888888888888';
    await createRun(id);
    await h.ctx.queue.enqueue(id);
    const o = await outcome(id);
    expect(flaky.failures).toBe(1);
    expect(o.status).toBe('succeeded');
    expect(types(o)).toEqual(['queued', 'started', 'epoch', 'retrying', 'resumed', 'started', 'epoch', 'epoch', 'epoch', 'completed']);
    const retrying = o.events.find((e) => e.event === 'retrying')!.data;
    expect(retrying).toMatchObject({ error: 'database unreachable (simulated)', attempt: 1, resumeFromEpoch: 2 });
    expect(o.events.find((e) => e.event === 'resumed')!.data).toMatchObject({ fromEpoch: 2 });
    expect(o.rows.map((r) => r.epoch)).toEqual([1, 2, 3, 4]);
    expect(o.rows).toEqual(reference.rows);
    expect(o.sha256).toBe(reference.sha256);
    expect(await (await h.ctx.queue.queue.getJob(id))?.getState()).toBe('completed');
    for (const host of hosts.splice(0)) await host.close();
  }, 180_000);

  it('a graceful shutdown hands the job back: the run stays running and another worker resumes it', async () => {
    const ownPool = await TrainerPool.start(1, h.config.tfjsBackend);
    pools.push(ownPool);
    const first = await startHost({ pool: ownPool });
    const id = '55555555-6666-4777-8888-999999999999';
    // Ten epochs leave training well under way when the shutdown lands; the first four are the reference's.
    const longer = structuredClone(spec);
    longer.training.epochs = 10;
    await createRun(id, longer);
    await h.ctx.queue.enqueue(id);
    // Shut down once epoch 1 is stored, during epoch 2.
    await readSse(`${h.baseUrl}/v1/runs/${id}/events`, { until: (e) => e.event === 'batch' && e.data.epoch === 2 });
    const t0 = performance.now();
    expect(await first.shutdown(20_000)).toBe(true);
    const stoppedMs = performance.now() - t0;
    expect(stoppedMs).toBeLessThan(20_000);
    const run = await h.ctx.repo.get(id);
    expect(run?.status).toBe('running');
    expect(run?.cancelRequested).toBe(false);
    // Handed back through `delayed` with no delay (see WorkerHost.handBack): any worker takes it at once.
    expect(['delayed', 'waiting', 'prioritized']).toContain(await (await h.ctx.queue.queue.getJob(id))?.getState());
    const cp = await h.ctx.repo.checkpoint(id);
    expect(cp?.epoch).toBeGreaterThanOrEqual(1);
    const interrupted = (await h.ctx.repo.events(id)).filter((e) => e.type === 'interrupted');
    expect(interrupted).toHaveLength(1);
    expect(interrupted[0]!.data).toMatchObject({ resumeFromEpoch: cp!.epoch + 1 });

    await startHost();
    const o = await outcome(id);
    expect(o.status).toBe('succeeded');
    const t = types(o);
    expect(t.slice(t.indexOf('interrupted'), t.indexOf('interrupted') + 3)).toEqual(['interrupted', 'resumed', 'started']);
    expect(o.events.find((e) => e.event === 'resumed')!.data).toMatchObject({ fromEpoch: cp!.epoch + 1 });
    expect(o.rows.map((r) => r.epoch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(o.rows.slice(0, 4)).toEqual(reference.rows);
  }, 180_000);
});
