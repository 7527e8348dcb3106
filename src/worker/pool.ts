/**
 * A pool of long-lived training threads (one per unit of worker concurrency). Each thread keeps its
 * backend and its last dataset between runs.
 *
 * A thread is never trusted after its engine failed: a trap or exhausted memory (wasm or native)
 * can leave the backend's memory broken, so every later run on it would fail too. Such a thread is
 * terminated and replaced by a fresh one, and so is a thread that does not honour a stop request
 * (cancel, shutdown, wall-clock limit) within `stopGraceMs`: a kernel that never returns cannot be
 * interrupted any other way. Terminating a thread returns its JS heap, its wasm memory and the
 * ArrayBuffers it owned. Native (onednn) allocations go back only if the backend frees them on
 * thread exit; a native abort() takes the whole process down (BullMQ's stalled check then hands
 * the job to another worker, see host.ts).
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BackendPreference } from '../config.js';
import type { NormalizedSpec } from '../run-spec/normalized.js';
import type { TrainingCheckpoint, TrainingEvent, TrainingResult } from '../engine/types.js';
import {
  classifyFault,
  STOP_CANCEL,
  STOP_INTERRUPT,
  type BackendReport,
  type InjectedFault,
  type ThreadInit,
  type ThreadMessage,
  type TrainRequest,
} from './protocol.js';

/** Why a training stopped before its end: a user's cancel, or an interruption (shutdown, failed write). */
export type StopReason = 'cancel' | 'interrupt';

export interface TrainOutcome {
  result: TrainingResult;
  /** Live tensors in the thread after the run; null when the thread was terminated. */
  numTensors: number | null;
  /** Set when the stop flag was raised (the result is then 'cancelled' unless training had just ended). */
  stop: StopReason | null;
  /** True when the thread did not stop in time and was terminated (and replaced). */
  terminated: boolean;
}

/** What went wrong: bad data or spec, a native fault, the run's time limit, a thread that died, or anything else. */
export type FailureKind = 'setup' | 'trap' | 'out-of-memory' | 'time-limit' | 'thread-exit' | 'error';

export class TrainingFailedError extends Error {
  override readonly name = 'TrainingFailedError';

  constructor(
    message: string,
    readonly unrecoverable: boolean,
    readonly kind: FailureKind = 'error',
  ) {
    super(message);
  }
}

export interface PoolOptions {
  /** Threads a native backend (onednn) may use in each training thread; default: cores / pool size. */
  threadsPerRun?: number;
  /**
   * V8 heap ceiling of each training thread (worker_threads resourceLimits.maxOldGenerationSizeMb).
   * It covers JS objects only: tensor data in ArrayBuffers, wasm memory and native memory are
   * outside V8's heap (see README, "Limits").
   */
  heapLimitMb?: number;
  /** How long a stop request may go unanswered before the thread is terminated (default 5 s). */
  stopGraceMs?: number;
  /** Test-only: let runs ask for an InjectedFault. */
  faultInjection?: boolean;
  /** Told whenever a thread is terminated and replaced. */
  onReplace?: (info: { runId: string | null; reason: string }) => void;
}

export interface PoolHealth {
  ok: boolean;
  /** Live training threads / the pool's size. */
  threads: number;
  size: number;
  /** Threads replaced since start (after faults, unanswered stops, time limits). */
  replaced: number;
  /** Why the pool is not ok (a replacement thread that could not start its backend). */
  problem: string | null;
}

interface Slot {
  worker: Worker;
  backend: BackendReport;
  busy: boolean;
  runId: string | null;
  /** Terminated (or about to be) by the pool: never given another run. */
  retired: boolean;
  /** The thread's uncaught error, if it died of one. */
  error: Error | undefined;
}

interface Active {
  slot: Slot;
  cancel: Int32Array;
  onEvent: (e: TrainingEvent) => void;
  onData: (source: string, ms: number) => void;
  settle: (r: { ok: TrainOutcome } | { err: TrainingFailedError }) => void;
  timers: NodeJS.Timeout[];
  stopTimer?: NodeJS.Timeout;
}

