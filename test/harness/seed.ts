/**
 * Minimal raw registry writes for seeding test fixtures, independent of the client under test
 * (Distribution 2.8 rules: POST then PUT with `&digest=`, octet-stream bodies, OCI Accept on reads).
 */
import { createHash } from "node:crypto";
import { type Dispatcher, fetch } from "undici";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";
export const EMPTY_CONFIG = Buffer.from("{}");

export interface SeedOptions {
  /** Extra request headers, e.g. an Authorization header. */
  headers?: Record<string, string>;
  /** For TLS registries with a test CA. */
  dispatcher?: Dispatcher;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export async function pushBlob(
  registryUrl: string,
  repository: string,
  data: Uint8Array,
  opts: SeedOptions = {},
): Promise<string> {
  const digest = sha256Digest(data);
  const started = await fetch(`${registryUrl}/v2/${repository}/blobs/uploads/`, {
    method: "POST",
    headers: { ...opts.headers },
    ...dispatcherOf(opts),
  });
  await started.body?.cancel();
  const location = started.headers.get("location");
  if (started.status !== 202 || location === null) {
    throw new Error(`seed: starting an upload to ${repository} answered ${started.status}`);
  }
  const target = new URL(location, registryUrl);
  target.searchParams.set("digest", digest);
  const put = await fetch(target, {
    method: "PUT",
    body: data,
    headers: { ...opts.headers, "Content-Type": "application/octet-stream" },
    ...dispatcherOf(opts),
  });
  await put.body?.cancel();
  if (put.status !== 201) throw new Error(`seed: blob PUT to ${repository} answered ${put.status}`);
  return digest;
}

/** PUTs the exact manifest bytes under a tag or digest; returns the digest. */
export async function pushManifest(
  registryUrl: string,
  repository: string,
  reference: string,
  manifest: Uint8Array,
  opts: SeedOptions = {},
): Promise<string> {
  const res = await fetch(`${registryUrl}/v2/${repository}/manifests/${reference}`, {
    method: "PUT",
    body: manifest,
    headers: { ...opts.headers, "Content-Type": OCI_MANIFEST },
    ...dispatcherOf(opts),
  });
  const text = await res.text();
  if (res.status !== 201)
    throw new Error(`seed: manifest PUT ${repository}:${reference} answered ${res.status} ${text}`);
  return sha256Digest(manifest);
}

/**
 * Pushes an artifact (empty config, one layer holding `content`) under each tag; returns the manifest
 * digest and bytes. `annotations` lets callers make otherwise identical artifacts distinct.
 */
export async function pushArtifact(
  registryUrl: string,
  repository: string,
  tags: string[],
  content: Uint8Array,
  opts: SeedOptions & { artifactType?: string; annotations?: Record<string, string> } = {},
): Promise<{ digest: string; manifest: Buffer }> {
  const artifactType = opts.artifactType ?? "application/vnd.oci-tfstate.test.v1";
  const configDigest = await pushBlob(registryUrl, repository, EMPTY_CONFIG, opts);
  const layerDigest = await pushBlob(registryUrl, repository, content, opts);
  const manifestObject: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { mediaType: OCI_EMPTY, digest: configDigest, size: EMPTY_CONFIG.length },
    layers: [{ mediaType: artifactType, digest: layerDigest, size: content.length }],
  };
  if (opts.annotations !== undefined) manifestObject.annotations = opts.annotations;
  const manifest = Buffer.from(JSON.stringify(manifestObject));
  const digest = sha256Digest(manifest);
  for (const tag of tags.length > 0 ? tags : [digest]) {
    await pushManifest(registryUrl, repository, tag, manifest, opts);
  }
  return { digest, manifest };
}

function dispatcherOf(opts: SeedOptions): { dispatcher?: Dispatcher } {
  return opts.dispatcher === undefined ? {} : { dispatcher: opts.dispatcher };
}
