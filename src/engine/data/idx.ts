/**
 * IDX file format (LeCun's MNIST format, also used by EMNIST), gzipped or not.
 *
 * Header: 2 zero bytes, 1 data-type byte (only 0x08 = unsigned byte is supported), 1 byte with the
 * number of dimensions, then one big-endian uint32 per dimension; then the payload, row-major.
 * So the magic number is 0x00000801 for a label file (1 dim) and 0x00000803 for an image file (3 dims).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import { DatasetChecksumError, IdxFormatError } from './errors.js';
import type { IdxArray } from './types.js';

export type { IdxArray } from './types.js';

export const IDX_TYPE_UBYTE = 0x08;
export const IDX_LABELS_MAGIC = 0x00000801;
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Refuse headers with more dimensions than this (IDX allows 255; nobody uses more than a few). */
const MAX_DIMS = 8;

/** 'labels' requires magic 0x00000801, 'images' 0x00000803, 'any' any ubyte IDX. */
export type IdxKind = 'labels' | 'images' | 'any';

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** sha256 (hex) of a file's bytes, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

function magicFor(kind: IdxKind): number | null {
  return kind === 'labels' ? IDX_LABELS_MAGIC : kind === 'images' ? IDX_IMAGES_MAGIC : null;
}

function describeStart(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 64)).toString('latin1');
  if (head.startsWith('version https://git-lfs')) return ' (this is a Git LFS pointer file, not the data: fetch the real file)';
  if (/^\s*<(!doctype|html)/i.test(head)) return ' (this looks like an HTML page, e.g. an error page saved instead of the file)';
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04)
    return ' (this is a zip archive: extract the .gz members first)';
  return '';
}

export interface IdxHeader {
  dims: number[];
  /** 4 + 4 * dims.length */
  headerBytes: number;
  /** Product of dims: the payload length in bytes. */
  payloadBytes: number;
}

/**
 * Validate and decode an IDX header from (at least) the first bytes of an uncompressed IDX file.
 * `file` is only used in error messages.
 */
