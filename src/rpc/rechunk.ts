/**
 * Regroups a byte stream into pieces of `size` bytes (the last one shorter), so a streamed state
 * goes out in a few large messages instead of one per network read, and never in one over `size`.
 */
export async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let held = 0;
  for await (const input of source) {
    let chunk = input;
    while (chunk.byteLength > 0) {
      const take = Math.min(size - held, chunk.byteLength);
      parts.push(chunk.subarray(0, take));
      held += take;
      chunk = chunk.subarray(take);
      if (held === size) {
        yield join(parts, held);
        parts = [];
        held = 0;
      }
    }
  }
  if (held > 0) yield join(parts, held);
}

/** Slices an in-memory state into pieces of `size` bytes without copying. */
export function* slices(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let offset = 0; offset < data.byteLength; offset += size) yield data.subarray(offset, offset + size);
}

function join(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1 && parts[0] !== undefined) return parts[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}
