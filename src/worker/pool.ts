/**
 * A pool of long-lived training threads (one per unit of worker concurrency). Each thread keeps its
 * backend and its last dataset between runs.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BackendPreference } from '../config.js';
import type { NormalizedSpec } from '../spec/normalized.js';
import type { TrainingCheckpoint, TrainingEvent, TrainingResult } from '../engine/types.js';
import { STOP_CANCEL, STOP_INTERRUPT, type BackendReport, type ThreadInit, type ThreadMessage, type TrainRequest } from './protocol.js';

/** Why a training stopped before its end: a user's cancel, or an interruption (shutdown, failed write). */
export type StopReason = 'cancel' | 'interrupt';

export interface TrainOutcome {
  result: TrainingResult;
  numTensors: number;
  /** Set when the stop flag was raised (the result is then 'cancelled' unless training had just ended). */
  stop: StopReason | null;
}

export class TrainingFailed extends Error {
  constructor(
    message: string,
    readonly unrecoverable: boolean,
  ) {
    super(message);
    this.name = 'TrainingFailed';
  }
}

interface Slot {
  worker: Worker;
  backend: BackendReport;
  busy: boolean;
  runId: string | null;
}

interface Active {
  cancel: Int32Array;
  onEvent: (e: TrainingEvent) => void;
  onData: (source: string, ms: number) => void;
  resolve: (r: TrainOutcome) => void;
  reject: (e: Error) => void;
}

/** Under tsx/vitest the thread is TypeScript: start it through a tiny loader that registers tsx first. */
function spawn(init: ThreadInit): Worker {
  const isTs = import.meta.url.endsWith('.ts');
  const entry = new URL(`./thread.${isTs ? 'ts' : 'js'}`, import.meta.url);
  if (!isTs) return new Worker(entry, { workerData: init });
  return new Worker(new URL('./ts-loader.mjs', import.meta.url), { workerData: { ...init, __entry: entry.href } });
}

export class TrainerPool {
  private readonly slots: Slot[] = [];
  private readonly active = new Map<string, Active>();
  private readonly waiters: ((s: Slot) => void)[] = [];

  private constructor(private readonly init: ThreadInit) {}

  static async start(size: number, backend: BackendPreference): Promise<TrainerPool> {
    const pool = new TrainerPool({ backend, threads: Math.max(1, Math.floor(os.availableParallelism() / size)) });
    await Promise.all(Array.from({ length: size }, () => pool.addSlot()));
    return pool;
  }

  get backend(): BackendReport {
    const s = this.slots[0];
    if (!s) throw new Error('the trainer pool has no threads');
    return s.backend;
  }

  private addSlot(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = spawn(this.init);
      const onFirst = (m: ThreadMessage) => {
        if (m.type === 'ready') {
          const slot: Slot = { worker, backend: m.backend, busy: false, runId: null };
          this.slots.push(slot);
          worker.on('message', (msg: ThreadMessage) => this.onMessage(msg));
          worker.off('message', onFirst);
          worker.on('exit', (code) => this.onExit(slot, code));
          resolve();
        } else if (m.type === 'init-failed') {
          void worker.terminate();
          reject(new Error(`training thread could not start its backend: ${m.message}`));
        }
      };
      worker.on('message', onFirst);
      worker.on('error', (err) => {
        reject(err);
        this.lastError = err;
      });
    });
  }

  private lastError: Error | undefined;
  private closing = false;
  /** Set by interruptAll(): a training that starts afterwards stops before its first batch. */
  private interrupting = false;

  /** A thread died (out of memory, a crash in a kernel): fail its run and start a fresh thread. */
  private onExit(slot: Slot, code: number): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    if (slot.runId) {
      const a = this.active.get(slot.runId);
      this.active.delete(slot.runId);
      a?.reject(new TrainingFailed(`training thread exited with code ${code}${this.lastError ? `: ${this.lastError.message}` : ''}`, false));
    }
    if (!this.closing) {
      void this.addSlot().then(() => {
        const fresh = this.slots.find((s) => !s.busy);
        const next = fresh && this.waiters.shift();
        if (fresh && next) {
          fresh.busy = true;
          next(fresh);
        }
      });
    }
  }

  private onMessage(m: ThreadMessage): void {
    if (m.type === 'ready' || m.type === 'init-failed') return;
    const a = this.active.get(m.runId);
    if (!a) return;
    switch (m.type) {
      case 'data-loaded':
        a.onData(m.source, m.ms);
        break;
      case 'event':
        a.onEvent(m.event);
        break;
      case 'done': {
        this.active.delete(m.runId);
        const flag = Atomics.load(a.cancel, 0);
        a.resolve({ result: m.result, numTensors: m.numTensors, stop: flag === STOP_CANCEL ? 'cancel' : flag === STOP_INTERRUPT ? 'interrupt' : null });
        break;
      }
      case 'failed':
        this.active.delete(m.runId);
        a.reject(new TrainingFailed(m.message, m.unrecoverable));
        break;
    }
  }

  private acquire(): Promise<Slot> {
    const free = this.slots.find((s) => !s.busy);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(slot: Slot): void {
    const next = this.waiters.shift();
    if (next) next(slot);
    else slot.busy = false;
  }

  async train(
    runId: string,
    spec: NormalizedSpec,
    opts: {
      dataDir: string;
      progressIntervalMs: number;
      onEvent: (e: TrainingEvent) => void;
      onData?: (source: string, ms: number) => void;
      /** Continue after this checkpoint's epoch. */
      resume?: TrainingCheckpoint;
    },
  ): Promise<TrainOutcome> {
    const slot = await this.acquire();
    slot.runId = runId;
    try {
      const cancel = new SharedArrayBuffer(4);
      const done = new Promise<TrainOutcome>((resolve, reject) => {
        this.active.set(runId, {
          cancel: new Int32Array(cancel),
          onEvent: opts.onEvent,
          onData: opts.onData ?? (() => {}),
          resolve,
          reject,
        });
      });
      if (this.interrupting) this.interrupt(runId);
      const req: TrainRequest = {
        type: 'train',
        runId,
        spec,
        dataDir: opts.dataDir,
        progressIntervalMs: opts.progressIntervalMs,
        cancel,
        ...(opts.resume ? { resume: opts.resume } : {}),
      };
      slot.worker.postMessage(req);
      return await done;
    } finally {
      slot.runId = null;
      if (this.slots.includes(slot)) this.release(slot);
    }
  }

  /** Asks a running training to stop before its next batch. False if this pool does not run it. */
  cancel(runId: string): boolean {
    const a = this.active.get(runId);
    if (!a) return false;
    Atomics.store(a.cancel, 0, STOP_CANCEL); // a cancel wins over an interruption
    return true;
  }

  /**
   * Asks a running training to stop before its next batch without cancelling its run (it is to be
   * resumed from its checkpoint). A cancel already asked for stays a cancel. False if not running here.
   */
  interrupt(runId: string): boolean {
    const a = this.active.get(runId);
    if (!a) return false;
    Atomics.compareExchange(a.cancel, 0, 0, STOP_INTERRUPT);
    return true;
  }

  /** Interrupts every training of this pool, and any started from now on (shutdown); returns their run ids. */
  interruptAll(): string[] {
    this.interrupting = true;
    const ids = [...this.active.keys()];
    for (const id of ids) this.interrupt(id);
    return ids;
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}
