/**
 * Runs the benchmarks and prints their figures: tables on stdout, then one JSON line with
 * everything. Progress goes to stderr.
 *
 *   node --import tsx bench/run.ts [get-put|auth|watch|large|lock-contention ...]
 *
 * Without names, all run in turn. A missed target is printed as MISSED; the exit status is 0
 * when every benchmark ran (whatever its figures), 1 when one failed to run.
 */
import { runAuth } from "./auth.ts";
import { runGetPut } from "./get-put.ts";
import { runLarge } from "./large.ts";
import { describeMachine, machineInfo } from "./lib/machine.ts";
import { type BenchResult, formatTargets } from "./lib/report.ts";
import { runLockContention } from "./lock-contention.ts";
import { runWatch } from "./watch.ts";

const BENCHES: Record<string, () => Promise<BenchResult>> = {
  "get-put": runGetPut,
  auth: runAuth,
  watch: runWatch,
  large: runLarge,
  "lock-contention": runLockContention,
};

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => !(a in BENCHES));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown benchmark ${unknown.join(", ")}; choose from ${Object.keys(BENCHES).join(", ")}\n`,
    );
    return 2;
  }
  const names = argv.length > 0 ? argv : Object.keys(BENCHES);
  const machine = machineInfo();
  process.stdout.write(`Machine: ${describeMachine(machine)}\n\n`);
  const results: Record<string, Omit<BenchResult, "name" | "text">> = {};
  let failed = false;
  for (const name of names) {
    const run = BENCHES[name] as () => Promise<BenchResult>;
    const started = Date.now();
    try {
      const result = await run();
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      process.stdout.write(`== ${name} (${seconds} s) ==\n${result.text}\n\n`);
      const targets = formatTargets(result.targets);
      if (targets !== "") process.stdout.write(`${targets}\n\n`);
      results[name] = { targets: result.targets, figures: result.figures };
    } catch (err) {
      failed = true;
      process.stdout.write(
        `== ${name} FAILED ==\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n\n`,
      );
    }
  }
  process.stdout.write(`${JSON.stringify({ machine, results })}\n`);
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
