/**
 * The server's entry point: `npm start`, the container image and the benchmarks all run
 * `node src/launch.ts [flags]`. It replaces itself (execve: same PID, so signals, supervisors and
 * /proc readings still see the server) with `node <RUNTIME_FLAGS> src/cli.ts [flags]`, because V8
 * sizes its heap when Node starts: `v8.setFlagsFromString` comes too late for these settings.
 *
 * --max-semi-space-size=1 (MiB): V8 sizes the young generation from the heap limit, and lets it
 * grow to 16 MiB per semi-space after start-up and to 64 MiB under load (on this 24 GiB machine).
 * Streaming a large state leaves 2 to 3 bytes of short-lived off-heap buffers per byte (socket
 * reads, Connect envelopes, serialized and compressed messages) but little garbage on the JS heap,
 * so with a large young generation no scavenge runs, and those buffers wait for a mark-compact,
 * which V8 starts for off-heap memory only 64 MiB above its level after the last one (a fixed V8
 * constant). With 1 MiB, scavenges free the buffers that die young, and the old generation's limit
 * stays close to its size, so mark-compacts come often enough for the ones that got promoted.
 * Measured with bench/large.ts (256 MiB up, then down): peak RSS growth 29 to 50 MiB over 14 runs
 * instead of 75 to 87 MiB (4 MiB upload chunks alone: 81 to 94 MiB; a 2 MiB semi-space: 38 to
 * 85 MiB). With 10,000 WatchLock streams the server holds about 210 MiB instead of 300 to 315, at the
 * same delivery latency. 32 MiB DownloadState and PutState take about 5 % longer (more frequent
 * GC); GetState and smaller calls are unchanged.
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
