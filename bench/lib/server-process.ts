/**
 * The oci-tfstate server as its own process, started the way `npm start` and the container image
 * start it (`node src/launch.ts`, Node's own type stripping, which re-executes itself in place with
 * the server's V8 settings), so its memory is measured apart from the clients'. The port is picked
 * by the kernel and read back from the "listening" log line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { trackForCleanup } from "../../test/harness/cleanup.ts";

export interface ServerProcess {
  pid: number;
  /** "http://127.0.0.1:PORT" */
  url: string;
  /** The last lines the server wrote to stderr (its JSON log), for error messages. */
  logTail(): string;
  /** SIGTERM (graceful shutdown), SIGKILL if it has not exited in time. Idempotent. */
  stop(): Promise<void>;
}

export interface ServerProcessOptions {
  /** `host:port/path` of the registry repository. */
  repository: string;
  /** More CLI flags, e.g. ["--max-message-size", "40MiB"]. */
  args?: readonly string[];
}

/**
 * Extra Node flags for the server, e.g. `BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"`
 * to profile it (the profile is written when it shuts down). The launcher passes them on and adds
 * none of its own settings that they already give, e.g. another `--max-semi-space-size`.
 */
const NODE_ARGS = (process.env.BENCH_SERVER_NODE_ARGS ?? "").split(/\s+/).filter((a) => a !== "");

/**
 * A file to append the server's stdout to, which the server itself never writes (its log is on
 * stderr) but V8's tracing does: `BENCH_SERVER_NODE_ARGS=--trace-gc BENCH_SERVER_STDOUT=/tmp/gc.log`.
 */
const STDOUT_FILE = process.env.BENCH_SERVER_STDOUT ?? "";

const ENTRY = fileURLToPath(new URL("../../src/launch.ts", import.meta.url));
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;
const TAIL_LINES = 20;

export async function startServerProcess(opts: ServerProcessOptions): Promise<ServerProcess> {
  const args = [
    ...NODE_ARGS,
    ENTRY,
    "--listen",
    "127.0.0.1:0",
    "--repository",
    opts.repository,
    "--plain-http",
    "--shutdown-grace",
    "2s",
    ...(opts.args ?? []),
  ];
  const [command, argv] = withParentDeathSignal(process.execPath, args);
  const stdout = STDOUT_FILE === "" ? "ignore" : openSync(STDOUT_FILE, "a");
  let child: ChildProcess;
  try {
    child = spawn(command, argv, { stdio: ["ignore", stdout, "pipe"], env: serverEnv() });
  } finally {
    if (typeof stdout === "number") closeSync(stdout);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once("error", resolve));
    throw new Error(`cannot start the server: ${err.message}`);
  }
  const untrack = trackForCleanup(pid, undefined);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const tail: string[] = [];
  let url: string | undefined;
  let reachable = false;
  let onProgress: (() => void) | undefined;
  let buffered = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (text: string) => {
    buffered += text;
    for (let nl = buffered.indexOf("\n"); nl !== -1; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      const record = parseLogLine(line);
      if (record?.msg === "listening" && typeof record.url === "string") url = record.url;
      if (record?.msg === "storage reachable") reachable = true;
      onProgress?.();
    }
  });
  const logTail = () => tail.join("\n");

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await terminate(child, exited);
      untrack();
    })();
    return stopping;
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the server did not start in time:\n${logTail()}`)),
        START_TIMEOUT_MS,
      );
      const check = () => {
        if (url !== undefined && reachable) {
          clearTimeout(timer);
          resolve();
        }
      };
      onProgress = check;
      exited.then(() => {
        clearTimeout(timer);
        reject(
          new Error(`the server exited (${child.exitCode ?? child.signalCode}) during start:\n${logTail()}`),
        );
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  onProgress = undefined;
  return { pid, url: url as string, logTail, stop };
}

/** No OpenTelemetry (it would add its own work and memory) and no inherited server settings. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("OTEL_") || k.startsWith("OCI_TFSTATE_") || k.startsWith("TF_BACKEND_ORAS_")) continue;
    env[k] = v;
  }
  return env;
}

function parseLogLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Linux kills the server when the bench dies, even by SIGKILL; setpriv execs, so the PID stays the server's. */
function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  if (setpriv === undefined) return [command, args];
  return [setpriv, ["--pdeathsig", "SIGKILL", "--", command, ...args]];
}

async function terminate(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
  });
  const needsKill = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (needsKill) {
    child.kill("SIGKILL");
    await exited;
  }
}
