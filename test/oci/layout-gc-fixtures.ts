/**
 * What garbage collection tests check a layout against, read straight from disk with no code of the
 * store: the blobs index.json reaches (following manifests and image indexes), the blob files there
 * are, and the temp files left in the store's private directory.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { markOwned, trackForCleanup } from "../harness/cleanup.ts";

const MANIFEST_TYPES = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

export interface BlobSet {
  /** Hex digests. */
  digests: Set<string>;
  bytes: number;
}

function blobPath(dir: string, hex: string): string {
  return path.join(dir, "blobs", "sha256", hex);
}

/** Every blob index.json reaches, with their total size. Throws if a reached blob is missing. */
export async function reachableOnDisk(dir: string): Promise<BlobSet> {
  const index = JSON.parse(await readFile(path.join(dir, "index.json"), "utf8")) as {
    manifests: Array<{ digest: string }>;
  };
  const digests = new Set<string>();
  let bytes = 0;
  const visit = async (digest: string, manifest: boolean): Promise<void> => {
    const hex = digest.replace(/^sha256:/, "");
    if (digests.has(hex)) return;
    digests.add(hex);
    const file = blobPath(dir, hex);
    bytes += (await stat(file)).size;
    if (!manifest) return;
    const found: Array<{ digest: string; mediaType: string }> = [];
    const walk = (value: unknown): void => {
      if (value === null || typeof value !== "object") return;
      if (Array.isArray(value)) {
        for (const item of value) walk(item);
        return;
      }
      const obj = value as Record<string, unknown>;
      if (typeof obj.digest === "string" && typeof obj.mediaType === "string") {
        found.push({ digest: obj.digest, mediaType: obj.mediaType });
      }
      for (const [key, child] of Object.entries(obj)) if (key !== "annotations") walk(child);
    };
    walk(JSON.parse(await readFile(file, "utf8")));
    for (const ref of found) await visit(ref.digest, MANIFEST_TYPES.has(ref.mediaType));
  };
  for (const entry of index.manifests) await visit(entry.digest, true);
  return { digests, bytes };
}

/** The blob files in blobs/sha256, with their total size. */
export async function blobsOnDisk(dir: string): Promise<BlobSet> {
  const digests = new Set<string>();
  let bytes = 0;
  for (const name of await readdir(path.join(dir, "blobs", "sha256"))) {
    try {
      bytes += (await stat(blobPath(dir, name))).size;
      digests.add(name);
    } catch {
      // Removed while listing.
    }
  }
  return { digests, bytes };
}

/** Blob files count, cheap enough to sample during a write loop. */
export async function blobCount(dir: string): Promise<number> {
  return (await readdir(path.join(dir, "blobs", "sha256"))).length;
}

export async function tempFiles(dir: string): Promise<string[]> {
  return readdir(path.join(dir, ".oci-tfstate", "tmp"));
}

/**
 * A directory for layouts that see thousands of writes: on tmpfs where there is one, since these
 * tests are about what stays on disk, not about fsync latency.
 */
export async function fastRoot(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const base = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
  sweepStale(base);
  const root = await mkdtemp(path.join(base, FAST_PREFIX));
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

const FAST_PREFIX = "oci-tfstate-layout-gc-";

/** Removes dirs of earlier runs killed before their clean-up ran (the harness sweeps tmpdir only). */
function sweepStale(base: string): void {
  for (const name of readdirSync(base).filter((n) => n.startsWith(FAST_PREFIX))) {
    const dir = path.join(base, name);
    let owner: number;
    try {
      owner = Number.parseInt(readFileSync(path.join(dir, ".owner-pid"), "utf8"), 10);
    } catch {
      continue;
    }
    try {
      process.kill(owner, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") rmSync(dir, { recursive: true, force: true });
    }
  }
}
