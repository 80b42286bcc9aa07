/**
 * Starts the real oci-tfstate service, `node --import tsx src/cli.ts --listen 127.0.0.1:0 ...` from
 * the repository root on the Node running the tests, and stops it by PID with SIGTERM, after which
 * it must exit with status 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface RunningService {
  /** Base URL from the service's "listening" log line, e.g. `http://127.0.0.1:PORT`. */
  url: string;
  pid: number;
  output(): string;
  /** SIGTERM; rejects unless the service exits with status 0. Idempotent. */
  stop(): Promise<void>;
}

export async function startService(args: string[]): Promise<RunningService> {
  const command = [process.execPath, "--import", "tsx", "src/cli.ts", "--listen", "127.0.0.1:0", ...args];
  const [bin, ...rest] = withParentDeathSignal(command);
  // Only what the service needs: no OCI_TFSTATE_* or OTEL_* settings from the caller's shell.
  const env = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", NO_COLOR: "1" };
  const child = spawn(bin as string, rest, { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (output += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (output += s));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const pid = child.pid;
  if (pid === undefined) throw new Error("cannot start oci-tfstate");

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= terminate(child, exited, () => output);
    return stopping;
  };
  try {
    const url = await waitForUrl(() => output, exited);
    return { url, pid, output: () => output, stop };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

async function waitForUrl(output: () => string, exited: Promise<number | null>): Promise<string> {
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    for (const line of output().split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const record = JSON.parse(line) as { msg?: unknown; url?: unknown };
        if (record.msg === "listening" && typeof record.url === "string") return record.url;
      } catch {
        // An incomplete line: read again later.
      }
    }
    if (done) throw new Error(`oci-tfstate exited before listening:\n${tail(output())}`);
    if (Date.now() > deadline)
      throw new Error(`oci-tfstate did not report its URL in time:\n${tail(output())}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function terminate(
  child: ChildProcess,
  exited: Promise<number | null>,
  output: () => string,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), STOP_TIMEOUT_MS);
  });
  const code = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (code === "timeout") {
    child.kill("SIGKILL");
    await exited;
    throw new Error(`oci-tfstate did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM:\n${tail(output())}`);
  }
  if (code !== 0) throw new Error(`oci-tfstate exited with ${code} on SIGTERM:\n${tail(output())}`);
}

/** Linux kills the service when the test process dies, even by SIGKILL (no cleanup runs then). */
function withParentDeathSignal(command: string[]): string[] {
  const setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  return setpriv === undefined ? command : [setpriv, "--pdeathsig", "SIGKILL", "--", ...command];
}

function tail(text: string, lines = 30): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** An API token as `oci-tfstate token create` makes it: `otfs_` and 32 random bytes in base64url. */
export function newSecret(): string {
  return `otfs_${randomBytes(32).toString("base64url")}`;
}

/**
 * Writes the file the service reads with `--tokens-file`: `{"tokens": [{name, sha256}]}` (JSON being
 * YAML), with the lowercase hex SHA-256 of each secret, keyed by token name.
 */
export async function writeTokensFile(file: string, tokens: Record<string, string>): Promise<string> {
  const entries = Object.entries(tokens).map(([name, secret]) => ({
    name,
    sha256: createHash("sha256").update(secret, "utf8").digest("hex"),
  }));
  await writeFile(file, JSON.stringify({ tokens: entries }, null, 2), { mode: 0o600 });
  return file;
}
