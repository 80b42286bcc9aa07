/** How every benchmark hands back its figures: a table for people, targets checked, JSON for tools. */

export interface TargetCheck {
  /** What is measured, e.g. "GetState 1 MiB p99 ratio". */
  what: string;
  /** The target, e.g. "≤ 1.20×". */
  target: string;
  /** The figure measured, e.g. "1.07×". */
  actual: string;
  met: boolean;
}

export interface BenchResult {
  name: string;
  /** Human-readable output (tables, notes), printed as is. */
  text: string;
  targets: TargetCheck[];
  /** Everything measured, for the JSON summary line. */
  figures: Record<string, unknown>;
}

export function formatTargets(checks: readonly TargetCheck[]): string {
  if (checks.length === 0) return "";
  const lines = checks.map(
    (c) => `${c.met ? "  met   " : "  MISSED"}  ${c.what}: ${c.actual} (target ${c.target})`,
  );
  const missed = checks.filter((c) => !c.met).length;
  const head = missed === 0 ? "Targets: all met" : `Targets: ${missed} of ${checks.length} MISSED`;
  return [head, ...lines].join("\n");
}

/** Logs progress to stderr so stdout holds only the results. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
