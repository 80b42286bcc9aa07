/**
 * Exclusive use of a layout directory by one process. The service coordinates every write to a
 * repository in memory (workspace locks, fencing), so two processes on one directory would each
 * believe they own it. The lock file is created with O_EXCL and names its holder; a lock left by a
 * process that is gone (killed, crashed, or from before a reboot) is detected and taken over.
 *
 * A holder on another host (a directory on network storage) cannot be checked: its lock is honoured
 * until someone who knows it is gone deletes the file, as the error says.
 */
import { randomUUID } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { FailedPreconditionError, UnavailableError } from "../errors.ts";
import { errnoCode, fsyncDirSync, ioError, writeAllSync } from "./layout-files.ts";
import { isObject } from "./layout-index.ts";

export interface LayoutLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  /** What garbage collection freed; optional, so a warn-only logger still fits. */
  debug?(msg: string, fields?: Record<string, unknown>): void;
}

export interface LockHolder {
  pid: number;
  hostname: string;
  /** Linux boot id: a pid from an earlier boot says nothing about the processes running now. */
  bootId?: string;
  since: string;
  token: string;
}

/** A lock file too young to judge may be mid-creation by its holder (created, not yet written). */
const UNREADABLE_LOCK_GRACE_MS = 10_000;
const ACQUIRE_ATTEMPTS = 5;

// Lock files held by this process (real paths): a second target on the same directory in one
// process would be as harmful as a second process.
const heldInThisProcess = new Set<string>();

export class LayoutDirectoryLock {
  readonly file: string;
  private readonly key: string;
  private readonly content: Buffer;

  private constructor(file: string, key: string, content: Buffer) {
    this.file = file;
    this.key = key;
    this.content = content;
  }

  /**
   * Takes the lock at `file` (in an existing directory) for `layoutDir`, or throws
   * FailedPreconditionError naming the holder.
   */
  static acquire(file: string, layoutDir: string, logger: LayoutLogger | undefined): LayoutDirectoryLock {
    const key = path.join(realpathSync(path.dirname(file)), path.basename(file));
    if (heldInThisProcess.has(key)) {
      throw new FailedPreconditionError(
        `the layout directory is already open in this process (lock file ${file}); close that target first`,
      );
    }
    const me: LockHolder = {
      pid: process.pid,
      hostname: hostname(),
      since: new Date().toISOString(),
      token: randomUUID(),
    };
    const bootId = currentBootId();
    if (bootId !== undefined) me.bootId = bootId;
    const content = Buffer.from(`${JSON.stringify(me)}\n`);

    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      let fd: number;
      try {
        fd = openSync(file, "wx", 0o644);
      } catch (err) {
        if (errnoCode(err) !== "EEXIST") throw ioError(err, `creating the lock file ${file}`);
        const found = readLockFile(file);
        if (found === null) continue;
        const stale = staleReason(found);
        if (stale === undefined) throw inUse(layoutDir, file, found.holder);
        breakStaleLock(file, found.raw, stale, logger);
        continue;
      }
      try {
        writeAllSync(fd, content);
        fsyncSync(fd);
      } catch (err) {
        closeSync(fd);
        unlinkSync(file);
        throw ioError(err, `writing the lock file ${file}`);
      }
      closeSync(fd);
      fsyncDirSync(path.dirname(file));
      heldInThisProcess.add(key);
      return new LayoutDirectoryLock(file, key, content);
    }
    throw new UnavailableError(`could not take the lock file ${file}: it kept changing hands; try again`);
  }

  /** Throws UnavailableError when the lock file no longer names this holder (deleted or taken over). */
  async assertHeld(): Promise<void> {
    let raw: Buffer;
    try {
      raw = await readFile(this.file);
    } catch (err) {
      if (errnoCode(err) === "ENOENT") {
        throw new UnavailableError(`lost the layout lock: the lock file ${this.file} was deleted`);
      }
      throw ioError(err, `reading the lock file ${this.file}`);
    }
    if (!raw.equals(this.content)) {
      const holder = parseHolder(raw);
      const who = holder === undefined ? "an unknown holder" : `process ${holder.pid} on ${holder.hostname}`;
      throw new UnavailableError(`lost the layout lock: the lock file ${this.file} now names ${who}`);
    }
  }

  /** Removes the lock file if it is still this holder's. */
  release(logger: LayoutLogger | undefined): void {
    heldInThisProcess.delete(this.key);
    try {
      if (readFileSync(this.file).equals(this.content)) {
        unlinkSync(this.file);
        return;
      }
      logger?.warn("the layout lock file was taken over by another holder; left in place", {
        lockFile: this.file,
      });
    } catch (err) {
      logger?.warn("could not release the layout lock file", { lockFile: this.file, error: String(err) });
    }
  }
}

