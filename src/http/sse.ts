/**
 * Server-Sent Events for one run: replay the stored events after Last-Event-ID, then follow live
 * ones from the bus, with no gap and no duplicate (subscribe first, buffer, replay, drain by seq).
 * The stream ends after a terminal event.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RunEventBus } from '../events/bus.js';
import type { StoredEvent } from '../store/runs-repo.js';

export const TERMINAL_EVENTS = new Set(['completed', 'failed', 'cancelled']);

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

export function lastEventId(request: FastifyRequest, query: { lastEventId?: number }): number {
  const header = request.headers['last-event-id'];
  const raw = Array.isArray(header) ? header[0] : header;
  const n = raw !== undefined ? Number(raw) : (query.lastEventId ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export async function streamRunEvents(request: FastifyRequest, reply: FastifyReply, runId: string, after: number, src: SseSource): Promise<void> {
  let last = after;
  let ended = false;
  let live: StoredEvent[] | null = [];
  const res = reply.raw;

  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(keepAlive);
    void unsubscribe().catch(() => {});
    res.end();
  };
  const send = (e: StoredEvent) => {
    if (ended || e.seq <= last) return;
    last = e.seq;
    res.write(frame(e));
    if (TERMINAL_EVENTS.has(e.type)) end();
  };

  const unsubscribe = await src.bus.subscribe(runId, (e) => {
    if (live) live.push(e);
    else send(e);
  });

  reply.hijack();
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(': regula run events\nretry: 2000\n\n');
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), src.keepAliveMs ?? 15_000);
  request.raw.on('close', end);

  try {
    for (const e of await src.replay(last)) send(e);
    const buffered: StoredEvent[] = live;
    live = null;
    buffered.sort((a, b) => a.seq - b.seq).forEach(send);
    if (!ended && (await src.isFinished())) {
      // Finished runs whose terminal event was already delivered before Last-Event-ID, or races.
      for (const e of await src.replay(last)) send(e);
      end();
    }
  } catch (err) {
    request.log.error({ err, runId }, 'event stream failed');
    end();
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
export async function streamStudyEvents(request: FastifyRequest, reply: FastifyReply, runs: StudyStreamRun[], cursor: string | undefined, src: StudySseSource): Promise<void> {
  const last = runs.map((_, i) => {
    const n = Number(cursor?.split('.')[i] ?? 0);
    return Number.isInteger(n) && n > 0 ? n : 0;
  });
  const done = new Set<number>();
  let ended = false;
  let live: { i: number; e: StoredEvent }[] | null = [];
  const res = reply.raw;

  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(keepAlive);
    for (const u of unsubscribes) void u().catch(() => {});
    res.end();
  };
  const send = (i: number, e: StoredEvent) => {
    if (ended || e.seq <= last[i]!) return;
    last[i] = e.seq;
    const run = runs[i]!;
    res.write(`id: ${last.join('.')}\nevent: ${e.type}\ndata: ${JSON.stringify({ runId: run.id, variant: run.variant, ...(e.data as object), at: e.createdAt.toISOString() })}\n\n`);
    if (TERMINAL_EVENTS.has(e.type)) done.add(i);
    if (done.size === runs.length) {
      res.write(`id: ${last.join('.')}\nevent: study-completed\ndata: {}\n\n`);
      end();
    }
  };

  const unsubscribes = await Promise.all(
    runs.map((run, i) =>
      src.bus.subscribe(run.id, (e) => {
        if (live) live.push({ i, e });
        else send(i, e);
      }),
    ),
  );
  reply.hijack();
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(': regula study events\nretry: 2000\n\n');
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), src.keepAliveMs ?? 15_000);
  request.raw.on('close', end);

  try {
    // Runs that finished before the cursor count as done.
    const replayed: { i: number; e: StoredEvent }[] = [];
    for (let i = 0; i < runs.length; i++) {
      const all = await src.replay(runs[i]!.id, 0);
      if (all.some((e) => e.seq <= last[i]! && TERMINAL_EVENTS.has(e.type))) done.add(i);
      for (const e of all) if (e.seq > last[i]!) replayed.push({ i, e });
    }
    replayed.sort((a, b) => a.e.createdAt.getTime() - b.e.createdAt.getTime() || a.i - b.i || a.e.seq - b.e.seq);
    for (const { i, e } of replayed) send(i, e);
    const buffered = live;
    live = null;
    for (const { i, e } of buffered.sort((a, b) => a.e.createdAt.getTime() - b.e.createdAt.getTime())) send(i, e);
    if (!ended && done.size === runs.length) {
      res.write(`id: ${last.join('.')}\nevent: study-completed\ndata: {}\n\n`);
      end();
    }
  } catch (err) {
    request.log.error({ err }, 'study event stream failed');
    end();
  }
}
