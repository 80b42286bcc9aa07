/**
 * The server's entry point: `npm start`, the container image and the benchmarks all run
 * `node src/launch.ts [flags]`. It replaces itself (execve: same PID, so signals, supervisors and
 * /proc readings still see the server) with `node <RUNTIME_FLAGS> src/cli.ts [flags]`, because V8
 * sizes its heap when Node starts: `v8.setFlagsFromString` comes too late.
 *
 * --max-semi-space-size=1 (MiB): streaming a large state leaves short-lived off-heap buffers
 * (socket reads, envelopes, compressed messages) but little garbage on the JS heap, so with V8's
 * large default young generation no scavenge runs for a long time and those buffers wait for a
 * mark-compact. A small young generation frees them early and keeps peak memory close to the
 * live set (README "Benchmarks" has the figures, bench/large.ts measures them).
 *
 * A value the operator gives (NODE_OPTIONS or node's own flags) wins: a flag is added only when
 * absent. Where execve is unavailable (Windows) the CLI runs in this process without the setting.
 */
import { fileURLToPath } from "node:url";

const RUNTIME_FLAGS = ["--max-semi-space-size=1"] as const;

const CLI = fileURLToPath(new URL("./cli.ts", import.meta.url));

/** `--max-semi-space-size=1` → `--max-semi-space-size` (V8 also accepts underscores). */
function flagName(arg: string): string {
  const eq = arg.indexOf("=");
  return (eq === -1 ? arg : arg.slice(0, eq)).replaceAll("_", "-");
}

function given(): Set<string> {
  const nodeOptions = (process.env.NODE_OPTIONS ?? "").split(/\s+/).filter((a) => a !== "");
  return new Set([...process.execArgv, ...nodeOptions].map(flagName));
}

const present = given();
const missing = RUNTIME_FLAGS.filter((flag) => !present.has(flagName(flag)));
if (missing.length > 0 && typeof process.execve === "function" && process.platform !== "win32") {
  // The caller's own Node flags (e.g. --cpu-prof, --import) are kept, after ours.
  process.execve(process.execPath, [
    process.execPath,
    ...missing,
    ...process.execArgv,
    CLI,
    ...process.argv.slice(2),
  ]);
}
await import("./cli.ts");
