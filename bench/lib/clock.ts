/**
 * A clock that agrees across processes on one machine: CLOCK_MONOTONIC (process.hrtime), in
 * milliseconds. Lets one process stamp a change and another its delivery.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
