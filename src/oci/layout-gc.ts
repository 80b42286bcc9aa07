/**
 * Garbage collection of a layout: blobs that index.json does not reach are removed once they are
 * older than a grace period. An upload in progress (a blob pushed, its manifest not yet) is always
 * younger than that, so it is never collected.
 */
import type { CallContext } from "./call-context.ts";
import type { LayoutBlobStore } from "./layout-blobs.ts";
import { fsyncDir } from "./layout-files.ts";
import { reachableBlobs } from "./layout-graph.ts";
import type { LayoutIndex } from "./layout-index.ts";

export interface LayoutGcResult {
  /** Blobs removed, with their sizes. */
  removed: Array<{ digest: string; size: number }>;
  freedBytes: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  keptYoung: number;
  /** Blobs index.json reaches. */
  reachable: number;
}

export async function collectGarbage(
  blobs: LayoutBlobStore,
  index: LayoutIndex,
  graceMs: number,
  call: CallContext,
): Promise<LayoutGcResult> {
  const reachable = await reachableBlobs(blobs, index, call);
  const cutoffMs = Date.now() - graceMs;
  const result: LayoutGcResult = { removed: [], freedBytes: 0, keptYoung: 0, reachable: reachable.size };
  for (const blob of await blobs.list()) {
    call.check();
    if (reachable.has(blob.digest)) continue;
    if (blob.mtimeMs > cutoffMs || !(await blobs.removeIfOlder(blob.digest, cutoffMs))) {
      result.keptYoung++;
      continue;
    }
    result.removed.push({ digest: blob.digest, size: blob.size });
    result.freedBytes += blob.size;
  }
  if (result.removed.length > 0) await fsyncDir(blobs.dir);
  return result;
}
