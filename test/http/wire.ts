/**
 * Raw HTTP/2 requests and gRPC-style envelopes, to check what the endpoints below Connect put on
 * the wire byte for byte.
 */
import http2, { type IncomingHttpHeaders } from "node:http2";

export interface RawAnswer {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders;
}

/** Sends one request on a fresh HTTP/2 connection and reads the response until the stream ends or `until` says so. */
export async function rawH2(
  url: string,
  path: string,
  headers: Record<string, string>,
  body: Uint8Array,
  until?: (body: Buffer) => boolean,
): Promise<RawAnswer> {
  const session = http2.connect(url);
  try {
    return await new Promise<RawAnswer>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": path, ...headers });
      const answer: RawAnswer = { headers: {}, body: Buffer.alloc(0), trailers: {} };
      req.on("response", (h) => {
        answer.headers = h;
      });
      req.on("trailers", (t) => {
        answer.trailers = t;
      });
      req.on("data", (chunk: Buffer) => {
        answer.body = Buffer.concat([answer.body, chunk]);
        if (until?.(answer.body)) {
          req.close();
          resolve(answer);
        }
      });
      req.on("end", () => resolve(answer));
      req.on("error", reject);
      req.setTimeout(5000, () => reject(new Error(`no end of the response to ${JSON.stringify(headers)}`)));
      req.end(body);
    });
  } finally {
    session.close();
  }
}

export function envelope(flags: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + payload.byteLength);
  out[0] = flags;
  out.writeUInt32BE(payload.byteLength, 1);
  out.set(payload, 5);
  return out;
}

/** The complete envelopes of a response body. */
export function frames(body: Buffer): { flags: number; payload: Buffer }[] {
  const out: { flags: number; payload: Buffer }[] = [];
  for (let at = 0; at + 5 <= body.byteLength; ) {
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.byteLength) break; // not all here yet
    out.push({ flags: body[at] as number, payload: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}
