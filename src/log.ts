/**
 * Structured logging. One Logger is built at start and passed down; nothing reads the environment
 * deep inside. Fields must never carry secrets.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export const noopLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** One JSON object per line, written to `out` (stderr by default). */
export function createJsonLogger(
  level: LogLevel = "info",
  out: { write(line: string): unknown } = process.stderr,
  base: Record<string, unknown> = {},
): Logger {
  const min = LEVELS[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    const record = { time: new Date().toISOString(), level: lvl, msg, ...base, ...fields };
    out.write(`${JSON.stringify(record, errorReplacer)}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}