/** A free thread reserved for one run: its backend is known before the run is marked running. */
export interface Lease {
  readonly backend: BackendReport;
  train(spec: NormalizedSpec, opts: TrainOpts): Promise<TrainOutcome>;
  /** Gives the thread back (after train() settled, or instead of training). */
  release(): void;
}

export interface TrainOpts {
  dataDir: string;
  progressIntervalMs: number;
  onEvent: (e: TrainingEvent) => void;
  onData?: (source: string, ms: number) => void;
  /** Continue after this checkpoint's epoch. */
  resume?: TrainingCheckpoint;
  /** Wall-clock budget left for this run; past it the thread is terminated and the run fails (time-limit). */
  timeLimitMs?: number;
  /** Test-only (pool started with faultInjection). */
  fault?: InjectedFault;
}

const DEFAULT_STOP_GRACE_MS = 5000;
const RESPAWN_RETRY_MS = 5000;

/** Under tsx/vitest the thread is TypeScript: start it through a tiny loader that registers tsx first. */
function spawn(init: ThreadInit, heapLimitMb: number | undefined): Worker {
  const isTs = import.meta.url.endsWith('.ts');
  const entry = new URL(`./thread.${isTs ? 'ts' : 'js'}`, import.meta.url);
  const limits = heapLimitMb !== undefined ? { resourceLimits: { maxOldGenerationSizeMb: heapLimitMb } } : {};
  if (!isTs) return new Worker(entry, { workerData: init, ...limits });
  return new Worker(new URL('./ts-loader.mjs', import.meta.url), { workerData: { ...init, __entry: entry.href }, ...limits });
}

export class TrainerPool {
  private readonly slots: Slot[] = [];
  private readonly active = new Map<string, Active>();
  private readonly waiters: ((s: Slot) => void)[] = [];
  private closing = false;
  /** Set by interruptAll(): a training that starts afterwards stops before its first batch. */
  private interrupting = false;
  private replaced = 0;
  private respawnProblem: string | null = null;
  private lastBackend: BackendReport | undefined;

  private constructor(
    private readonly size: number,
    private readonly init: ThreadInit,
    private readonly opts: PoolOptions,
  ) {}

  static async start(size: number, backend: BackendPreference, opts: PoolOptions = {}): Promise<TrainerPool> {
    const threads = opts.threadsPerRun ?? Math.max(1, Math.floor(os.availableParallelism() / size));
    const pool = new TrainerPool(size, { backend, threads, ...(opts.faultInjection ? { faultInjection: true } : {}) }, opts);
    await Promise.all(Array.from({ length: size }, () => pool.addSlot()));
    return pool;
  }

  /** The backend of the pool's threads (the first live one; the last known while all are being replaced). */
  get backend(): BackendReport {
    const b = this.slots.find((s) => !s.retired)?.backend ?? this.lastBackend;
    if (!b) throw new Error('the trainer pool has no threads');
    return b;
  }

  /** Threads per run given to a native backend. */
  get threadsPerRun(): number {
    return this.init.threads;
  }

  health(): PoolHealth {
    const threads = this.slots.filter((s) => !s.retired).length;
    const problem = this.respawnProblem ?? (threads < this.size ? `${this.size - threads} training thread(s) being replaced` : null);
    return { ok: this.respawnProblem === null && threads === this.size, threads, size: this.size, replaced: this.replaced, problem };
  }

