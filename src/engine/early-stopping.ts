/**
 * Keras' EarlyStopping as a pure state machine: it consumes one monitored value per epoch and
 * answers whether to snapshot the weights, stop, and restore the snapshot. The training loop does
 * the tensor work (train.ts).
 *
 * Semantics: tf.keras 2.12–2.15 (keras/callbacks.py, EarlyStopping; the last Keras 2 shipped as
 * tf.keras). In Keras' 0-based epoch index k = epoch - 1:
 *
 *   __init__:        min_delta = |min_delta|, negated in min mode (monitor_op = less), kept in max
 *                    mode (greater); _is_improvement(cur, ref) = monitor_op(cur - min_delta, ref)
 *   on_train_begin:  wait = 0, best = +inf (min) / -inf (max), best_weights = None, best_epoch = 0
 *   on_epoch_end:    if current is None or k < start_from_epoch: return
 *                    if restore_best_weights and best_weights is None: best_weights = get_weights()
 *                    wait += 1
 *                    if _is_improvement(current, best):
 *                        best = current; best_epoch = k; best_weights = get_weights() (if restoring)
 *                        if baseline is None or _is_improvement(current, baseline): wait = 0
 *                        return                       # an improving epoch never stops (2.12+)
 *                    if wait >= patience and k > 0:
 *                        stopped_epoch = k; stop_training = True
 *                        if restore_best_weights and best_weights is not None: set_weights(best_weights)
 *   on_train_end:    nothing is restored — when every epoch runs, the model keeps the last epoch's
 *                    weights (tf-keras 2.16 and Keras 3 moved the restore to on_train_end).
 *
 * One deliberate difference: when the first monitored value is no improvement (NaN), Keras 2.15
 * snapshots that epoch's weights but leaves best_epoch at 0; here bestEpoch names the epoch whose
 * weights were snapshotted (as tf-keras 2.16 does). Comparisons with NaN are false, as in numpy.
 */
import type { NormalizedTraining } from '../run-spec/normalized.js';
import type { EarlyStoppingState } from './types.js';

export type EarlyStoppingConfig = NonNullable<NormalizedTraining['earlyStopping']>;

export interface EarlyStoppingStep {
  /** Copy the current weights: they are the best so far (asked only with restoreBestWeights). */
  snapshot: boolean;
  /** Stop after this epoch. */
  stop: boolean;
  /** With `stop`: write the last snapshot back (restoreBestWeights and a snapshot exists). */
  restore: boolean;
}

const CONTINUE: EarlyStoppingStep = { snapshot: false, stop: false, restore: false };

export class EarlyStopping {
  /** Keras' signed min_delta: +|minDelta| in max mode, -|minDelta| in min mode. */
  private readonly minDelta: number;
  private hasSnapshot = false;
  /** Keras' wait counter. */
  wait = 0;
  /** Best monitored value so far (±Infinity before the first improvement). */
  best: number;
  /** 1-based epoch of `best` (0: none yet). */
  bestEpoch = 0;
  /** 1-based epoch that stopped training (0: not stopped). */
  stoppedEpoch = 0;

  constructor(readonly config: EarlyStoppingConfig) {
    this.minDelta = config.mode === 'max' ? Math.abs(config.minDelta) : -Math.abs(config.minDelta);
    this.best = config.mode === 'max' ? -Infinity : Infinity;
  }

  /** The counters, JSON-safe, for a checkpoint. */
  state(): EarlyStoppingState {
    const b = this.best;
    const best = Number.isFinite(b) ? b : Number.isNaN(b) ? 'NaN' : b > 0 ? 'Infinity' : '-Infinity';
    return { wait: this.wait, best, bestEpoch: this.bestEpoch, stoppedEpoch: this.stoppedEpoch, hasSnapshot: this.hasSnapshot };
  }

  /** Puts back counters taken by state() (a resumed run). */
  load(s: EarlyStoppingState): void {
    this.wait = s.wait;
    this.best = typeof s.best === 'number' ? s.best : Number(s.best);
    this.bestEpoch = s.bestEpoch;
    this.stoppedEpoch = s.stoppedEpoch;
    this.hasSnapshot = s.hasSnapshot;
  }

  private isImprovement(current: number, reference: number): boolean {
    const shifted = current - this.minDelta;
    return this.config.mode === 'max' ? shifted > reference : shifted < reference;
  }

  /**
   * The end of `epoch` (1-based) with the monitored value (`null`: not available, e.g. no
   * validation data — Keras warns and skips the epoch).
   */
  onEpochEnd(epoch: number, current: number | null): EarlyStoppingStep {
    const k = epoch - 1;
    if (current === null || k < this.config.startFromEpoch) return CONTINUE;
    const restoring = this.config.restoreBestWeights;
    let snapshot = false;
    if (restoring && !this.hasSnapshot) {
      // Keras keeps the first monitored epoch's weights in case no epoch ever improves.
      snapshot = true;
      this.hasSnapshot = true;
      this.bestEpoch = epoch;
    }
    this.wait += 1;
    if (this.isImprovement(current, this.best)) {
      this.best = current;
      this.bestEpoch = epoch;
      if (restoring) snapshot = true;
      // Only restart the wait if the value beats both the previous best and the baseline.
      if (this.config.baseline === null || this.isImprovement(current, this.config.baseline)) this.wait = 0;
      return { snapshot, stop: false, restore: false };
    }
    if (this.wait >= this.config.patience && k > 0) {
      this.stoppedEpoch = epoch;
      return { snapshot, stop: true, restore: restoring && this.hasSnapshot };
    }
    return { snapshot, stop: false, restore: false };
  }
}
