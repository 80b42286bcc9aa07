/**
 * Sides of a comparison measured in one run, taking turns: every round each side does its
 * operation once, and the side that goes first rotates, so drift in the machine (and whatever
 * else it runs) hits them alike.
 */
import { performance } from "node:perf_hooks";
import { type Summary, summarize } from "./stats.ts";

export interface Rounds {
  /** Timed rounds; in each, every side does the operation once. */
  iterations: number;
  /** Untimed rounds first. */
  warmup: number;
}

/** Runs every side `warmup` then `iterations` times; the side that goes first rotates each round. */
export async function takeTurns(
  rounds: Rounds,
  sides: Record<string, () => Promise<void>>,
): Promise<Record<string, Summary>> {
  const names = Object.keys(sides);
  const times = new Map(names.map((n) => [n, [] as number[]]));
  for (let i = 0; i < rounds.warmup + rounds.iterations; i++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length] as string;
      const start = performance.now();
      await (sides[name] as () => Promise<void>)();
      const elapsed = performance.now() - start;
      if (i >= rounds.warmup) times.get(name)?.push(elapsed);
    }
  }
  return Object.fromEntries([...times].map(([n, t]) => [n, summarize(t)]));
}
