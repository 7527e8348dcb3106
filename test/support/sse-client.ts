/**
 * The one SSE client parser of the tests, benchmarks and fault scripts: feed it the stream's chunks
 * (bytes or text) and it returns each complete frame's fields. Comment lines (`: keep-alive`) and
 * blank frames give no fields; a field's value has its leading spaces removed, and a repeated field
 * keeps its last value (the server sends one line per field).
 */
export type SseFields = Partial<Record<string, string>>;

export class SseParser {
  private readonly decoder = new TextDecoder();
  private buffer = '';

  /** The frames that `chunk` completes, in order. */
  push(chunk: Uint8Array | string): SseFields[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const frames: SseFields[] = [];
    let cut: number;
    while ((cut = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, cut);
      this.buffer = this.buffer.slice(cut + 2);
      frames.push(parseFrame(block));
    }
    return frames;
  }
}

function parseFrame(block: string): SseFields {
  const fields: SseFields = {};
  for (const line of block.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue; // blank, a comment, or a line without a field name
    fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
  }
  return fields;
}
