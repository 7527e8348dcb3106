/**
 * Gzip bombs (issue 12 item 5): IDX files inflate as a bounded stream, header first, and stop at the
 * length the header announces. What the worker reads (images) goes through the same reader.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeIdx, encodeIdxGz, readIdxFile } from '../../src/engine/data/idx.js';
import { IdxFormatError } from '../../src/engine/data/errors.js';

describe('bounded gunzip of IDX files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'regula-idx-bounds-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stops at the announced length: a cut-off stream far past it is never reached', async () => {
    // 3 images announced, 48 MiB inflated behind them, and the gzip trailer cut off. A reader that
    // inflates everything ends on the truncation; a bounded one stops long before.
    const idx = encodeIdx([3, 28, 28], new Uint8Array(3 * 784));
    const gz = gzipSync(Buffer.concat([idx, Buffer.alloc(48 * 1024 * 1024)]));
    const file = path.join(dir, 'cut-images.gz');
    await writeFile(file, gz.subarray(0, gz.length - 64));
    const err = await readIdxFile(file, { kind: 'images' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdxFormatError);
    expect((err as Error).message).toMatch(/more data than its header announces \(2368 bytes in all\)/);
  });

  it('refuses a header announcing more than the compressed size allows, before allocating it', async () => {
    const header = Buffer.from([0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 28, 0, 0, 0, 28]);
    const file = path.join(dir, 'liar-images.gz');
    await writeFile(file, gzipSync(Buffer.concat([header, Buffer.alloc(1000)])));
    await expect(readIdxFile(file, { kind: 'images' })).rejects.toThrow(/inflates to at most/);
  });

  it('still reads good files exactly, and says what is missing from short ones', async () => {
    const data = Uint8Array.from({ length: 5 * 784 }, (_, i) => i % 251);
    const good = path.join(dir, 'good-images.gz');
    await writeFile(good, encodeIdxGz([5, 28, 28], data));
    const idx = await readIdxFile(good, { kind: 'images' });
    expect(idx.dims).toEqual([5, 28, 28]);
    expect(Buffer.from(idx.data).equals(Buffer.from(data))).toBe(true);
    const short = path.join(dir, 'short-images.gz');
    await writeFile(short, gzipSync(encodeIdx([5, 28, 28], data).subarray(0, 1000)));
    await expect(readIdxFile(short, { kind: 'images' })).rejects.toThrow(/truncated IDX file/);
    const tiny = path.join(dir, 'tiny.gz');
    await writeFile(tiny, gzipSync(Buffer.from([0, 0, 8])));
    await expect(readIdxFile(tiny, { kind: 'labels' })).rejects.toThrow(/only 3 byte/);
  });
});
