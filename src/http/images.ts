/** Request images → upright 28×28 grayscale pixels in [0, 1]. */
import { PNG } from 'pngjs';
import { AppError } from '../errors.js';

export const PIXELS = 28 * 28;

/** JSON images: arrays of 784 numbers (already validated by the schema for length and range). */
export function fromArrays(images: number[][]): Float32Array {
  const out = new Float32Array(images.length * PIXELS);
  images.forEach((img, i) => out.set(img, i * PIXELS));
  return out;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Width and height from the IHDR chunk, which the PNG format puts first: read before anything is
 * inflated, because a few hundred KB of IDAT can inflate to gigabytes (a 20000×20000 image).
 */
export function pngSize(bytes: Buffer): { width: number; height: number; interlaced: boolean } {
  const ok =
    bytes.length >= 8 + 8 + 13 && bytes.subarray(0, 8).equals(PNG_SIGNATURE) && bytes.readUInt32BE(8) === 13 && bytes.toString('latin1', 12, 16) === 'IHDR';
  if (!ok) throw new AppError(400, 'Invalid image', 'not a readable PNG: it must start with the PNG signature and an IHDR chunk', '/body');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20), interlaced: bytes[28] !== 0 };
}

/** A 28×28 PNG (any colour type) → luminance in [0, 1]; `invert` for dark ink on a light background. */
export function fromPng(bytes: Buffer, invert: boolean): Float32Array {
  const { width, height, interlaced } = pngSize(bytes);
  if (width !== 28 || height !== 28) {
    throw new AppError(422, 'Invalid image', `the PNG is ${width}x${height}; EMNIST models take 28x28 images`, '/body');
  }
  // pngjs bounds inflation by the image size only for non-interlaced images: an interlaced 28×28
  // PNG could still carry a bomb in its IDAT. Nobody needs interlacing for 784 pixels.
  if (interlaced) {
    throw new AppError(422, 'Invalid image', 'the PNG is interlaced (Adam7); send it without interlacing', '/body');
  }
  let png: PNG;
  try {
    png = PNG.sync.read(bytes);
  } catch (err) {
    throw new AppError(400, 'Invalid image', `not a readable PNG: ${(err as Error).message}`, '/body');
  }
  if (png.width !== 28 || png.height !== 28) {
    throw new AppError(422, 'Invalid image', `the PNG is ${png.width}x${png.height}; EMNIST models take 28x28 images`, '/body');
  }
  const out = new Float32Array(PIXELS);
  for (let p = 0; p < PIXELS; p++) {
    const r = png.data[p * 4]!;
    const g = png.data[p * 4 + 1]!;
    const b = png.data[p * 4 + 2]!;
    const a = png.data[p * 4 + 3]! / 255;
    const lum = ((0.299 * r + 0.587 * g + 0.114 * b) / 255) * a; // transparent = black background
    out[p] = invert ? 1 - lum : lum;
  }
  return out;
}