export function parseIdxHeader(bytes: Uint8Array, file: string, kind: IdxKind = 'any'): IdxHeader {
  if (bytes.length < 4) {
    throw new IdxFormatError(file, `not an IDX file: only ${bytes.length} byte(s), the header needs at least 4${describeStart(bytes)}`);
  }
  const magic = ((bytes[0] as number) << 24) | ((bytes[1] as number) << 16) | ((bytes[2] as number) << 8) | (bytes[3] as number);
  const expected = magicFor(kind);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new IdxFormatError(
      file,
      `not an IDX file: bad magic number ${hex32(magic)}` +
        (expected !== null ? ` (expected ${hex32(expected)} for an IDX ${kind} file)` : ' (must start with two zero bytes)') +
        describeStart(bytes),
    );
  }
  if (bytes[2] !== IDX_TYPE_UBYTE) {
    throw new IdxFormatError(
      file,
      `unsupported IDX data type 0x${(bytes[2] as number).toString(16).padStart(2, '0')} (magic ${hex32(magic)}); only 0x08 (unsigned byte) is supported`,
    );
  }
  const ndims = bytes[3] as number;
  if (expected !== null && magic !== expected) {
    throw new IdxFormatError(file, `wrong IDX magic number ${hex32(magic)} (${ndims} dimension(s)): expected ${hex32(expected)} for an IDX ${kind} file`);
  }
  if (ndims < 1 || ndims > MAX_DIMS) {
    throw new IdxFormatError(file, `unsupported IDX dimension count ${ndims} (magic ${hex32(magic)}); expected 1..${MAX_DIMS}`);
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new IdxFormatError(file, `truncated IDX header: ${ndims} dimension(s) need ${headerBytes} header bytes, the file has ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const dims: number[] = [];
  let payloadBytes = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    payloadBytes *= d;
  }
  if (!Number.isSafeInteger(payloadBytes)) {
    throw new IdxFormatError(file, `IDX dimensions [${dims.join(', ')}] are too large`);
  }
  return { dims, headerBytes, payloadBytes };
}

/**
 * Parse a complete, uncompressed IDX file held in memory. Checks magic, data type, dimension
 * count and that the byte length is exactly header + product(dims). `data` is a view (no copy).
 */
export function parseIdx(bytes: Uint8Array, file: string, kind: IdxKind = 'any'): IdxArray {
  if (isGzip(bytes)) throw new IdxFormatError(file, 'is gzip-compressed: decompress it first (readIdxFile does this)');
  const h = parseIdxHeader(bytes, file, kind);
  const have = bytes.length - h.headerBytes;
  if (have < h.payloadBytes) {
    throw new IdxFormatError(
      file,
      `truncated IDX file: the header says dims [${h.dims.join(', ')}] = ${h.payloadBytes} data bytes, but only ${have} follow the header`,
    );
  }
  if (have > h.payloadBytes) {
    throw new IdxFormatError(
      file,
      `IDX file has ${have - h.payloadBytes} unexpected trailing byte(s) after the ${h.payloadBytes} data bytes of dims [${h.dims.join(', ')}]`,
    );
  }
  return { dims: h.dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + h.headerBytes, h.payloadBytes) };
}

export interface ReadIdxOptions {
  kind?: IdxKind;
  /** When a string: the sha256 (hex) of the file as stored (compressed) bytes; mismatch throws DatasetChecksumError. */
  expectedSha256?: string | null;
}

/**
 * DEFLATE cannot expand data more than about 1032:1 (a maximal run costs 258 bytes per 2 bits), so
 * a gzip file of n bytes inflates to fewer than n * MAX_INFLATE_RATIO bytes. A header that announces
 * more is a lie, refused before anything is allocated for it.
 */
const MAX_INFLATE_RATIO = 1040;
/** Compressed bytes fed to the inflater at a time: what it may inflate past the announced length. */
const INFLATE_SLICE = 16 * 1024;

function checkInflatable(h: IdxHeader, compressedBytes: number, file: string): void {
  const most = compressedBytes * MAX_INFLATE_RATIO;
  if (h.headerBytes + h.payloadBytes > most) {
    throw new IdxFormatError(
      file,
      `the header announces dims [${h.dims.join(', ')}] = ${h.payloadBytes} data bytes, but a gzip file of ${compressedBytes} bytes inflates to at most ${most}: truncated or not an IDX file`,
    );
  }
}

/**
 * Inflate a gzipped IDX file as a bounded stream: read the header, then exactly the payload it
 * announces into one buffer of that size, and stop as soon as there is more (a gzip bomb, or a
 * wrong header): nothing past the announced length is ever inflated beyond one input slice.
 */
export async function gunzipIdx(raw: Uint8Array, file: string, kind: IdxKind = 'any'): Promise<Uint8Array> {
  const gz = createGunzip();
  let fed = 0;
  const feed = (): void => {
    while (fed < raw.length) {
      const end = Math.min(raw.length, fed + INFLATE_SLICE);
      const more = gz.write(raw.subarray(fed, end));
      fed = end;
      if (!more) {
        gz.once('drain', feed);
        return;
      }
    }
    gz.end();
  };
  gz.on('error', () => {}); // surfaced by the iterator below
  feed();

  const head: Buffer[] = [];
  let headLength = 0;
  let out: Buffer | null = null;
  let got = 0;
  try {
    for await (const piece of gz) {
      const chunk = piece as Buffer;
      if (!out) {
        head.push(chunk);
        headLength += chunk.length;
        if (headLength < 4) continue;
        const first = Buffer.concat(head);
        if (first.length < 4 + 4 * (first[3] as number)) continue;
        const h = parseIdxHeader(first, file, kind);
        checkInflatable(h, raw.length, file);
        out = Buffer.allocUnsafe(h.headerBytes + h.payloadBytes);
        got = Math.min(first.length, out.length);
        first.copy(out, 0, 0, got);
        if (first.length > out.length) {
          got = out.length + 1;
          break;
        }
        continue;
      }
      if (got + chunk.length > out.length) {
        got = out.length + 1;
        break;
      }
      chunk.copy(out, got);
      got += chunk.length;
    }
  } catch (err) {
    if (err instanceof IdxFormatError) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    throw new IdxFormatError(file, `corrupt or truncated gzip data (${msg})`);
  } finally {
    gz.destroy();
  }
  if (!out) return Buffer.concat(head); // shorter than its header: parseIdx says what is missing
  if (got > out.length) {
    throw new IdxFormatError(
      file,
      `inflates to more data than its header announces (${out.length} bytes in all): stopped there; a gzip bomb, or a header that does not match the data`,
    );
  }
  return out.subarray(0, got);
}

/** Read and validate an IDX file (gzipped or not, detected from the content, not the name). */
export async function readIdxFile(path: string, options: ReadIdxOptions = {}): Promise<IdxArray> {
  const raw = await readFile(path);
  if (options.expectedSha256) {
    const actual = sha256(raw);
    if (actual !== options.expectedSha256.toLowerCase()) throw new DatasetChecksumError(path, options.expectedSha256, actual);
  }
  const kind = options.kind ?? 'any';
  const bytes = isGzip(raw) ? await gunzipIdx(raw, path, kind) : raw;
  return parseIdx(bytes, path, kind);
}

/**
 * Read only the header of an IDX file (gzipped or not): cheap, for validation at submit time.
 * For an uncompressed file the file size is checked against the dims as well.
 */
export async function readIdxHeader(path: string, kind: IdxKind = 'any'): Promise<IdxHeader> {
  const fh = await open(path, 'r');
  let first: Uint8Array;
  let size: number;
  try {
    size = (await fh.stat()).size;
    const buf = Buffer.alloc(Math.min(size, 4 + 4 * MAX_DIMS));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    first = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  if (!isGzip(first)) {
    const h = parseIdxHeader(first, path, kind);
    if (size !== h.headerBytes + h.payloadBytes) {
      const have = size - h.headerBytes;
      throw new IdxFormatError(
        path,
        have < h.payloadBytes
          ? `truncated IDX file: the header says dims [${h.dims.join(', ')}] = ${h.payloadBytes} data bytes, but only ${have} follow the header`
          : `IDX file has ${have - h.payloadBytes} unexpected trailing byte(s) after the ${h.payloadBytes} data bytes of dims [${h.dims.join(', ')}]`,
      );
    }
    return h;
  }
  // gzip: decompress just enough for the header, then stop.
  const src = createReadStream(path);
  const gz = createGunzip();
  src.pipe(gz);
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of gz) {
      chunks.push(chunk as Buffer);
      got += (chunk as Buffer).length;
      if (got >= 4 + 4 * MAX_DIMS) break;
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (got < 4 + 4 * MAX_DIMS) throw new IdxFormatError(path, `corrupt or truncated gzip data (${msg})`);
  } finally {
    src.destroy();
    gz.destroy();
  }
  const h = parseIdxHeader(Buffer.concat(chunks), path, kind);
  checkInflatable(h, size, path);
  return h;
}

/** Encode an unsigned-byte IDX file (magic 0x0000 08 <ndims>). Used by the fixture script and tests. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Buffer {
  const expected = dims.reduce((p, d) => p * d, 1);
  if (data.length !== expected) throw new RangeError(`encodeIdx: dims [${dims.join(', ')}] need ${expected} bytes, got ${data.length}`);
  if (dims.length < 1 || dims.length > 255) throw new RangeError(`encodeIdx: bad dimension count ${dims.length}`);
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = IDX_TYPE_UBYTE;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

/** `encodeIdx` + gzip (level 9, mtime 0: deterministic output). */
export function encodeIdxGz(dims: readonly number[], data: Uint8Array): Buffer {
  return gzipSync(encodeIdx(dims, data), { level: 9 });
}
