/**
 * A run's events: their names and payloads, which of them (and which statuses) are terminal, how an
 * epoch's report becomes its stored row and its event, and the journal that records one (store
 * first, which assigns the SSE id, then publish). Every writer of run events goes through here, so
 * what a follower may receive is written down once.
 */
import type { EpochReport, LayerStats, LossParts, StoppedEarly, TrainingEvent } from '../engine/types.js';

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** The statuses a run never leaves. */
export const TERMINAL_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled'];

export type TerminalStatus = 'succeeded' | 'failed' | 'cancelled';

export function isTerminalStatus(status: string): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** The events that end a run's stream: one per terminal status. */
export const TERMINAL_EVENTS = { completed: 'succeeded', failed: 'failed', cancelled: 'cancelled' } as const satisfies Record<string, TerminalStatus>;

export type TerminalEventType = keyof typeof TERMINAL_EVENTS;

export function isTerminalEvent(type: string): type is TerminalEventType {
  return Object.hasOwn(TERMINAL_EVENTS, type);
}

type EngineEvent<T extends TrainingEvent['type']> = Omit<Extract<TrainingEvent, { type: T }>, 'type'>;

/** An epoch's stored row (EpochMetric): the headline figures, and the rest of the report in `details`. */
export interface EpochRow {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
  durationMs: number;
  /** Null for rows written without a report (tests, or before details were kept). */
  details: EpochDetails | null;
}

export interface EpochDetails {
  train: LossParts;
  val: LossParts | null;
  samplesPerSec: number;
  weights: LayerStats[];
}

/** Every event a run may record, by name, with its payload. */
export interface RunEventPayloads {
  /** The first event, written with the run. */
  queued: { status: 'queued'; studyId?: string; variant?: string };
  started: { backend: string; backendNote: string | null } & EngineEvent<'started'>;
  batch: EngineEvent<'batch'>;
  epoch: Omit<EpochRow, 'details'> & { epochs: number; samplesPerSec: number; train: LossParts; val: LossParts | null; weights: LayerStats[] };
  'early-stopped': EngineEvent<'early-stopped'>;
  /** Training continues after the run's checkpoint (its worker was lost, shut down, or an attempt failed). */
  resumed: { fromEpoch: number; reason: string };
  /** As resumed, but no epoch was stored: training starts again from epoch 1. */
  restarted: { reason: string };
  /** The worker shut down; the job went back to the queue. */
  interrupted: { reason: string; resumeFromEpoch: number };
  /** An attempt failed; BullMQ retries it. */
  retrying: { error: string; attempt: number; attempts: number; resumeFromEpoch: number };
  completed: {
    test: LossParts & { majorityRate: number };
    durationMs: number;
    samplesPerSec: number | null;
    stoppedEarly: StoppedEarly | null;
    weights: LayerStats[];
    modelSha256: string;
  };
  failed: { error: string };
  cancelled: { reason: string; epochsCompleted?: number; durationMs?: number };
}

export type RunEventType = keyof RunEventPayloads;

/** One event to record: its name and the payload that name carries. */
export type RunEvent<K extends RunEventType = RunEventType> = { [T in K]: { type: T; data: RunEventPayloads[T] } }[K];

/**
 * An event as stored (`seq` is its SSE id) and as it travels over Redis. Read back, its payload is
 * whatever was stored then, so it stays `unknown` until a reader narrows it.
 */
export interface StoredEvent {
  seq: number;
  type: string;
  data: unknown;
  createdAt: Date;
}

/** An engine epoch report → its stored row and its event (the one place this shape is written). */
export function epochRecord(report: EpochReport): { row: EpochRow; event: RunEvent<'epoch'> } {
  const { epoch, epochs, durationMs, samplesPerSec, train, val, weights } = report;
  const headline = { epoch, loss: train.loss, accuracy: train.accuracy, valLoss: val?.loss ?? null, valAccuracy: val?.accuracy ?? null, durationMs };
  return {
    row: { ...headline, details: { train, val, samplesPerSec, weights } },
    event: { type: 'epoch', data: { ...headline, epochs, samplesPerSec, train, val, weights } },
  };
}

/** Where events are stored: the next sequence number is assigned there. */
export interface RunEventStore {
  appendEvent(runId: string, type: RunEventType, data: unknown): Promise<StoredEvent>;
}

/** Where stored events go live (RunEventBus). */
export interface RunEventPublisher {
  publish(runId: string, event: StoredEvent): Promise<void>;
}

export interface RecordOptions {
  /**
   * The event was stored but not published live (Redis away). Without this the error is thrown;
   * with it, recording succeeds: the store is the record, and followers catch up from it.
   */
  onPublishFailure?: (err: unknown) => void;
}

/** Records run events: stores each (which assigns its SSE id), then publishes it. */
export class RunJournal {
  constructor(
    private readonly store: RunEventStore,
    private readonly publisher: RunEventPublisher,
  ) {}

  async record(runId: string, event: RunEvent, opts: RecordOptions = {}): Promise<StoredEvent> {
    const stored = await this.store.appendEvent(runId, event.type, event.data);
    try {
      await this.publisher.publish(runId, stored);
    } catch (err) {
      if (!opts.onPublishFailure) throw err;
      opts.onPublishFailure(err);
    }
    return stored;
  }

  /** One run's events recorded in order, in the background (see RunEventSequence). */
  sequence(runId: string, handlers: SequenceHandlers = {}): RunEventSequence {
    return new RunEventSequence(this, runId, handlers);
  }
}

export interface SequenceHandlers {
  /** Called once, at the first failed write. */
  onFailure?: (err: unknown) => void;
  /** A stored event that could not be published live (Redis away): followers catch up from the store. */
  onPublishFailure?: (err: unknown) => void;
}

/**
 * A training's events, written in the order they were recorded without making the training wait:
 * each record queues behind the previous one. After a failed write nothing more is stored.
 */
export class RunEventSequence {
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly journal: RunJournal,
    private readonly runId: string,
    private readonly handlers: SequenceHandlers,
  ) {}

  /** Queues `event`; `before` (e.g. storing the epoch's row) runs first, in the same order. */
  record(event: RunEvent, before?: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      // After a failed write nothing more is stored: the attempt fails and its retry resumes from
      // the last checkpoint that was stored.
      if (this.failure !== undefined) return;
      try {
        if (before) await before();
        // The store is the record; the live publish is best effort. Training must not stop because
        // Redis is briefly away: SSE followers replay missed events from the store on reconnect.
        await this.journal.record(this.runId, event, { onPublishFailure: this.handlers.onPublishFailure ?? (() => {}) });
      } catch (err) {
        this.failure = err ?? new Error('recording failed');
        this.handlers.onFailure?.(err);
      }
    });
  }

  /** Waits for every recorded event; throws the first storage failure, if any. */
  async flush(): Promise<void> {
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }
}
