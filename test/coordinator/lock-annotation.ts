/** Reads a lock manifest's generation annotation straight from the registry, as a ghoten CLI does. */
import assert from "node:assert/strict";
import { fetch } from "undici";

export interface StoredGeneration {
  generation: number;
  /** `lease_expiry` in ms (it is stored in Unix nanoseconds); 0 when there is none. */
  leaseExpiryMs: number;
  holderId: string;
  /** `org.terraform.lock.id`. */
  lockId: string;
}

/** `registryUrl` like "http://127.0.0.1:5000"; `lockTag` like "locked-default". */
export async function storedGeneration(
  registryUrl: string,
  repo: string,
  lockTag: string,
): Promise<StoredGeneration> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${lockTag}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  const body = await res.text();
  assert.equal(res.status, 200, `${lockTag} is there`);
  const annotations = (JSON.parse(body) as { annotations: Record<string, string> }).annotations;
  const gen = JSON.parse(annotations["org.terraform.lock.generation"] ?? "{}") as {
    generation: number;
    lease_expiry?: number;
    holder_id?: string;
  };
  return {
    generation: gen.generation,
    // JSON.parse rounds the nanoseconds to a double: far below a millisecond off.
    leaseExpiryMs: Math.round((gen.lease_expiry ?? 0) / 1e6),
    holderId: gen.holder_id ?? "",
    lockId: annotations["org.terraform.lock.id"] ?? "",
  };
}
