/** Shared pieces of the layout target tests: temp directories and an ORAS-style artifact. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { sha256Digest } from "../../src/oci/digest.ts";
import type { LayoutTarget } from "../../src/oci/layout.ts";
import {
  EMPTY_BLOB,
  EMPTY_DIGEST,
  MEDIA_TYPE_EMPTY,
  MEDIA_TYPE_OCI_MANIFEST,
} from "../../src/oci/media-types.ts";
import type { Descriptor } from "../../src/oci/target.ts";
import { markOwned, sweepStaleDirs, trackForCleanup } from "../harness/cleanup.ts";

const TEMP_PREFIX = "oci-tfstate-layout-";
export const STATE_TYPE = "application/vnd.terraform.state.v1";
export const STATEFILE_TYPE = "application/vnd.terraform.statefile.v1";

/** A temp directory (removed by `cleanup`, or at exit) under which tests create layouts. */
export async function tempRoot(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  sweepStaleDirs(TEMP_PREFIX);
  const root = await mkdtemp(path.join(tmpdir(), TEMP_PREFIX));
  markOwned(root);
  const untrack = trackForCleanup(undefined, root);
  return {
    root,
    cleanup: async () => {
      await rm(root, { recursive: true, force: true });
      untrack();
    },
  };
}

/** Compact JSON of an image manifest with artifactType, empty config and one state layer. */
export function artifactManifest(layer: Descriptor, annotations: Record<string, string> = {}): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      artifactType: STATE_TYPE,
      config: { mediaType: MEDIA_TYPE_EMPTY, digest: EMPTY_DIGEST, size: 2, data: "e30=" },
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
      annotations: { "org.opencontainers.image.created": "2026-01-02T07:33:40Z", ...annotations },
    }),
  );
}

/** Pushes the empty config, a state layer and the manifest under `reference`, as the state core does. */
export async function pushArtifact(
  target: LayoutTarget,
  reference: string,
  content: string,
): Promise<{ manifest: Descriptor; bytes: Uint8Array; layer: Descriptor }> {
  await target.pushBlob({ bytes: EMPTY_BLOB }, MEDIA_TYPE_EMPTY);
  const layer = await target.pushBlob({ bytes: new TextEncoder().encode(content) }, STATEFILE_TYPE);
  const bytes = artifactManifest(layer, { "org.terraform.workspace": reference });
  const manifest = await target.pushManifest(reference, bytes, MEDIA_TYPE_OCI_MANIFEST);
  return { manifest, bytes, layer };
}

export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

export function digestOf(text: string | Uint8Array): string {
  return sha256Digest(typeof text === "string" ? new TextEncoder().encode(text) : text);
}
