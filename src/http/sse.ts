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
