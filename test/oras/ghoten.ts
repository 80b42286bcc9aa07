/**
 * ghoten's side of a shared repository, written from its code (docs/oras-wire-format.md §1–3) and
 * independent of src/: its tag for a name, a state as ghoten (oras-go PackManifest v1.1) writes it,
 * and a state as ghoten reads it. Straight against the registry, no proxy.
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { fetch } from "undici";
import { pushBlob, pushManifest } from "../harness/seed.ts";

export const EMPTY_DESCRIPTOR = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
  data: "e30=",
};

/** ghoten's workspaceTagFor: the name when oras-go accepts it as a tag, else `ws-<16 hex>`. */
export function ghotenTag(ws: string): string {
  if (/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(ws)) return ws;
  return `ws-${createHash("sha256").update(ws, "utf8").digest("hex").slice(0, 16)}`;
}

/** Pushes a state manifest exactly as ghoten writes it, under `state-<ghotenTag(ws)>` (or `tag`). */
export async function ghotenWritesState(
  registryUrl: string,
  repo: string,
  ws: string,
  state: Uint8Array,
  o: { gzip?: boolean; version?: number; tag?: string } = {},
): Promise<void> {
  await pushBlob(registryUrl, repo, Buffer.from("{}"));
  const body = o.gzip ? gzipSync(state, { level: 1 }) : state;
  const digest = await pushBlob(registryUrl, repo, body);
  const annotations: Record<string, string> = {
    "org.opencontainers.image.created": "2026-01-02T07:33:40Z",
    "org.terraform.state.updated_at": "2026-01-02T07:33:40.1234567Z",
    "org.terraform.workspace": ws,
  };
  if (o.version) annotations["org.terraform.state.version"] = String(o.version);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: "application/vnd.terraform.state.v1",
      config: EMPTY_DESCRIPTOR,
      layers: [
        {
          mediaType: o.gzip
            ? "application/vnd.terraform.statefile.v1+gzip"
            : "application/vnd.terraform.statefile.v1",
          digest,
          size: body.length,
        },
      ],
      annotations,
    }),
  );
  const stateTag = o.tag ?? `state-${ghotenTag(ws)}`;
  await pushManifest(registryUrl, repo, stateTag, manifest);
  if (o.version && o.tag === undefined) {
    await pushManifest(registryUrl, repo, `state-${ghotenTag(ws)}-v${o.version}`, manifest);
  }
}

/**
 * What ghoten's Get returns for `ws`: the bytes of layer 0 at `state-<ghotenTag(ws)>`, decompressed
 * by media type; null for no tag or no layers. ghoten does not look at the annotation.
 */
export async function ghotenReadsState(
  registryUrl: string,
  repo: string,
  ws: string,
): Promise<string | null> {
  const accept = { accept: "application/vnd.oci.image.manifest.v1+json" };
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/state-${ghotenTag(ws)}`, { headers: accept });
  if (res.status === 404) {
    await res.arrayBuffer();
    return null;
  }
  const manifest = (await res.json()) as { layers: { mediaType: string; digest: string }[] };
  const layer = manifest.layers[0];
  if (!layer) return null;
  const blob = await fetch(`${registryUrl}/v2/${repo}/blobs/${layer.digest}`);
  const bytes = Buffer.from(await blob.arrayBuffer());
  return (layer.mediaType.endsWith("+gzip") ? gunzipSync(bytes) : bytes).toString("utf8");
}
