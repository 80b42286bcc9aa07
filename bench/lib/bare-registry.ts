/**
 * The registry requests a client talking to the registry directly must make, done with undici
 * (the HTTP client the service itself uses) and nothing else: no retries, no caching. Content is
 * checked against its digest, as any OCI client (oras-go, so ghoten) does.
 */
import { createHash } from "node:crypto";
import { Agent, request } from "undici";
import {
  EMPTY_BLOB,
  EMPTY_DIGEST,
  MANIFEST_ACCEPT,
  MEDIA_TYPE_OCI_MANIFEST,
} from "../../src/oci/media-types.ts";
import { packStateManifest } from "../../src/oras/manifests.ts";
import { MEDIA_TYPE_STATE } from "../../src/oras/wire-format.ts";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export class BareRegistry {
  readonly #agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 });
  readonly #base: string;

  /** `registryUrl` like "http://127.0.0.1:5000"; `repository` the path, like "bench/bare". */
  constructor(registryUrl: string, repository: string) {
    this.#base = `${registryUrl}/v2/${repository}/`;
  }

  /** Manifest GET by tag; returns its bytes and digest (checked against Docker-Content-Digest). */
  async getManifest(tag: string): Promise<{ bytes: Uint8Array; digest: string }> {
    const res = await this.#send("GET", `manifests/${tag}`, { accept: MANIFEST_ACCEPT });
    const bytes = await body(res, 200, `GET manifest ${tag}`);
    const digest = sha256(bytes);
    if (res.headers["docker-content-digest"] !== digest) throw new Error(`manifest ${tag}: digest mismatch`);
    return { bytes, digest };
  }

  /** Conditional manifest GET: the status (304 when `digest` is still current). */
  async manifestStatus(tag: string, ifNoneMatch?: string): Promise<number> {
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
    if (ifNoneMatch !== undefined) headers["if-none-match"] = `"${ifNoneMatch}"`;
    const res = await this.#send("GET", `manifests/${tag}`, headers);
    await res.body.dump();
    return res.statusCode;
  }

  /** Blob GET, checked against its digest. */
  async getBlob(desc: Descriptor): Promise<Uint8Array> {
    const res = await this.#send("GET", `blobs/${desc.digest}`);
    const bytes = await body(res, 200, `GET blob ${desc.digest}`);
    if (bytes.byteLength !== desc.size || sha256(bytes) !== desc.digest) {
      throw new Error(`blob ${desc.digest}: content does not match its descriptor`);
    }
    return bytes;
  }

  /** What reading a state takes: the manifest at its tag, then its layer. */
  async readState(tag: string): Promise<Uint8Array> {
    const { bytes } = await this.getManifest(tag);
    const manifest = JSON.parse(new TextDecoder().decode(bytes)) as { layers?: Descriptor[] };
    const layer = manifest.layers?.[0];
    if (!layer) throw new Error(`manifest ${tag} has no layer`);
    return this.getBlob(layer);
  }

  /** Upload in two requests (Distribution has no single-request upload): POST, then PUT ?digest=. */
  async pushBlob(bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
    const digest = sha256(bytes);
    const started = await this.#send("POST", "blobs/uploads/");
    await body(started, 202, "POST blob upload");
    const location = started.headers.location;
    if (typeof location !== "string") throw new Error("POST blob upload: no Location");
    const url = new URL(location, this.#base);
    url.searchParams.set("digest", digest);
    const put = await request(url, {
      dispatcher: this.#agent,
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: bytes,
    });
    await body(put, 201, "PUT blob");
    return { mediaType, digest, size: bytes.byteLength };
  }

  async putManifest(tag: string, bytes: Uint8Array): Promise<string> {
    const res = await this.#send(
      "PUT",
      `manifests/${tag}`,
      { "content-type": MEDIA_TYPE_OCI_MANIFEST },
      bytes,
    );
    await body(res, 201, `PUT manifest ${tag}`);
    return sha256(bytes);
  }

  /** Once per repository: the `{}` config blob every state manifest names. */
  async ensureEmptyBlob(): Promise<void> {
    const res = await this.#send("HEAD", `blobs/${EMPTY_DIGEST}`);
    await res.body.dump();
    if (res.statusCode !== 200) await this.pushBlob(EMPTY_BLOB, "application/vnd.oci.empty.v1+json");
  }

  /**
   * What writing a state takes, with the fencing read a careful direct client does first (is the
   * workspace locked?): lock manifest GET (404), blob POST + PUT, manifest PUT.
   */
  async writeState(workspace: string, bytes: Uint8Array): Promise<string> {
    const lockStatus = await this.manifestStatus(`locked-${workspace}`);
    if (lockStatus !== 404) throw new Error(`workspace ${workspace} is locked (status ${lockStatus})`);
    const layer = await this.pushBlob(bytes, MEDIA_TYPE_STATE);
    const manifest = packStateManifest({ workspace, layer, version: undefined, nowMs: Date.now() });
    return this.putManifest(`state-${workspace}`, manifest);
  }

  close(): Promise<void> {
    return this.#agent.close();
  }

  #send(
    method: "GET" | "HEAD" | "POST" | "PUT",
    path: string,
    headers: Record<string, string> = {},
    payload?: Uint8Array,
  ) {
    return request(this.#base + path, { dispatcher: this.#agent, method, headers, body: payload ?? null });
  }
}

async function body(
  res: Awaited<ReturnType<typeof request>>,
  status: number,
  what: string,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(await res.body.arrayBuffer());
  if (res.statusCode !== status) {
    throw new Error(`${what}: status ${res.statusCode}: ${new TextDecoder().decode(bytes).slice(0, 200)}`);
  }
  return bytes;
}
