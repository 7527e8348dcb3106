/** Verified writes for the dataset download: a file appears whole and checked, or not at all. */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import { DatasetChecksumError, DatasetError } from '../../engine/data/errors.js';

export interface WriteOptions {
  expectedSha256: string | null;
  /** CRC-32 of the data (zip members), or null. */
  crc32: number | null;
  /** URL or archive member, for messages. */
  source: string;
  /** Expected byte count (progress; checked when `exactTotal`). */
  total: number | null;
  exactTotal?: boolean;
  onChunk?: () => void;
  log: (m: string) => void;
}

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/** Stream to `dest.part`, verify (sha256, CRC-32, length), then rename to `dest`; never leaves a partial file. */
export async function writeVerified(source: Readable, dest: string, o: WriteOptions): Promise<void> {
  const tmp = dest + '.part';
  const hash = createHash('sha256');
  let crc = 0;
  let bytes = 0;
  const step = o.total !== null && o.total >= 8 * MiB ? Math.ceil(o.total / 10) : 64 * MiB;
  let nextReport = step;
  try {
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          if (o.crc32 !== null) crc = crc32(chunk, crc);
          bytes += chunk.length;
          o.onChunk?.();
          if (bytes >= nextReport) {
            o.log(`  ${mib(bytes)}${o.total !== null ? ` of ${mib(o.total)} (${Math.floor((100 * bytes) / o.total)}%)` : ''}`);
            while (nextReport <= bytes) nextReport += step;
          }
          yield chunk;
        }
      },
      createWriteStream(tmp),
    );
    if (o.exactTotal && o.total !== null && bytes !== o.total) {
      throw new Error(`truncated download: got ${bytes} of ${o.total} bytes`);
    }
    if (o.crc32 !== null && crc >>> 0 !== o.crc32) {
      throw new DatasetError(`${o.source}: CRC-32 mismatch, the archive is corrupt; delete it and run again`, 'DATASET_CHECKSUM');
    }
    const actual = hash.digest('hex');
    if (o.expectedSha256 !== null && actual !== o.expectedSha256.toLowerCase()) {
      const err = new DatasetChecksumError(dest, o.expectedSha256, actual);
      err.message += ` (source: ${o.source}; nothing was kept)`;
      throw err;
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
