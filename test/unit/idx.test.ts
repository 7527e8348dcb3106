import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdxFormatError, DatasetChecksumError } from '../../src/engine/data/errors.js';
import { encodeIdx, encodeIdxGz, isGzip, parseIdx, readIdxFile, readIdxHeader, sha256File } from '../../src/engine/data/idx.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'regula-idx-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function put(name: string, bytes: Uint8Array | string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

const labels = Uint8Array.from([3, 1, 4, 1, 5]);
const images = Uint8Array.from({ length: 2 * 28 * 28 }, (_, i) => i % 256);

describe('IDX header encoding', () => {
  it('writes magic 0x00000801 for labels and 0x00000803 for images, big-endian dims', () => {
    const l = encodeIdx([5], labels);
    expect([...l.subarray(0, 8)]).toEqual([0, 0, 8, 1, 0, 0, 0, 5]);
    const im = encodeIdx([2, 28, 28], images);
    expect(im.readUInt32BE(0)).toBe(0x00000803);
    expect([im.readUInt32BE(4), im.readUInt32BE(8), im.readUInt32BE(12)]).toEqual([2, 28, 28]);
    expect(im.length).toBe(16 + 2 * 784);
  });
});

describe('parseIdx / readIdxFile', () => {
  it('round-trips labels and images', () => {
    const l = parseIdx(encodeIdx([5], labels), 'l', 'labels');
    expect(l.dims).toEqual([5]);
    expect([...l.data]).toEqual([...labels]);
    const im = parseIdx(encodeIdx([2, 28, 28], images), 'i', 'images');
    expect(im.dims).toEqual([2, 28, 28]);
    expect(im.data).toEqual(images);
  });

  it('reads gzipped and raw files identically (gzip detected by content, not name)', async () => {
    const raw = await put('a-idx3-ubyte', encodeIdx([2, 28, 28], images));
    const gz = await put('a-idx3-ubyte.gz', encodeIdxGz([2, 28, 28], images));
    const gzNoExt = await put('gz-without-extension', encodeIdxGz([2, 28, 28], images));
    const r = await readIdxFile(raw, { kind: 'images' });
    const g = await readIdxFile(gz, { kind: 'images' });
    const g2 = await readIdxFile(gzNoExt, { kind: 'images' });
    expect(isGzip(encodeIdxGz([1], Uint8Array.of(0)))).toBe(true);
    expect(g.dims).toEqual(r.dims);
    expect(g.data).toEqual(r.data);
    expect(g2.data).toEqual(r.data);
  });

  it('rejects a wrong magic number, naming the file', async () => {
    const bad = encodeIdx([5], labels);
    bad[0] = 0x12;
    const p = await put('badmagic-labels.idx', bad);
    await expect(readIdxFile(p, { kind: 'labels' })).rejects.toThrow(IdxFormatError);
    await expect(readIdxFile(p, { kind: 'labels' })).rejects.toThrow(/badmagic-labels\.idx.*bad magic number 0x12000801.*0x00000801/);
  });

  it('rejects an image file where a label file is expected (and vice versa)', async () => {
    const p = await put('images-as-labels.gz', encodeIdxGz([2, 28, 28], images));
    await expect(readIdxFile(p, { kind: 'labels' })).rejects.toThrow(/images-as-labels\.gz: wrong IDX magic number 0x00000803.*expected 0x00000801/);
    const q = await put('labels-as-images', encodeIdx([5], labels));
    await expect(readIdxFile(q, { kind: 'images' })).rejects.toThrow(/labels-as-images: wrong IDX magic number 0x00000801.*expected 0x00000803/);
  });

  it('rejects data types other than unsigned byte', () => {
    const b = encodeIdx([5], labels);
    b[2] = 0x0d; // float
    expect(() => parseIdx(b, 'float.idx')).toThrow(/float\.idx: unsupported IDX data type 0x0d/);
  });

  it('rejects a zero dimension count and a truncated header', () => {
    expect(() => parseIdx(Uint8Array.of(0, 0, 8, 0), 'zero.idx')).toThrow(/zero\.idx: unsupported IDX dimension count 0/);
    expect(() => parseIdx(Uint8Array.of(0, 0, 8, 3, 0, 0, 0, 1), 'short.idx')).toThrow(/short\.idx: truncated IDX header/);
    expect(() => parseIdx(Uint8Array.of(0, 0), 'tiny.idx')).toThrow(/tiny\.idx: not an IDX file: only 2 byte/);
  });

  it('rejects a truncated payload and trailing bytes (raw)', async () => {
    const full = encodeIdx([2, 28, 28], images);
    const p = await put('truncated-images-idx3-ubyte', full.subarray(0, full.length - 100));
    await expect(readIdxFile(p)).rejects.toThrow(/truncated-images-idx3-ubyte: truncated IDX file: .*1568 data bytes, but only 1468/);
    await expect(readIdxHeader(p, 'images')).rejects.toThrow(/truncated IDX file/);
    const q = await put('trailing-idx1', Buffer.concat([encodeIdx([5], labels), Buffer.from([1, 2])]));
    await expect(readIdxFile(q, { kind: 'labels' })).rejects.toThrow(/trailing-idx1: IDX file has 2 unexpected trailing byte/);
  });

  it('rejects a truncated gzip stream and gzip of a truncated IDX', async () => {
    const gz = encodeIdxGz([2, 28, 28], images);
    const p = await put('cut.gz', gz.subarray(0, gz.length - 20));
    await expect(readIdxFile(p)).rejects.toThrow(/cut\.gz: corrupt or truncated gzip data/);
    const full = encodeIdx([2, 28, 28], images);
    const q = await put('short-payload.gz', gzipSync(full.subarray(0, 500)));
    await expect(readIdxFile(q, { kind: 'images' })).rejects.toThrow(/short-payload\.gz: truncated IDX file/);
  });

  it('explains Git LFS pointers and HTML pages', async () => {
    const p = await put('lfs.gz', 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n');
    await expect(readIdxFile(p)).rejects.toThrow(/lfs\.gz: not an IDX file.*Git LFS pointer/);
    const q = await put('page.gz', '<!DOCTYPE html><html>Not found</html>');
    await expect(readIdxFile(q)).rejects.toThrow(/HTML page/);
  });

  it('checks an expected sha256 of the stored bytes', async () => {
    const bytes = encodeIdxGz([5], labels);
    const p = await put('hashed.gz', bytes);
    const good = createHash('sha256').update(bytes).digest('hex');
    await expect(readIdxFile(p, { kind: 'labels', expectedSha256: good })).resolves.toMatchObject({ dims: [5] });
    const err = await readIdxFile(p, { expectedSha256: '0'.repeat(64) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetChecksumError);
    expect((err as DatasetChecksumError).actual).toBe(good);
    expect((err as Error).message).toContain('hashed.gz');
  });
});

describe('readIdxHeader', () => {
  it('reads only the header of gz and raw files', async () => {
    const gz = await put('h.gz', encodeIdxGz([2, 28, 28], images));
    const raw = await put('h.raw', encodeIdx([2, 28, 28], images));
    expect((await readIdxHeader(gz, 'images')).dims).toEqual([2, 28, 28]);
    expect((await readIdxHeader(raw, 'images')).dims).toEqual([2, 28, 28]);
    const l = await put('hl.gz', encodeIdxGz([5], labels));
    expect((await readIdxHeader(l, 'labels')).dims).toEqual([5]);
    await expect(readIdxHeader(l, 'images')).rejects.toThrow(/hl\.gz: wrong IDX magic/);
  });
});

describe('sha256File', () => {
  it('matches node:crypto over the file bytes', async () => {
    const bytes = Buffer.alloc(300_000, 7);
    const p = await put('blob.bin', bytes);
    expect(await sha256File(p)).toBe(createHash('sha256').update(bytes).digest('hex'));
  });
});
