/**
 * Time strings as Go writes them, so annotations look the same whichever side wrote them.
 */

/** Go's time.RFC3339Nano for a UTC instant: fraction with trailing zeros trimmed, none when zero. */
export function rfc3339Nano(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-01-02T07:33:40.120Z
  const [whole, frac = "000Z"] = iso.split(".");
  const digits = frac.slice(0, -1).replace(/0+$/, "");
  return digits.length > 0 ? `${whole}.${digits}Z` : `${whole}Z`;
}

/** RFC 3339 to the second, as oras-go writes org.opencontainers.image.created. */
export function rfc3339Seconds(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** Milliseconds since the epoch as Unix nanoseconds (Go's UnixNano), exact. */
export function msToUnixNano(ms: number): bigint {
  return BigInt(Math.trunc(ms)) * 1_000_000n;
}

export function unixNanoToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}
