/**
 * Recycles the ArrayBuffers of kernel outputs.
 *
 * A training step allocates hundreds of MB of activations and gradients; left
 * to the GC, that external-memory churn triggers a scavenge or mark-compact
 * every few kernels. Buffers allocated here are counted per tfjs data entry
 * that references them (a cpu kernel may alias one, e.g. a contiguous Slice
 * returns a subarray); when the last entry is disposed the buffer goes back
 * to a free list keyed by size. Buffers the backend has handed out through
 * readSync (dataSync, data, bufferSync) are never recycled: code outside the
 * kernels may still hold them.
 */

const DEFAULT_CAP_BYTES = 512 * 1024 * 1024;

function isTypedArray(v: unknown): v is ArrayBufferView {
  return ArrayBuffer.isView(v);
}

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly live = new Map<ArrayBuffer, number>();
  private readonly owned = new WeakSet<ArrayBuffer>();
  /** Buffers handed out by readSync (dataSync, data, bufferSync): never recycled. */
  private readonly exposed = new WeakSet<ArrayBuffer>();
  /** Scratch buffers (e.g. a max-pool workspace) recycled together with a buffer. */
  private readonly attached = new Map<ArrayBuffer, ArrayBuffer[]>();
  private pooledBytes = 0;
  capBytes = DEFAULT_CAP_BYTES;
  hits = 0;
  misses = 0;

  /** An uninitialised Float32Array of n elements. */
  alloc(n: number): Float32Array {
    if (n === 0) return new Float32Array(0);
    return new Float32Array(this.take(n * 4), 0, n);
  }

  /** An uninitialised Int32Array of n elements. */
  allocI32(n: number): Int32Array {
    if (n === 0) return new Int32Array(0);
    return new Int32Array(this.take(n * 4), 0, n);
  }

  /** Uninitialised scratch bytes; recycle them with attach(). */
  allocBytes(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    return new Uint8Array(this.take(n), 0, n);
  }

  /** Recycles `extra` when the buffer behind `values` is recycled. */
  attach(values: Float32Array, extra: Uint8Array): void {
    const buf = values.buffer as ArrayBuffer;
    if (!this.owned.has(buf) || !this.owned.has(extra.buffer as ArrayBuffer)) return;
    const list = this.attached.get(buf);
    if (list) list.push(extra.buffer as ArrayBuffer);
    else this.attached.set(buf, [extra.buffer as ArrayBuffer]);
  }

  private take(bytes: number): ArrayBuffer {
    const reused = this.free.get(bytes)?.pop();
    if (reused) {
      this.pooledBytes -= bytes;
      this.hits++;
      return reused;
    }
    this.misses++;
    // allocUnsafeSlow: a fresh, unshared ArrayBuffer without the zero fill.
    const b = Buffer.allocUnsafeSlow(bytes);
    const buf = b.byteOffset === 0 && b.buffer.byteLength === bytes ? (b.buffer as ArrayBuffer) : new ArrayBuffer(bytes);
    this.owned.add(buf);
    return buf;
  }

  private recycle(buf: ArrayBuffer): void {
    if (this.pooledBytes + buf.byteLength > this.capBytes) return; // left to the GC
    let list = this.free.get(buf.byteLength);
    if (!list) {
      list = [];
      this.free.set(buf.byteLength, list);
    }
    list.push(buf);
    this.pooledBytes += buf.byteLength;
  }

  owns(values: unknown): boolean {
    return isTypedArray(values) && this.owned.has(values.buffer as ArrayBuffer);
  }

  /** These values were handed to code outside the backend's kernels: never recycle them. */
  expose(values: unknown): void {
    if (this.owns(values)) this.exposed.add((values as ArrayBufferView).buffer as ArrayBuffer);
  }

  /** A tfjs data entry now references these values. */
  retain(values: unknown): void {
    if (!this.owns(values)) return;
    const buf = (values as ArrayBufferView).buffer as ArrayBuffer;
    this.live.set(buf, (this.live.get(buf) ?? 0) + 1);
  }

  /** A tfjs data entry referencing these values was deleted. */
  release(values: unknown): void {
    if (!this.owns(values)) return;
    const buf = (values as ArrayBufferView).buffer as ArrayBuffer;
    const count = (this.live.get(buf) ?? 0) - 1;
    if (count > 0) {
      this.live.set(buf, count);
      return;
    }
    this.live.delete(buf);
    const extras = this.attached.get(buf);
    if (extras) {
      this.attached.delete(buf);
      for (const e of extras) this.recycle(e);
    }
    if (!this.exposed.has(buf)) this.recycle(buf);
  }

  /** Drops every free buffer (the GC reclaims them). */
  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }

  stats(): { pooledBytes: number; liveBuffers: number; hits: number; misses: number } {
    return { pooledBytes: this.pooledBytes, liveBuffers: this.live.size, hits: this.hits, misses: this.misses };
  }
}

export const bufferPool = new BufferPool();
