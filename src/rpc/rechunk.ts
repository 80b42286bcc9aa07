/**
 * Regroups a byte stream into pieces of `size` bytes (the last one shorter), so a streamed state
 * goes out in a few large messages instead of one per network read, and never in one over `size`.
 *
 * A piece gathered from several reads is a view of one buffer kept for the whole stream, which the
 * next piece overwrites: the consumer must be done with a piece (Connect serializes a message
 * before it asks the handler for the next one) before pulling the next. Allocating a fresh buffer
 * per piece instead added a MiB of short-lived memory per MiB of a DownloadState, which piles up
 * until V8 next collects. A read that holds a whole piece is passed on as a view of it, uncopied.
 */
export async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buffer: Uint8Array | undefined;
  let held = 0;
  for await (const input of source) {
    let chunk = input;
    while (chunk.byteLength > 0) {
      if (held === 0 && chunk.byteLength >= size) {
        yield chunk.subarray(0, size);
        chunk = chunk.subarray(size);
        continue;
      }
      buffer ??= new Uint8Array(size);
      const take = Math.min(size - held, chunk.byteLength);
      buffer.set(chunk.subarray(0, take), held);
      held += take;
      chunk = chunk.subarray(take);
      if (held === size) {
        held = 0;
        yield buffer;
      }
    }
  }
  if (held > 0 && buffer !== undefined) yield buffer.subarray(0, held);
}

/** Slices an in-memory state into pieces of `size` bytes without copying. */
export function* slices(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let offset = 0; offset < data.byteLength; offset += size) yield data.subarray(offset, offset + size);
}
