/**
 * Where audit records go (`--audit-log FILE|-`): appended to a file, one line per record, or
 * written to stderr. A record is a buffered write and nothing more on the request path: a write
 * that fails (a full disk, a closed pipe) or a file that stops keeping up loses that record,
 * counts it, and is logged once at error until the log is reopened; it never fails the request.
 * The file is opened once, at start (so a bad path stops the process there), and reopened on
 * `reopen()` (SIGHUP, after a rotation).
 *
 * Reads are recorded as `--audit-reads` says: on (every read), off (none), or a fraction of them.
 */
import { closeSync, createWriteStream, openSync, type WriteStream } from "node:fs";
import type { Logger } from "../log.ts";
import { type AuditEvent, auditLine } from "./audit-record.ts";

/** Bytes a slow file may have pending before records are dropped instead of held in memory. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;

export interface AuditLogOptions {
  /** A file path, or "-" for stderr. */
  destination: string;
  /** Fraction of state reads recorded, 0 to 1 (default 1). */
  reads?: number | undefined;
  logger: Logger;
  /** For tests: the random source of read sampling. */
  random?: () => number;
}

export interface AuditLog {
  /** Records one call (stamped now). Never throws, never waits. */
  record(event: AuditEvent): void;
  /** Whether to record this read (`--audit-reads`); ask once per read. */
  sampleRead(): boolean;
  /** Reopens the file at its path (after a rotation); a no-op on stderr. */
  reopen(): void;
  /** Flushes and closes the file; later records are lost (and counted). */
  close(): Promise<void>;
  /** Records written, and records lost to a failed or lagging write. */
  stats(): { written: number; failed: number };
}

/** A sink a record is written to. */
interface Sink {
  write(line: string, done: (err: Error | null | undefined) => void): void;
  readonly pending: number;
  end(): Promise<void>;
}

/** Opens the audit log; throws (an Error with the system's code) when the file cannot be opened. */
export function openAuditLog(opts: AuditLogOptions): AuditLog {
  const { destination, logger } = opts;
  const reads = opts.reads ?? 1;
  const random = opts.random ?? Math.random;
  const where = destination === "-" ? "stderr" : destination;
  let written = 0;
  let failed = 0;
  /** One error line per episode: reset when the log is reopened. */
  let complained = false;
  let closed = false;

  const lost = (reason: string, err?: unknown) => {
    failed++;
    if (complained) return;
    complained = true;
    const code = (err as { code?: string } | undefined)?.code ?? (err as Error | undefined)?.message;
    logger.error("audit records are being lost", { auditLog: where, reason, error: code });
  };

  const open = (): Sink => (destination === "-" ? stderrSink() : fileSink(destination, lost));
  let sink = open();

  return {
    record(event) {
      if (closed) return lost("the audit log is closed");
      if (sink.pending > MAX_PENDING_BYTES) return lost("the audit log is not keeping up");
      let line: string;
      try {
        line = auditLine(event, new Date());
      } catch (err) {
        return lost("a record could not be encoded", err);
      }
      sink.write(line, (err) => {
        if (err) lost("a write failed", err);
        else written++;
      });
    },
    sampleRead() {
      return reads >= 1 || (reads > 0 && random() < reads);
    },
    reopen() {
      if (closed || destination === "-") return;
      let next: Sink;
      try {
        next = open();
      } catch (err) {
        lost("the audit log could not be reopened", err);
        return;
      }
      const old = sink;
      sink = next;
      complained = false;
      void old.end();
      logger.info("audit log reopened", { auditLog: where });
    },
    async close() {
      if (closed) return;
      closed = true;
      await sink.end();
    },
    stats() {
      return { written, failed };
    },
  };
}

/** Appends to `path`, created with mode 0600; opened now, so that a bad path throws here. */
function fileSink(path: string, lost: (reason: string, err?: unknown) => void): Sink {
  const fd = openSync(path, "a", 0o600);
  let stream: WriteStream;
  try {
    stream = createWriteStream("", { fd, flags: "a" });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let broken = false;
  // A failed write fails its callback too, where it is counted; this only keeps the error handled.
  stream.on("error", () => {
    broken = true;
  });
  return {
    write(line, done) {
      if (broken || stream.destroyed) {
        lost("a write failed earlier; reopen the audit log (SIGHUP)");
        return;
      }
      stream.write(line, done);
    },
    get pending() {
      return stream.writableLength;
    },
    end() {
      return new Promise<void>((resolve) => {
        if (stream.destroyed) return resolve();
        stream.once("close", () => resolve());
        stream.end();
      });
    },
  };
}

function stderrSink(): Sink {
  return {
    write(line, done) {
      process.stderr.write(line, done);
    },
    get pending() {
      return process.stderr.writableLength;
    },
    async end() {},
  };
}
