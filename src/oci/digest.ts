import { createHash } from "node:crypto";
import { DataLossError, InvalidArgumentError } from "../errors.ts";

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export function isDigest(ref: string): boolean {
  return DIGEST_RE.test(ref);
}

export function assertDigest(digest: string): void {
  if (!DIGEST_RE.test(digest)) {
    throw new InvalidArgumentError(`invalid digest ${JSON.stringify(digest)}: expected sha256:<64 hex>`);
  }
}

/**
 * Passes chunks through while hashing them, and fails at the end (or as soon as too many bytes
 * arrive) when the content does not match the descriptor. `what` names the content in errors.
 */
export async function* verifyStream(
  source: AsyncIterable<Uint8Array>,
  expected: { digest: string; size: number },
  what: string,
): AsyncGenerator<Uint8Array> {
  assertDigest(expected.digest);
  const hash = createHash("sha256");
  let seen = 0;
  for await (const chunk of source) {
    seen += chunk.byteLength;
    if (seen > expected.size) {
      throw new DataLossError(`${what}: more than the ${expected.size} bytes its descriptor names`);
    }
    hash.update(chunk);
    yield chunk;
  }
  if (seen !== expected.size) {
    throw new DataLossError(`${what}: got ${seen} bytes, its descriptor names ${expected.size}`);
  }
  const got = `sha256:${hash.digest("hex")}`;
  if (got !== expected.digest) {
    throw new DataLossError(`${what}: content digest ${got} does not match ${expected.digest}`);
  }
}
