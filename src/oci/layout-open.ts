/**
 * Opening a layout directory: refuse what is not an OCI image layout, take the directory lock,
 * create what a new layout lacks, and load index.json. Synchronous, because the target's factory
 * is: it runs once at start-up, where a clear configuration error beats a lazy failure later.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { DataLossError, InvalidArgumentError } from "../errors.ts";
import { errnoCode, ioError, writeFileDurablySync } from "./layout-files.ts";
import {
  duplicateRefNames,
  EMPTY_INDEX,
  type LayoutIndex,
  parseIndex,
  serializeIndex,
} from "./layout-index.ts";
import { LayoutDirectoryLock, type LayoutLogger } from "./layout-lock.ts";

export const LAYOUT_VERSION = "1.0.0";
/** This store's own files (lock, temp files) live here; other tools ignore it. */
export const PRIVATE_DIR = ".oci-tfstate";

export interface OpenedLayout {
  root: string;
  tmpDir: string;
  indexFile: string;
  lock: LayoutDirectoryLock;
  index: LayoutIndex;
}

export function openLayoutDirectory(dir: string, logger: LayoutLogger | undefined): OpenedLayout {
  if (typeof dir !== "string" || dir.trim() === "") {
    throw new InvalidArgumentError("the layout directory path is empty");
  }
  const root = path.resolve(dir);
  try {
    mkdirSync(root, { recursive: true });
  } catch (err) {
    if (errnoCode(err) === "EEXIST" || errnoCode(err) === "ENOTDIR") {
      throw new InvalidArgumentError(`the layout path ${root} exists and is not a directory`);
    }
    throw ioError(err, `creating the layout directory ${root}`);
  }
  if (!statSync(root).isDirectory()) {
    throw new InvalidArgumentError(`the layout path ${root} exists and is not a directory`);
  }
  // Checked before anything is written, so a wrong path never gets our files in it.
  inspect(root);

  const privateDir = path.join(root, PRIVATE_DIR);
  const tmpDir = path.join(privateDir, "tmp");
  try {
    mkdirSync(tmpDir, { recursive: true });
  } catch (err) {
    throw ioError(err, `creating ${tmpDir}`);
  }
  const lock = LayoutDirectoryLock.acquire(path.join(privateDir, "lock"), root, logger);
  try {
    // Again under the lock: another process may have initialised the directory meanwhile.
    const { hasLayoutFile } = inspect(root);
    clearTempFiles(tmpDir, logger);
    if (!hasLayoutFile) {
      writeFileDurablySync(
        tmpDir,
        path.join(root, "oci-layout"),
        new TextEncoder().encode(`${JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })}\n`),
      );
    }
    mkdirSync(path.join(root, "blobs", "sha256"), { recursive: true });
    const indexFile = path.join(root, "index.json");
    const index = loadIndex(root, indexFile, tmpDir);
    for (const name of duplicateRefNames(index)) {
      logger?.warn("index.json lists a ref name more than once; lookups use the first entry", {
        layout: root,
        refName: name,
      });
    }
    return { root, tmpDir, indexFile, lock, index };
  } catch (err) {
    lock.release(logger);
    throw ioError(err, `opening the layout ${root}`);
  }
}

function inspect(root: string): { hasLayoutFile: boolean } {
  let entries: string[];
  try {
    entries = readdirSync(root).filter((name) => name !== PRIVATE_DIR);
  } catch (err) {
    throw ioError(err, `reading the layout directory ${root}`);
  }
  if (entries.length === 0) return { hasLayoutFile: false };
  if (!entries.includes("oci-layout")) {
    throw new InvalidArgumentError(
      `${root} is not empty and is not an OCI image layout (it has no oci-layout file); ` +
        "give an empty or new directory, or an existing OCI image layout",
    );
  }
  const file = path.join(root, "oci-layout");
  let version: unknown;
  try {
    const doc: unknown = JSON.parse(readFileSync(file, "utf8"));
    version = (doc as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  } catch (err) {
    if (err instanceof SyntaxError) throw new InvalidArgumentError(`${file} is not valid JSON`);
    throw ioError(err, `reading ${file}`);
  }
  if (version !== LAYOUT_VERSION) {
    throw new InvalidArgumentError(
      `${file} has imageLayoutVersion ${JSON.stringify(version)}; this store reads version ${LAYOUT_VERSION} only`,
    );
  }
  return { hasLayoutFile: true };
}

function loadIndex(root: string, indexFile: string, tmpDir: string): LayoutIndex {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(indexFile);
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") throw ioError(err, `reading ${indexFile}`);
    // A new layout, or one whose creation was interrupted before index.json: nothing is lost. With
    // blobs present, the tags that named them are, and an empty index would hide that.
    if (readdirSync(path.join(root, "blobs", "sha256")).length > 0) {
      throw new DataLossError(
        `${root} has blobs but no index.json, so its tags are lost; restore index.json ` +
          "(or move the layout away) before using it",
      );
    }
    writeFileDurablySync(tmpDir, indexFile, serializeIndex(EMPTY_INDEX));
    return EMPTY_INDEX;
  }
  return parseIndex(bytes, indexFile);
}

/** Temp files left by a process that died mid-write; none can be in use while the lock is held. */
function clearTempFiles(tmpDir: string, logger: LayoutLogger | undefined): void {
  const names = readdirSync(tmpDir);
  for (const name of names) rmSync(path.join(tmpDir, name), { recursive: true, force: true });
  if (names.length > 0) {
    logger?.warn("removed temp files left by an interrupted write", { tmpDir, count: names.length });
  }
}