interface FoundLock {
  raw: Buffer;
  holder: LockHolder | undefined;
  mtimeMs: number;
}

function readLockFile(file: string): FoundLock | null {
  try {
    const raw = readFileSync(file);
    const { mtimeMs } = statSync(file);
    return { raw, holder: parseHolder(raw), mtimeMs };
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return null;
    throw ioError(err, `reading the lock file ${file}`);
  }
}

function parseHolder(raw: Buffer): LockHolder | undefined {
  try {
    const doc: unknown = JSON.parse(raw.toString("utf8"));
    if (!isObject(doc)) return undefined;
    const { pid, hostname: host, bootId, since, token } = doc;
    if (!Number.isSafeInteger(pid) || typeof host !== "string" || typeof token !== "string") return undefined;
    const holder: LockHolder = { pid: pid as number, hostname: host, since: String(since), token };
    if (typeof bootId === "string") holder.bootId = bootId;
    return holder;
  } catch {
    return undefined;
  }
}

/** Why the lock's holder is certainly gone, or undefined when it may still be running. */
function staleReason(found: FoundLock): string | undefined {
  const { holder } = found;
  if (holder === undefined) {
    const age = Date.now() - found.mtimeMs;
    return age > UNREADABLE_LOCK_GRACE_MS
      ? `its content is unreadable and it is ${Math.round(age / 1000)} s old`
      : undefined;
  }
  if (holder.hostname !== hostname()) return undefined;
  const bootId = currentBootId();
  if (holder.bootId !== undefined && bootId !== undefined && holder.bootId !== bootId) {
    return "it was taken before the machine last started";
  }
  // Not held in this process (checked first), so it is left from an earlier run that had our pid,
  // as happens in containers where the service is always pid 1.
  if (holder.pid === process.pid) return `it names this process's pid ${holder.pid} from an earlier run`;
  if (!isAlive(holder.pid)) return `process ${holder.pid} is gone`;
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, under another user.
    return errnoCode(err) === "EPERM";
  }
  // A killed process whose parent has not reaped it yet lingers as a zombie, which signal 0 finds.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

function currentBootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Moves the stale lock aside first and checks it is still the one judged stale: two processes
 * breaking the same lock at once must not remove the fresh lock one of them just took.
 */
function breakStaleLock(
  file: string,
  staleContent: Buffer,
  reason: string,
  logger: LayoutLogger | undefined,
): void {
  const aside = `${file}.stale-${randomUUID()}`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return;
    throw ioError(err, `removing the stale lock file ${file}`);
  }
  try {
    if (!readFileSync(aside).equals(staleContent)) {
      // A live lock was taken between the check and the move: give it back.
      try {
        linkSync(aside, file);
      } catch {
        // Someone holds the name again; the displaced holder sees the loss at its next write.
      }
      return;
    }
    logger?.warn("took over a stale layout lock", {
      lockFile: file,
      reason,
      previous: staleContent.toString().trim(),
    });
  } finally {
    try {
      unlinkSync(aside);
    } catch {
      // Already gone.
    }
  }
}

function inUse(dir: string, file: string, holder: LockHolder | undefined): FailedPreconditionError {
  const who =
    holder === undefined
      ? "another process (its lock file is being written)"
      : `process ${holder.pid} on host ${holder.hostname} (since ${holder.since})`;
  return new FailedPreconditionError(
    `the layout directory ${dir} is in use by ${who}; only one process may use a layout directory at a time. ` +
      `If that process is gone, delete ${file}.`,
  );
}
