/**
 * HTTP for the dataset download: one GET streamed to a verified file, with an idle timeout, and the
 * errors it reports (the URL, the HTTP status, the network cause undici hides).
 */
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { DatasetChecksumError, DatasetError } from '../../engine/data/errors.js';
import { writeVerified } from './files.js';

export interface HttpOptions {
  /** Default: the global `fetch`. */
  fetchImpl?: typeof fetch;
  /** Abort a download when no data arrived for this long (default 60 s). */
  idleTimeoutMs?: number;
}

/** A download failed on every URL tried. The message lists each URL with its error, then the hint. */
export class DatasetDownloadError extends DatasetError {
  override readonly name = 'DatasetDownloadError';
  /** One entry per URL tried. */
  readonly attempts: readonly { url: string; error: string }[];
  /** How to get the file(s) by hand. */
  readonly hint: string;
  constructor(what: string, attempts: readonly { url: string; error: string }[], hint: string) {
    super(
      `could not download ${what}:\n` +
        attempts.map((a) => `  ${a.url}: ${a.error}\n`).join('') +
        `If this machine has no internet access, copy the files by hand: ${hint}`,
      'DATASET_FILE_MISSING',
    );
    this.attempts = attempts;
    this.hint = hint;
  }
}

class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  constructor(
    readonly url: string,
    readonly status: number,
    statusText: string,
  ) {
    super(`HTTP ${status}${statusText ? ' ' + statusText : ''}`);
  }
}

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** GET `url` and stream the body to `dest` (via `dest.part`), checking the sha256 when known. */
export async function downloadTo(url: string, dest: string, a: { expectedSha256: string | null; opts: HttpOptions; log: (m: string) => void }): Promise<void> {
  const fetchImpl = a.opts.fetchImpl ?? fetch;
  const idleMs = a.opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const ctrl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => ctrl.abort(new Error(`no data for ${Math.round(idleMs / 1000)} s`)), idleMs);
    timer.unref();
  };
  arm();
  try {
    let res: Response;
    try {
      // identity: a .gz must arrive as stored, not transparently gunzipped.
      res = await fetchImpl(url, { headers: { 'accept-encoding': 'identity' }, redirect: 'follow', signal: ctrl.signal });
    } catch (err) {
      throw new Error(describeFetchError(err, ctrl.signal));
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new HttpStatusError(url, res.status, res.statusText);
    }
    if (!res.body) throw new Error('empty response body');
    const encoded = (res.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
    const length = Number(res.headers.get('content-length'));
    const total = !encoded && Number.isSafeInteger(length) && length > 0 ? length : null;
    try {
      await writeVerified(Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>), dest, {
        expectedSha256: a.expectedSha256,
        crc32: null,
        source: url,
        total,
        exactTotal: total !== null,
        onChunk: arm,
        log: a.log,
      });
    } catch (err) {
      if (ctrl.signal.aborted && !(err instanceof DatasetChecksumError)) {
        throw new Error(`download aborted: ${describeFetchError(ctrl.signal.reason, null)}`);
      }
      throw err;
    }
  } finally {
    clearTimeout(timer);
  }
}

export function withSlash(base: string): string {
  return base.endsWith('/') ? base : base + '/';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** undici's "fetch failed" hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, certificate...). */
function describeFetchError(err: unknown, signal: AbortSignal | null): string {
  if (signal?.aborted) return `aborted: ${errorMessage(signal.reason)}`;
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${err.message} (${code ? code + ': ' : ''}${cause.message})`;
  }
  return err.message;
}
