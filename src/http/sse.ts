/**
 * Server-Sent Events for one run: replay the stored events after Last-Event-ID, then follow live
 * ones from the bus, with no gap and no duplicate (subscribe first, buffer, replay, drain by seq).
 * The stream ends after a terminal event.
 *
 * Graceful shutdown: every open stream is in its app's `sseStreams`; when the app closes (its
 * preClose hook, before Fastify waits for open connections) each one gets a final `shutdown` event
 * that keeps the id of the last event delivered, so the client resumes elsewhere with
 * Last-Event-ID, and is ended.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RunEventBus } from '../events/bus.js';
import { AppError } from '../errors.js';
import { isTerminalEvent, type StoredEvent } from '../events/run-events.js';

export const SHUTDOWN_DATA = { reason: 'server shutting down', retry: true } as const;

function shutdownFrame(id: string): string {
  return `id: ${id}\nevent: shutdown\ndata: ${JSON.stringify(SHUTDOWN_DATA)}\n\n`;
}

/** The open event streams of one app; `drain` sends each a `shutdown` event and ends it. */
export class SseStreams {
  private readonly open = new Set<() => void>();
  private draining = false;
  /** Live keep-alive timers and finished stream handlers: what a leak test asserts on. */
  keepAlives = 0;
  handled = 0;

  /** Registers a stream's shutdown; returns its removal. A stream opened while draining is shut at once. */
  add(shutdown: () => void): () => void {
    if (this.draining) {
      shutdown();
      return () => {};
    }
    this.open.add(shutdown);
    return () => this.open.delete(shutdown);
  }

  get size(): number {
    return this.open.size;
  }

  stats(): { open: number; keepAlives: number; handled: number } {
    return { open: this.open.size, keepAlives: this.keepAlives, handled: this.handled };
  }

  /** Shuts every open stream (and any opened later); returns how many were open. */
  drain(): number {
    this.draining = true;
    const all = [...this.open];
    this.open.clear();
    for (const shutdown of all) shutdown();
    return all.length;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    sseStreams: SseStreams;
  }
}

/** Tracks the app's event streams and drains them when it closes. */
export function registerSseStreams(app: FastifyInstance): SseStreams {
  const streams = new SseStreams();
  app.decorate('sseStreams', streams);
  app.addHook('preClose', (done) => {
    const n = streams.drain();
    if (n > 0) app.log.info({ streams: n }, 'event streams ended with a shutdown event');
    done();
  });
  return streams;
}

export interface SseSource {
  bus: RunEventBus;
  replay: (afterSeq: number) => Promise<StoredEvent[]>;
  /** Is the run already finished? (then the stream ends after the replay even without a terminal event) */
  isFinished: () => Promise<boolean>;
  keepAliveMs?: number;
}

