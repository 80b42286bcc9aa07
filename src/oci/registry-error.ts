/**
 * Maps registry answers to the domain errors. The HTTP status and the OCI error codes travel on the
 * domain error's `cause` (a RegistryResponseError), so callers branch on the class and, where they
 * need to, on the exact registry answer via `registryErrorInfo`.
 */
import {
  DataLossError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  type TfstateError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
} from "../errors.ts";

/** One entry of the OCI error body `{"errors":[{code,message,detail}]}`. */
export interface RegistryErrorEntry {
  code: string;
  message: string;
}

/** The registry's answer behind a domain error (always the domain error's `cause`). */
export class RegistryResponseError extends Error {
  readonly status: number;
  readonly registryCodes: readonly string[];
  readonly errors: readonly RegistryErrorEntry[];
  readonly method: string;
  /** Host (and port) that answered. */
  readonly host: string;

  constructor(init: {
    status: number;
    method: string;
    host: string;
    errors: readonly RegistryErrorEntry[];
    message: string;
  }) {
    super(init.message);
    this.name = "RegistryResponseError";
    this.status = init.status;
    this.method = init.method;
    this.host = init.host;
    this.errors = init.errors;
    this.registryCodes = init.errors.map((e) => e.code);
  }
}

/** Status and OCI codes of the registry answer behind `err`, when there was one. */
export function registryErrorInfo(
  err: unknown,
): { status: number; registryCodes: readonly string[] } | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof RegistryResponseError) return { status: e.status, registryCodes: e.registryCodes };
  }
  return undefined;
}

const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_MESSAGE_CHARS = 300;

/** Parses an OCI error body; tolerant of HTML, text and truncated JSON (gives no entries). */
export function parseErrorBody(text: string): RegistryErrorEntry[] {
  if (text === "") return [];
  try {
    const parsed: unknown = JSON.parse(text);
    const list = (parsed as { errors?: unknown }).errors;
    if (!Array.isArray(list)) return [];
    const out: RegistryErrorEntry[] = [];
    for (const item of list) {
      if (item === null || typeof item !== "object") continue;
      const code = (item as { code?: unknown }).code;
      const message = (item as { message?: unknown }).message;
      out.push({
        code: typeof code === "string" ? code.toUpperCase() : "UNKNOWN",
        message: typeof message === "string" ? message : "",
      });
    }
    return out;
  } catch {
    return [];
  }
}

/** Reads at most 64 KiB of an error body as text; bodies are small, but a proxy could send anything. */
export async function readErrorBody(body: AsyncIterable<Uint8Array> | undefined): Promise<string> {
  if (body === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const room = MAX_ERROR_BODY_BYTES - size;
      chunks.push(chunk.byteLength > room ? chunk.subarray(0, room) : chunk);
      size += Math.min(chunk.byteLength, room);
      if (size >= MAX_ERROR_BODY_BYTES) break;
    }
  } catch {
    // A broken error body still leaves the status to report.
  }
  return Buffer.concat(chunks).toString("utf8");
}

function describeEntries(entries: readonly RegistryErrorEntry[], bodyText: string): string {
  if (entries.length > 0) {
    return entries
      .map((e) => (e.message ? `${e.code}: ${e.message}` : e.code))
      .join("; ")
      .slice(0, MAX_MESSAGE_CHARS);
  }
  const text = bodyText.replace(/\s+/g, " ").trim();
  // HTML error pages from proxies say nothing useful and can be long.
  if (text === "" || text.startsWith("<")) return "";
  return text.slice(0, MAX_MESSAGE_CHARS);
}

export interface ErrorContext {
  method: string;
  host: string;
  /** What was being done, e.g. `GET manifest "latest" in org/repo`. */
  what: string;
}

/**
 * Builds the domain error for a non-success registry answer. `bodyText` is the raw error body (may be
 * empty, e.g. for HEAD).
 */
export function errorFromResponse(status: number, bodyText: string, ctx: ErrorContext): TfstateError {
  const entries = parseErrorBody(bodyText);
  const detail = describeEntries(entries, bodyText);
  const cause = new RegistryResponseError({
    status,
    method: ctx.method,
    host: ctx.host,
    errors: entries,
    message: `${ctx.method} ${ctx.host}: status ${status}${detail ? ` (${detail})` : ""}`,
  });
  const message = `${ctx.what}: registry ${ctx.host} answered ${status}${detail ? ` (${detail})` : ""}`;
  const codes = new Set(entries.map((e) => e.code));
  const opts = { cause };

  if (codes.has("UNSUPPORTED") || status === 405) return new UnimplementedError(message, opts);
  if (codes.has("DENIED") || status === 403) return new PermissionDeniedError(message, opts);
  if (codes.has("UNAUTHORIZED") || status === 401) return new UnauthenticatedError(message, opts);
  if (codes.has("TOOMANYREQUESTS") || status === 429) return new UnavailableError(message, opts);
  if (status === 404) return new NotFoundError(message, opts);
  if (status === 413 || codes.has("SIZE_INVALID")) {
    return new ResourceExhaustedError(message, 0, opts);
  }
  if (status === 409 || status === 412) return new FailedPreconditionError(message, opts);
  if (status === 400 || status === 416 || status === 422) {
    // A digest mismatch on upload means the bytes we sent are not what we hashed: data was lost
    // on the way. Every other 400 names something we asked for that the registry refuses.
    if (codes.has("DIGEST_INVALID") && ctx.method !== "DELETE") return new DataLossError(message, opts);
    return new InvalidArgumentError(message, opts);
  }
  return new UnavailableError(message, opts);
}