  private addSlot(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = spawn(this.init, this.opts.heapLimitMb);
      let started = false;
      const onFirst = (m: ThreadMessage) => {
        if (m.type === 'ready') {
          started = true;
          const slot: Slot = { worker, backend: m.backend, busy: false, runId: null, retired: false, error: undefined };
          this.lastBackend = m.backend;
          this.slots.push(slot);
          worker.off('message', onFirst);
          worker.on('message', (msg: ThreadMessage) => this.onMessage(slot, msg));
          worker.on('error', (err) => {
            slot.error = err;
          });
          worker.on('exit', (code) => this.onExit(slot, code));
          this.handOut(slot);
          resolve();
        } else if (m.type === 'init-failed') {
          void worker.terminate();
          reject(new Error(`training thread could not start its backend: ${m.message}`));
        }
      };
      worker.on('message', onFirst);
      worker.once('error', (err) => {
        if (!started) reject(err);
      });
      worker.once('exit', (code) => {
        if (!started) reject(new Error(`training thread exited with code ${code} while starting`));
      });
    });
  }

  /** A fresh thread in place of a retired one; retried until it starts (health() says why not meanwhile). */
  private respawn(): void {
    if (this.closing) return;
    this.addSlot().then(
      () => {
        this.respawnProblem = null;
      },
      (err: unknown) => {
        this.respawnProblem = `a replacement training thread could not start: ${err instanceof Error ? err.message : String(err)}`;
        setTimeout(() => this.respawn(), RESPAWN_RETRY_MS).unref();
      },
    );
  }

  /** Terminates a thread that can no longer be trusted (or that does not stop) and starts another. */
  private retire(slot: Slot, reason: string): void {
    if (slot.retired) return;
    slot.retired = true;
    this.replaced++;
    this.opts.onReplace?.({ runId: slot.runId, reason });
    void slot.worker.terminate();
    // onExit removes the slot and respawns.
  }

  private onExit(slot: Slot, code: number): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    const wasRetired = slot.retired;
    slot.retired = true;
    const a = slot.runId ? this.active.get(slot.runId) : undefined;
    if (a && a.slot === slot) {
      // The thread died on its own (the pool settles runs before it terminates a thread).
      const err = slot.error;
      const oom = (err as { code?: string } | undefined)?.code === 'ERR_WORKER_OUT_OF_MEMORY';
      const fault = oom ? 'out-of-memory' : err ? classifyFault(err) : null;
      const why = oom
        ? `the training thread ran out of memory (its JS heap limit is ${this.opts.heapLimitMb ?? 'Node’s default'} MB)`
        : `the training thread exited with code ${code}${err ? `: ${err.message}` : ''}`;
      this.settle(slot.runId!, { err: new TrainingFailedError(why, fault !== null, fault ?? 'thread-exit') });
    }
    if (!wasRetired) {
      this.replaced++;
      this.opts.onReplace?.({ runId: slot.runId, reason: `thread exited with code ${code}` });
    }
    this.respawn();
  }

  private settle(runId: string, r: { ok: TrainOutcome } | { err: TrainingFailedError }): void {
    const a = this.active.get(runId);
    if (!a) return;
    this.active.delete(runId);
    for (const t of a.timers) clearTimeout(t);
    a.settle(r);
  }

  private onMessage(slot: Slot, m: ThreadMessage): void {
    if (m.type === 'ready' || m.type === 'init-failed') return;
    const a = this.active.get(m.runId);
    if (!a || a.slot !== slot || slot.retired) return;
    switch (m.type) {
      case 'data-loaded':
        a.onData(m.source, m.ms);
        break;
      case 'event':
        a.onEvent(m.event);
        break;
      case 'done': {
        const flag = Atomics.load(a.cancel, 0);
        this.settle(m.runId, {
          ok: {
            result: m.result,
            numTensors: m.numTensors,
            stop: flag === STOP_CANCEL ? 'cancel' : flag === STOP_INTERRUPT ? 'interrupt' : null,
            terminated: false,
          },
        });
        break;
      }
      case 'failed': {
        const kind: FailureKind = m.fault ?? (m.unrecoverable ? 'setup' : 'error');
        this.settle(m.runId, { err: new TrainingFailedError(m.message, m.unrecoverable, kind) });
        // Anything but bad input may have left the engine in a broken state: never train on it again.
        if (kind !== 'setup') this.retire(slot, `${kind}: ${m.message}`);
        break;
      }
    }
  }

  private handOut(slot: Slot): void {
    const next = this.waiters.shift();
    if (next) {
      slot.busy = true;
      next(slot);
    }
  }

  private acquire(): Promise<Slot> {
    const free = this.slots.find((s) => !s.busy && !s.retired);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private release(slot: Slot): void {
    slot.runId = null;
    slot.busy = false;
    if (!slot.retired && this.slots.includes(slot)) this.handOut(slot);
  }

  /** Reserves a thread for `runId` (waits for one to be free). */
  async lease(runId: string): Promise<Lease> {
    const slot = await this.acquire();
    slot.runId = runId;
    let released = false;
    return {
      backend: slot.backend,
      train: (spec, opts) => this.trainOn(slot, runId, spec, opts),
      release: () => {
        if (released) return;
        released = true;
        this.release(slot);
      },
    };
  }

  /** lease() + train + release. */
  async train(runId: string, spec: NormalizedSpec, opts: TrainOpts): Promise<TrainOutcome> {
    const lease = await this.lease(runId);
    try {
      return await lease.train(spec, opts);
    } finally {
      lease.release();
    }
  }

  private trainOn(slot: Slot, runId: string, spec: NormalizedSpec, opts: TrainOpts): Promise<TrainOutcome> {
    if (slot.retired) return Promise.reject(new TrainingFailedError('the training thread was replaced before the run started', false, 'thread-exit'));
    if (opts.fault && !this.init.faultInjection) throw new Error('fault injection is off in this pool');
    const cancel = new SharedArrayBuffer(4);
    const done = new Promise<TrainOutcome>((resolve, reject) => {
      const a: Active = {
        slot,
        cancel: new Int32Array(cancel),
        onEvent: opts.onEvent,
        onData: opts.onData ?? (() => {}),
        settle: (r) => ('ok' in r ? resolve(r.ok) : reject(r.err)),
        timers: [],
      };
      this.active.set(runId, a);
      if (opts.timeLimitMs !== undefined) {
        const limit = opts.timeLimitMs;
        a.timers.push(
          setTimeout(
            () => {
              if (this.active.get(runId) !== a) return;
              this.settle(runId, { err: new TrainingFailedError(`time limit: the run did not finish within its wall-clock limit`, true, 'time-limit') });
              this.retire(slot, 'the run reached its wall-clock limit');
            },
            Math.max(0, limit),
          ),
        );
      }
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
      ...(opts.fault ? { fault: opts.fault } : {}),
    };
    slot.worker.postMessage(req);
    return done;
  }

  /**
   * Raises the stop flag; a thread that has not answered within the grace period (a kernel that
   * never returns) is terminated and the run ends as if it had stopped at once.
   */
  private stop(runId: string, reason: StopReason): boolean {
    const a = this.active.get(runId);
    if (!a) return false;
    if (reason === 'cancel')
      Atomics.store(a.cancel, 0, STOP_CANCEL); // a cancel wins over an interruption
    else Atomics.compareExchange(a.cancel, 0, 0, STOP_INTERRUPT);
    if (a.stopTimer) return true; // already being enforced
    a.stopTimer = setTimeout(() => {
      if (this.active.get(runId) !== a) return;
      const stop: StopReason = Atomics.load(a.cancel, 0) === STOP_CANCEL ? 'cancel' : 'interrupt';
      this.settle(runId, { ok: { result: { status: 'cancelled', epochs: [] }, numTensors: null, stop, terminated: true } });
      this.retire(a.slot, `the thread did not stop within ${this.stopGraceMs} ms of a ${stop} request`);
    }, this.stopGraceMs);
    a.timers.push(a.stopTimer);
    return true;
  }

  private get stopGraceMs(): number {
    return this.opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  }

  /** Asks a running training to stop before its next batch (terminated if it does not). False if this pool does not run it. */
  cancel(runId: string): boolean {
    return this.stop(runId, 'cancel');
  }

  /**
   * Asks a running training to stop before its next batch without cancelling its run (it is to be
   * resumed from its checkpoint). A cancel already asked for stays a cancel. False if not running here.
   */
  interrupt(runId: string): boolean {
    return this.stop(runId, 'interrupt');
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
    for (const s of this.slots) s.retired = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}
