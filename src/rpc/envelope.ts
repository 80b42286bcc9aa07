/**
 * The 5-byte envelope around every message of a Connect, gRPC or gRPC-Web stream: flags, then the
 * payload's length as a big-endian uint32, then the payload.
 */
export function envelope(flags: number, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + payload.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(payload.byteLength, 1);
  frame.set(payload, 5);
  return frame;
}

/** Envelope flag: the payload is compressed with the stream's negotiated encoding. */
export const COMPRESSED_FLAG = 0x01;
