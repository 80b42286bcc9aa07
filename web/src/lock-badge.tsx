/** A workspace's lock at a glance: who holds it, for what, since when. */
import type { LockInfo } from "@oci-tfstate/client/web";
import { ago, dateOf, exact } from "./format.ts";

export function LockBadge({ lock }: { lock: LockInfo | undefined }) {
  if (lock === undefined) return <span class="badge free">unlocked</span>;
  const since = dateOf(lock.created);
  return (
    <span class="badge locked" title={exact(since)}>
      locked by <strong>{lock.who || "unknown"}</strong>
      {lock.operation ? ` · ${lock.operation}` : ""} · {ago(since)}
    </span>
  );
}