function frame(e: StoredEvent): string {
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ ...(e.data as object), at: e.createdAt.toISOString() })}\n\n`;
}

/** Event sequence numbers are Postgres integers: anything above this cannot name a stored event. */
export const MAX_EVENT_ID = 2 ** 31 - 1;

export function lastEventId(request: FastifyRequest, query: { lastEventId?: number }): number {
  const header = request.headers['last-event-id'];
  const raw = Array.isArray(header) ? header[0] : header;
  const n = raw !== undefined ? Number(raw) : (query.lastEventId ?? 0);
  // An id we never sent (text, negative) replays from the start, as EventSource ids are opaque; a
  // number past the column's range is a client bug worth a clear 400, not a query the store refuses.
  if (Number.isInteger(n) && n > MAX_EVENT_ID) {
    throw new AppError(
      400,
      'Invalid request',
      `Last-Event-ID ${raw ?? n} is above ${MAX_EVENT_ID}, the largest event id`,
      raw !== undefined ? '/headers/last-event-id' : '/query/lastEventId',
    );
  }
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** One open event stream's plumbing, the same for a run's stream and a study's. */
interface EventStream {
  /** The client left, a terminal event came, or the app shut the stream. */
  readonly ended: boolean;
  write(chunk: string): void;
  /** Stops the keep-alive, forgets the stream, runs `onEnd` (unsubscribe) and ends the response; once. */
  end(): void;
  /**
   * Takes the response over (hijack). Unless the stream already ended (the client left while the
   * caller subscribed: nothing to answer), sends the head, the `comment` and the retry interval,
   * starts the keep-alive and registers the shutdown: a `shutdown` event with `lastId()`, then the
   * end. False when it had ended.
   */
  begin(comment: string): boolean;
}

function openStream(
  request: FastifyRequest,
  reply: FastifyReply,
  o: { keepAliveMs: number | undefined; lastId: () => string; onEnd: () => void },
): EventStream {
  const streams = request.server.sseStreams;
  const res = reply.raw;
  let ended = false;
  let untrack = () => {};
  let keepAlive: NodeJS.Timeout | null = null;
  const end = () => {
    if (ended) return;
    ended = true;
    if (keepAlive) {
      clearInterval(keepAlive);
      keepAlive = null;
      streams.keepAlives--;
    }
    untrack();
    o.onEnd();
    res.end();
  };
  // Watched before the caller's first await: a client that leaves while the stream subscribes (or
  // while the route looked the run up) must still end it, or its subscriptions and keep-alive timer
  // would stay until the run ends. A response already closed has emitted its 'close' and never will again.
  res.on('close', end);
  if (res.destroyed || request.raw.destroyed) end();
  return {
    get ended() {
      return ended;
    },
    write: (chunk) => {
      res.write(chunk);
    },
    end,
    begin(comment) {
      reply.hijack();
      if (ended) return false;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(`: ${comment}\nretry: 2000\n\n`);
      keepAlive = setInterval(() => res.write(': keep-alive\n\n'), o.keepAliveMs ?? 15_000);
      streams.keepAlives++;
      untrack = streams.add(() => {
        if (ended) return;
        res.write(shutdownFrame(o.lastId()));
        end();
      });
      return true;
    },
  };
}

export async function streamRunEvents(request: FastifyRequest, reply: FastifyReply, runId: string, after: number, src: SseSource): Promise<void> {
  let last = after;
  let unsubscribe: (() => Promise<void>) | null = null;
  let live: StoredEvent[] | null = [];
  const stream = openStream(request, reply, {
    keepAliveMs: src.keepAliveMs,
    lastId: () => String(last),
    onEnd: () => {
      if (unsubscribe) void unsubscribe().catch(() => {});
    },
  });

  const send = (e: StoredEvent) => {
    if (stream.ended || e.seq <= last) return;
    last = e.seq;
    stream.write(frame(e));
    if (isTerminalEvent(e.type)) stream.end();
  };

  // Live events are handled in order. One that skips ahead (events published while Redis was
  // away never arrive live) first fills the gap from the store, which is the record.
  let chain: Promise<void> = Promise.resolve();
  const sendLive = (e: StoredEvent) => {
    chain = chain
      .then(async () => {
        if (!stream.ended && e.seq > last + 1) for (const missed of await src.replay(last)) if (missed.seq < e.seq) send(missed);
        send(e);
      })
      .catch((err: unknown) => request.log.warn({ err, runId }, 'could not fill an event gap from the store'));
  };
  try {
    if (!stream.ended) {
      const stop = await src.bus.subscribe(runId, (e) => {
        if (live) live.push(e);
        else sendLive(e);
      });
      if (stream.ended) void stop().catch(() => {});
      else unsubscribe = stop;
    }
    if (!stream.begin('regula run events')) return;

    try {
      for (const e of await src.replay(last)) send(e);
      const buffered: StoredEvent[] = live;
      live = null;
      buffered.sort((a, b) => a.seq - b.seq).forEach(send);
      if (!stream.ended && (await src.isFinished())) {
        // Finished runs whose terminal event was already delivered before Last-Event-ID, or races.
        for (const e of await src.replay(last)) send(e);
        stream.end();
      }
    } catch (err) {
      request.log.error({ err, runId }, 'event stream failed');
      stream.end();
    }
  } finally {
    request.server.sseStreams.handled++;
  }
}

export interface StudyStreamRun {
  id: string;
  variant: string | null;
}

export interface StudySseSource {
  bus: RunEventBus;
  replay: (runId: string, afterSeq: number) => Promise<StoredEvent[]>;
  keepAliveMs?: number;
}

/**
 * One stream for all runs of a study. Each frame's id is a cursor: the last sequence number seen of
 * every run, in the study's run order ("12.3.0.0…"), so Last-Event-ID resumes every run exactly.
 * Ends with a `study-completed` event once every run has delivered its terminal event.
 */
export async function streamStudyEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  runs: StudyStreamRun[],
  cursor: string | undefined,
  src: StudySseSource,
): Promise<void> {
  const last = runs.map((_, i) => {
    const n = Number(cursor?.split('.')[i] ?? 0);
    return Number.isInteger(n) && n > 0 ? n : 0;
  });
  const done = new Set<number>();
  let unsubscribes: (() => Promise<void>)[] = [];
  let live: { i: number; e: StoredEvent }[] | null = [];
  const stream = openStream(request, reply, {
    keepAliveMs: src.keepAliveMs,
    lastId: () => last.join('.'),
    onEnd: () => {
      for (const u of unsubscribes) void u().catch(() => {});
    },
  });
  const send = (i: number, e: StoredEvent) => {
    if (stream.ended || e.seq <= last[i]!) return;
    last[i] = e.seq;
    const run = runs[i]!;
    stream.write(
      `id: ${last.join('.')}\nevent: ${e.type}\ndata: ${JSON.stringify({ runId: run.id, variant: run.variant, ...(e.data as object), at: e.createdAt.toISOString() })}\n\n`,
    );
    if (isTerminalEvent(e.type)) done.add(i);
    if (done.size === runs.length) {
      stream.write(`id: ${last.join('.')}\nevent: study-completed\ndata: {}\n\n`);
      stream.end();
    }
  };

  const subscribed = stream.ended
    ? []
    : await Promise.all(
        runs.map((run, i) =>
          src.bus.subscribe(run.id, (e) => {
            if (live) live.push({ i, e });
            else send(i, e);
          }),
        ),
      );
  if (stream.ended) for (const u of subscribed) void u().catch(() => {});
  else unsubscribes = subscribed;
  if (!stream.begin('regula study events')) {
    request.server.sseStreams.handled++;
    return;
  }

  try {
    // Runs that finished before the cursor count as done.
    const replayed: { i: number; e: StoredEvent }[] = [];
    for (let i = 0; i < runs.length; i++) {
      const all = await src.replay(runs[i]!.id, 0);
      if (all.some((e) => e.seq <= last[i]! && isTerminalEvent(e.type))) done.add(i);
      for (const e of all) if (e.seq > last[i]!) replayed.push({ i, e });
    }
    replayed.sort((a, b) => a.e.createdAt.getTime() - b.e.createdAt.getTime() || a.i - b.i || a.e.seq - b.e.seq);
    for (const { i, e } of replayed) send(i, e);
    const buffered = live;
    live = null;
    for (const { i, e } of buffered.sort((a, b) => a.e.createdAt.getTime() - b.e.createdAt.getTime())) send(i, e);
    if (!stream.ended && done.size === runs.length) {
      stream.write(`id: ${last.join('.')}\nevent: study-completed\ndata: {}\n\n`);
      stream.end();
    }
  } catch (err) {
    request.log.error({ err }, 'study event stream failed');
    stream.end();
  } finally {
    request.server.sseStreams.handled++;
  }
}
