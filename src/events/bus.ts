/**
 * Live run events and cancel requests over Redis pub/sub.
 *
 * One subscriber connection per process; each run channel is subscribed once, however many SSE
 * clients follow that run, and messages fan out in-process.
 */
import { Redis } from 'ioredis';
import type { StoredEvent } from './run-events.js';

export type EventListener = (event: StoredEvent) => void;

interface WireEvent {
  seq: number;
  type: string;
  data: unknown;
  createdAt: string;
}

export class RunEventBus {
  private readonly pub: Redis;
  private sub: Redis | undefined;
  private limits: Redis | undefined;
  private readonly listeners = new Map<string, Set<EventListener>>();
  private readonly cancelListeners = new Set<(runId: string) => void>();
  private readonly publishObservers = new Set<(runId: string, event: StoredEvent) => void>();
  private cancelSubscribed: Promise<unknown> | undefined;
  private readonly anyEventListeners = new Set<(runId: string) => void>();
  private anySubscribed: Promise<unknown> | undefined;

  constructor(
    private readonly redisUrl: string,
    private readonly prefix: string,
  ) {
    this.pub = new Redis(redisUrl, { maxRetriesPerRequest: 3, lazyConnect: false });
    // ioredis reconnects by itself; without a listener every failed attempt prints an unhandled-error trace.
    this.pub.on('error', () => {});
  }

  /**
   * A connection for the API's rate-limit counts. No offline queue and one retry: while Redis is
   * away a count fails at once (and the request goes through unlimited) instead of every request
   * waiting for a reconnection.
   */
  get rateLimitConnection(): Redis {
    if (!this.limits) {
      this.limits = new Redis(this.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
      this.limits.on('error', () => {});
    }
    return this.limits;
  }

  /** This deployment's Redis key prefix (QUEUE_PREFIX). */
  get keyPrefix(): string {
    return this.prefix;
  }

  private channel(runId: string): string {
    return `${this.prefix}:events:${runId}`;
  }

  private get cancelChannel(): string {
    return `${this.prefix}:cancel`;
  }

  private subscriber(): Redis {
    if (!this.sub) {
      // No ready check: ioredis writes SUBSCRIBE (a command allowed while Redis loads) straight to a
      // socket that is connected but not yet ready, and then its ready check (INFO) fails on a
      // connection already in subscriber mode; many SSE clients subscribing at once hit that race.
      this.sub = new Redis(this.redisUrl, { maxRetriesPerRequest: null, enableReadyCheck: false });
      this.sub.on('error', () => {});
      this.sub.on('message', (channel: string, message: string) => this.dispatch(channel, message));
      this.sub.on('pmessage', (_pattern: string, channel: string) => {
        const runId = channel.slice(this.prefix.length + ':events:'.length);
        for (const l of this.anyEventListeners) l(runId);
      });
    }
    return this.sub;
  }

  private dispatch(channel: string, message: string): void {
    if (channel === this.cancelChannel) {
      for (const l of this.cancelListeners) l(message);
      return;
    }
    const runId = channel.slice(this.prefix.length + ':events:'.length);
    const set = this.listeners.get(runId);
    if (!set) return;
    const w = JSON.parse(message) as WireEvent;
    const event: StoredEvent = { seq: w.seq, type: w.type, data: w.data, createdAt: new Date(w.createdAt) };
    for (const l of set) l(event);
  }

  async publish(runId: string, event: StoredEvent): Promise<void> {
    const wire: WireEvent = { ...event, createdAt: event.createdAt.toISOString() };
    await this.pub.publish(this.channel(runId), JSON.stringify(wire));
    for (const observe of this.publishObservers) {
      try {
        observe(runId, event);
      } catch {
        // An observer (metrics) must never break event delivery.
      }
    }
  }

  /** Sees every event this process publishes (after it went out): how a worker derives its run metrics. */
  onPublish(observer: (runId: string, event: StoredEvent) => void): () => void {
    this.publishObservers.add(observer);
    return () => this.publishObservers.delete(observer);
  }

  /** Live-event listeners over all runs (each SSE stream holds one while open). */
  get subscriptionCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** Follows a run's live events. Resolves once the subscription is active; call the result to stop. */
  async subscribe(runId: string, listener: EventListener): Promise<() => Promise<void>> {
    let set = this.listeners.get(runId);
    if (!set) {
      set = new Set();
      this.listeners.set(runId, set);
    }
    set.add(listener);
    await this.subscriber().subscribe(this.channel(runId));
    return async () => {
      const s = this.listeners.get(runId);
      if (!s) return;
      s.delete(listener);
      if (s.size === 0) {
        this.listeners.delete(runId);
        await this.sub?.unsubscribe(this.channel(runId));
      }
    };
  }

  /**
   * Hears that some run has a new event (any run, any publisher): a pattern subscription, so one
   * per process however many listeners. Resolves once it is active.
   */
  async onAnyRunEvent(listener: (runId: string) => void): Promise<void> {
    this.anyEventListeners.add(listener);
    this.anySubscribed ??= this.subscriber().psubscribe(`${this.prefix}:events:*`);
    await this.anySubscribed;
  }

  async publishCancel(runId: string): Promise<void> {
    await this.pub.publish(this.cancelChannel, runId);
  }

  async onCancel(listener: (runId: string) => void): Promise<void> {
    this.cancelListeners.add(listener);
    this.cancelSubscribed ??= this.subscriber().subscribe(this.cancelChannel);
    await this.cancelSubscribed;
  }

  async ping(): Promise<void> {
    await this.pub.ping();
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.cancelListeners.clear();
    this.anyEventListeners.clear();
    // QUIT goes through the offline queue: on a connection that is not up it would wait for Redis.
    const bye = async (c: Redis | undefined) => {
      if (c?.status === 'ready') await c.quit();
      else c?.disconnect();
    };
    await Promise.allSettled([bye(this.pub), bye(this.sub), bye(this.limits)]);
  }
}
