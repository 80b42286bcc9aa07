/**
 * Last-resort cleanup for things the harness starts. Tests are expected to stop what they start in
 * `after`, but a crashed or interrupted test process must not leave registries or temp dirs behind.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

interface Tracked {
  pid: number | undefined;
  dir: string | undefined;
}

const tracked = new Set<Tracked>();
let installed = false;

function cleanupAll(): void {
  for (const entry of tracked) {
    if (entry.pid !== undefined) {
      try {
        process.kill(entry.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    if (entry.dir !== undefined && process.env.OCI_TFSTATE_KEEP_HARNESS_FILES !== "1") {
      rmSync(entry.dir, { recursive: true, force: true });
    }
  }
  tracked.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupAll();
  // Only restore the default behaviour (terminate) when nobody else handles the signal.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", cleanupAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
}

/** Registers a process and/or directory to be killed/removed if the test process exits first. */
export function trackForCleanup(pid: number | undefined, dir: string | undefined): () => void {
  install();
  const entry: Tracked = { pid, dir };
  tracked.add(entry);
  return () => {
    tracked.delete(entry);
  };
}

const OWNER_FILE = ".owner-pid";

/** Marks a harness temp dir as belonging to this process, so a later run can tell it is stale. */
export function markOwned(dir: string): void {
  writeFileSync(path.join(dir, OWNER_FILE), String(process.pid));
}

/**
 * Removes harness temp dirs whose owning process is gone (it was SIGKILLed before any hook ran).
 * Dirs of live processes, including other test files running in parallel, are left alone.
 */
export function sweepStaleDirs(prefix: string): void {
  const base = tmpdir();
  let names: string[];
  try {
    names = readdirSync(base).filter((name) => name.startsWith(prefix));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = path.join(base, name);
    let owner: number;
    try {
      owner = Number.parseInt(readFileSync(path.join(dir, OWNER_FILE), "utf8"), 10);
    } catch {
      continue; // Being created right now, or not ours.
    }
    if (Number.isInteger(owner) && owner !== process.pid && !isAlive(owner)) {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // In containers whose PID 1 does not reap orphans, a dead process lingers as a zombie.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}
