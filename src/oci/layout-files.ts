/**
 * Durable file primitives for the image layout: content is written to a temp file on the same
 * filesystem, fsynced, then renamed over its final name, so readers (this process, skopeo, a crash
 * recovery) only ever see the old or the new complete file.
 */
import { randomUUID } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import path from "node:path";
import { isTfstateError, PermissionDeniedError, UnavailableError } from "../errors.ts";

export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Domain error for a failed filesystem call; `action` names what was being done and where. */
export function ioError(err: unknown, action: string): Error {
  if (isTfstateError(err)) return err;
  // Errors that are not from the OS (a caller's stream failing, onTooLarge's error) pass unchanged.
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall !== "string") return err;
  const code = errnoCode(err);
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new PermissionDeniedError(`${action}: permission denied (${code})`, { cause: err });
  }
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new UnavailableError(`${action}: no space left on the device (${code})`, { cause: err });
  }
  const detail = code ?? (err instanceof Error ? err.message : String(err));
  return new UnavailableError(`${action}: ${detail}`, { cause: err });
}

export function tempPath(tmpDir: string, kind: string): string {
  return path.join(tmpDir, `${kind}-${randomUUID()}.tmp`);
}

/**
 * Makes a rename in `dir` durable. Some platforms (Windows) cannot open a directory for fsync;
 * there the rename is as durable as the OS makes it.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (err) {
    if (!isUnsupportedDirSync(err)) throw err;
  } finally {
    await handle?.close();
  }
}

export function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch (err) {
    if (!isUnsupportedDirSync(err)) throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function isUnsupportedDirSync(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "EISDIR" || code === "EINVAL" || code === "EPERM" || code === "ENOTSUP";
}

/**
 * Writes `bytes` to a new temp file in `tmpDir` (fsynced), then hands its path to `place`, which
 * moves it into position. The temp file is removed if anything fails.
 */
export async function stageDurably(
  tmpDir: string,
  name: string,
  bytes: Uint8Array,
  place: (tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = tempPath(tmpDir, name);
  try {
    const handle = await open(tmp, "wx", 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await place(tmp);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Writes `bytes` to `finalPath` atomically and durably, staging it in `tmpDir`. */
export async function writeFileDurably(tmpDir: string, finalPath: string, bytes: Uint8Array): Promise<void> {
  await stageDurably(tmpDir, path.basename(finalPath), bytes, (tmp) => rename(tmp, finalPath));
  await fsyncDir(path.dirname(finalPath));
}

/** The synchronous twin of writeFileDurably, for opening a layout inside a synchronous factory. */
export function writeFileDurablySync(tmpDir: string, finalPath: string, bytes: Uint8Array): void {
  const tmp = tempPath(tmpDir, path.basename(finalPath));
  try {
    const fd = openSync(tmp, "wx", 0o644);
    try {
      writeAllSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, finalPath);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // Never created, or already renamed.
    }
    throw err;
  }
  fsyncDirSync(path.dirname(finalPath));
}

export function writeAllSync(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.byteLength) {
    offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
  }
}
