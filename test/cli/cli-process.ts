/**
 * Runs the real CLI (`node src/cli.ts`, Node's type stripping, no tsx) in a temp directory with a
 * clean environment, and reads its JSON log lines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after } from "node:test";

export const CLI = path.resolve("src/cli.ts");

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface CliRun {
  child: ChildProcess;
  cwd: string;
  stdout(): string;
  stderr(): string;
  /** Every stderr line parsed as JSON (throws on a line that is not). */
  logs(): LogLine[];
  /** Resolves with the first log line with this message. */
  waitForLog(msg: string, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A temp dir removed after the file's tests. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "oci-tfstate-cli-"));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<CliRun> {
  const dir = cwd ?? (await tempDir());
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: dir,
    // Nothing from the test runner's environment leaks in (no OTEL_*, no OCI_TFSTATE_*, no Docker config).
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: Array<{ msg: string; resolve: (l: LogLine) => void }> = [];
  const parse = (): LogLine[] =>
    err
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as LogLine);
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
    for (const w of [...waiters]) {
      const found = safeParse(err).find((l) => l.msg === w.msg);
      if (found) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(found);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    child,
    cwd: dir,
    stdout: () => out,
    stderr: () => err,
    logs: parse,
    exited,
    waitForLog(msg, timeoutMs = 10_000) {
      const found = safeParse(err).find((l) => l.msg === msg);
      if (found) return Promise.resolve(found);
      return new Promise<LogLine>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no log "${msg}" within ${timeoutMs} ms:\n${err}`)),
          timeoutMs,
        );
        const w = {
          msg,
          resolve: (l: LogLine) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        waiters.push(w);
        void exited.then(() => {
          if (waiters.includes(w)) {
            clearTimeout(timer);
            reject(new Error(`the CLI exited before logging "${msg}":\n${err}${out}`));
          }
        });
      });
    },
  };
}

function safeParse(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split("\n")) {
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // An incomplete last line, or not JSON.
    }
  }
  return out;
}
