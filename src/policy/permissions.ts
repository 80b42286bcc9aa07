/**
 * What a principal may do to a workspace. `admin` implies every other permission and `read`
 * implies `read-outputs`; the rest stand alone, so a CI job may write and lock without reading
 * history, and a dashboard may read outputs without the state's secrets.
 */
export const PERMISSIONS = ["read", "read-outputs", "write", "lock", "force-unlock", "admin"] as const;
export type Permission = (typeof PERMISSIONS)[number];

export function isPermission(value: unknown): value is Permission {
  return typeof value === "string" && (PERMISSIONS as readonly string[]).includes(value);
}

/** The permissions `granted` amounts to, implications included. */
export function expand(granted: Iterable<Permission>): Set<Permission> {
  const out = new Set<Permission>(granted);
  if (out.has("admin")) for (const p of PERMISSIONS) out.add(p);
  if (out.has("read")) out.add("read-outputs");
  return out;
}
