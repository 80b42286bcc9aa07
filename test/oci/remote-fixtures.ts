/** Shared bits for the remote target tests (not a test file itself). */
import { createHash } from "node:crypto";
import type { RecordedRequest } from "../harness/proxy.ts";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const STATE_TYPE = "application/vnd.example.terraform.state.v1+json";
export const EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

export function digestOf(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** A compact OCI artifact manifest with the empty config and the given layers. */
export function manifestBytes(
  layers: Array<{ digest: string; size: number }>,
  annotations: Record<string, string> = {},
): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: STATE_TYPE,
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: EMPTY_DIGEST, size: 2, data: "e30=" },
      layers: layers.map((l) => ({ mediaType: STATE_TYPE, digest: l.digest, size: l.size })),
      annotations,
    }),
  );
}

export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Requests matching method and path, e.g. `count(proxy.requests, "GET", /\/manifests\//)`. */
export function matching(
  requests: readonly RecordedRequest[],
  method?: string,
  path?: RegExp,
): RecordedRequest[] {
  return requests.filter(
    (r) => (method === undefined || r.method === method) && (path === undefined || path.test(r.path)),
  );
}

/** Yields `data` in pieces of `piece` bytes, as a network or file stream would. */
export async function* streamOf(data: Uint8Array, piece = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.byteLength; at += piece) yield data.subarray(at, at + piece);
}
