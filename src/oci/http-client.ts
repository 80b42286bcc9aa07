/**
 * The single place a remote target touches the network: one undici Agent (keep-alive pools per
 * origin), the rate limiter, the User-Agent, one OpenTelemetry span per request, and the translation
 * of network failures into TransientError (worth a retry) or UnavailableError (not).
 */
import type { IncomingHttpHeaders } from "node:http";
import { Agent, type Dispatcher, request } from "undici";
import { isTfstateError, UnavailableError } from "../errors.ts";
import type { CallContext } from "./call-context.ts";
import type { RateLimiter } from "./rate-limiter.ts";
import { TransientError } from "./retry.ts";
import { startHttpSpan } from "./telemetry.ts";
import { createConnector, type TlsSettings } from "./tls-config.ts";

export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string> | undefined;
  /** Always in memory: every request body can be sent again. */
  body?: Uint8Array | string | undefined;
}

export interface HttpResponse {
  /** The request this answers (after any redirects the caller followed, the last one). */
  method: HttpMethod;
  url: URL;
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData["body"];
}

export interface HttpClientOptions extends TlsSettings {
  userAgent: string;
  rateLimiter?: RateLimiter | undefined;
}

/** Network error codes after which the same request may well succeed. */
const RETRYABLE_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
]);

const TLS_VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** First value of a response header. */
export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** All values of a response header (repeated headers and comma-joined ones are both kept as given). */
export function headerValues(res: HttpResponse, name: string): string[] {
  const v = res.headers[name.toLowerCase()];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Discards a response body so its connection goes back to the pool. */
export async function discard(res: HttpResponse): Promise<void> {
  try {
    await res.body.dump({ limit: 256 * 1024 });
  } catch {
    // The connection is closed instead of reused; nothing else to do.
  }
}

/**
 * Reads a whole (small) body, failing with `tooLarge()` past `limit` bytes. A broken connection is a
 * network error like any other (TransientError when worth retrying), so read inside the retry unit.
 */
export async function readResponseBody(
  res: HttpResponse,
  limit: number,
  call: CallContext,
  tooLarge: () => Error,
): Promise<Buffer> {
  const announced = Number(header(res, "content-length"));
  if (Number.isFinite(announced) && announced > limit) {
    await discard(res);
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > limit) {
        res.body.destroy();
        throw tooLarge();
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (call.done) throw call.abortError();
    if (isTfstateError(err)) throw err;
    throw networkError(err, res.method, res.url, call);
  }
  return Buffer.concat(chunks);
}

/** A network failure as TransientError (worth another try) or UnavailableError (not). */
export function networkError(err: unknown, method: HttpMethod, url: URL, call: CallContext): Error {
  const host = url.host;
  const code = errorCode(err);
  const reason = code !== undefined ? `${code}: ${errorText(err)}` : errorText(err);
  if (code !== undefined && RETRYABLE_CODES.has(code)) {
    return new TransientError({
      host,
      reason,
      message: `${call.what}: ${method} to ${host} failed (${reason})`,
      cause: err,
    });
  }
  if (code !== undefined && TLS_VERIFY_CODES.has(code)) {
    return new UnavailableError(
      `${call.what}: TLS verification of ${host} failed (${reason}); trust its CA with caFile, ` +
        "or turn off verification for this registry with insecureSkipVerify",
      { cause: err },
    );
  }
  if (/wrong version number|packet length too long|EPROTO/i.test(reason)) {
    return new UnavailableError(
      `${call.what}: TLS handshake with ${host} failed (${reason}); if the registry speaks plain HTTP, ` +
        "set plainHTTP",
      { cause: err },
    );
  }
  return new UnavailableError(`${call.what}: ${method} to ${host} failed (${reason})`, { cause: err });
}

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR") {
      // undici wraps the socket's own error; the innermost errno says more.
      const inner = (e.cause as { code?: unknown } | undefined)?.code;
      if (typeof inner === "string" && (RETRYABLE_CODES.has(inner) || TLS_VERIFY_CODES.has(inner)))
        return inner;
      return code;
    }
  }
  return undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class HttpClient {
  private readonly agent: Agent;
  private readonly userAgent: string;
  private readonly rateLimiter: RateLimiter | undefined;

  constructor(opts: HttpClientOptions) {
    this.userAgent = opts.userAgent;
    this.rateLimiter = opts.rateLimiter;
    this.agent = new Agent({
      connect: createConnector(opts),
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
    });
  }

  /**
   * Sends one request. Resolves with any HTTP status; rejects only for network failures (TransientError
   * or UnavailableError) and for the end of the operation (CanceledError, DeadlineExceededError).
   */
  async send(req: HttpRequest, call: CallContext): Promise<HttpResponse> {
    if (this.rateLimiter !== undefined) await this.rateLimiter.take(call);
    call.check();
    const headers: Record<string, string> = { "user-agent": this.userAgent, ...lowerKeys(req.headers) };
    const span = startHttpSpan(req.method, req.url, headers);
    try {
      const res = await request(req.url, {
        dispatcher: this.agent,
        method: req.method,
        headers,
        body: req.body ?? null,
        signal: call.signal,
      });
      span.response(res.statusCode);
      return {
        method: req.method,
        url: req.url,
        status: res.statusCode,
        headers: res.headers,
        body: res.body,
      };
    } catch (err) {
      const failure = call.done ? call.abortError() : networkError(err, req.method, req.url, call);
      span.fail(call.done ? "aborted" : (errorCode(err) ?? "network_error"), failure.message);
      throw failure;
    } finally {
      span.end();
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

function lowerKeys(headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}
