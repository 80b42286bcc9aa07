/**
 * The tokens file, loaded at start and reloaded when it changes, without a restart and without
 * touching connections: requests check against whichever set is current when they arrive, and a
 * reload swaps the set in one assignment. Changes are noticed three ways: fs.watch on the file's
 * directory (an atomic rename replaces the file's inode, which a watch on the file itself would
 * lose; Kubernetes swaps a symlink beside it), a periodic stat for filesystems where watching does
 * not work (NFS, some container mounts), and `reload()` for SIGHUP. A file that does not parse, or
 * cannot be read, keeps the tokens loaded before and logs an error naming the entry and field.
 */
import { type FSWatcher, type Stats, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../log.ts";
import { IdentityFileError } from "./config-file.ts";
import { parseTokensFile } from "./token-file.ts";
import { TokenSet } from "./token-set.ts";

export interface TokenSourceOptions {
  file: string;
  logger: Logger;
  /** How often the file is checked besides fs.watch. Default 5 s. */
  pollIntervalMs?: number | undefined;
  /**
   * How long the file must have been left alone (by its mtime) before a change is read, so a write in
   * progress can finish. Default 50 ms. reload() does not wait.
   */
  settleMs?: number | undefined;
}

export interface TokenSource {
  /** The set requests are checked against now. */
  readonly current: TokenSet;
  /**
   * Reads the file again even when it looks unchanged (SIGHUP); resolves true when a new set is in
   * place, false when the old one was kept (and the error logged).
   */
  reload(trigger?: string): Promise<boolean>;
  /** Stops watching. */
  close(): void;
}

const DEFAULT_POLL_MS = 5000;
const DEFAULT_SETTLE_MS = 50;

/** Identifies one version of the file: a rename changes the inode, a write the size or mtime. */
function signature(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
}

function reason(err: unknown): string {
  return (err as { code?: string }).code ?? (err as Error).message;
}

/** Reads the file as one version: undefined when it changed while being read. */
async function readStable(file: string): Promise<{ text: string; sig: string } | undefined> {
  const before = signature(await stat(file));
  const text = await readFile(file, "utf8");
  const after = signature(await stat(file));
  return before === after ? { text, sig: after } : undefined;
}

/** Loads the file (throwing IdentityFileError when it cannot be used) and starts watching it. */
export async function openTokenSource(opts: TokenSourceOptions): Promise<TokenSource> {
  const { file, logger } = opts;
  const settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
  let read: Awaited<ReturnType<typeof readStable>>;
  try {
    read = (await readStable(file)) ?? (await readStable(file));
  } catch (err) {
    throw new IdentityFileError(`cannot read the tokens file ${file}: ${reason(err)}`);
  }
  if (read === undefined) throw new IdentityFileError(`${file} kept changing while it was read`);
  let current = new TokenSet(parseTokensFile(read.text, file));
  /** The version last looked at, loaded or refused: the same version is not parsed (or logged) again. */
  let seen = read.sig;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();
  let settleTimer: NodeJS.Timeout | undefined;

  const check = async (trigger: string, force: boolean): Promise<boolean> => {
    if (closed) return false;
    let next: Awaited<ReturnType<typeof readStable>>;
    try {
      if (!force) {
        const st = await stat(file);
        if (signature(st) === seen) return false;
        // A writer that writes in pieces may not be done: read once the file has been quiet a moment.
        const age = Date.now() - st.mtimeMs;
        if (age >= 0 && age < settleMs) {
          schedule(trigger, settleMs - age);
          return false;
        }
      }
      next = await readStable(file);
    } catch (err) {
      const sig = `unreadable:${reason(err)}`;
      if (force || seen !== sig) {
        logger.error("tokens file not reloaded: cannot read it; keeping the tokens loaded before", {
          file,
          trigger,
          error: reason(err),
          tokens: current.size,
        });
      }
      seen = sig;
      return false;
    }
    if (next === undefined) {
      // Written to while being read: look again once the writer is done.
      schedule(trigger);
      return false;
    }
    seen = next.sig;
    let entries: ReturnType<typeof parseTokensFile>;
    try {
      entries = parseTokensFile(next.text, file);
    } catch (err) {
      if (!(err instanceof IdentityFileError)) throw err;
      logger.error("tokens file not reloaded: keeping the tokens loaded before", {
        file,
        trigger,
        error: err.message,
        tokens: current.size,
      });
      return false;
    }
    const before = new Set(current.names);
    current = new TokenSet(entries);
    const after = new Set(current.names);
    logger.info("tokens file reloaded", {
      file,
      trigger,
      tokens: current.size,
      added: [...after].filter((n) => !before.has(n)),
      removed: [...before].filter((n) => !after.has(n)),
    });
    return true;
  };

  /** Checks run one at a time, in order. */
  const enqueue = (trigger: string, force: boolean): Promise<boolean> => {
    const run = queue.then(() => check(trigger, force));
    queue = run.catch((err: unknown) => {
      logger.error("tokens file check failed", { file, trigger, error: err });
    });
    return run;
  };

  /** A change event: one check a moment later, however many events come meanwhile. */
  const schedule = (trigger: string, delayMs = settleMs) => {
    if (closed || settleTimer !== undefined) return;
    settleTimer = setTimeout(() => {
      settleTimer = undefined;
      void enqueue(trigger, false).catch(() => {});
    }, delayMs);
    settleTimer.unref();
  };

  let watcher: FSWatcher | undefined;
  try {
    // Any change in the directory: the signature says whether it was the file.
    watcher = watch(path.dirname(path.resolve(file)), { persistent: false }, () => schedule("watch"));
    watcher.on("error", (err) => {
      logger.warn("cannot watch the tokens file's directory any more; checking it every poll interval", {
        file,
        error: reason(err),
      });
      watcher?.close();
      watcher = undefined;
    });
  } catch (err) {
    logger.warn("cannot watch the tokens file's directory; checking it every poll interval", {
      file,
      error: reason(err),
    });
  }
  const poll = setInterval(
    () => void enqueue("poll", false).catch(() => {}),
    opts.pollIntervalMs ?? DEFAULT_POLL_MS,
  );
  poll.unref();

  return {
    get current() {
      return current;
    },
    reload: (trigger = "reload") => enqueue(trigger, true),
    close() {
      closed = true;
      watcher?.close();
      clearInterval(poll);
      clearTimeout(settleTimer);
    },
  };
}
