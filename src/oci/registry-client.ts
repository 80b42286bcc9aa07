/**
 * One registry exchange: authenticate up front, answer a 401 challenge at most a few times, follow
 * redirects of reads (dropping credentials when the origin changes), and turn retryable answers into
 * TransientError. `request` runs an exchange inside the retry layer; `exchange` alone is for steps of
 * a larger unit that is retried (or cannot be) as a whole.
 */
import { UnavailableError } from "../errors.ts";
import type { CallContext } from "./call-context.ts";
import { discard, type HttpClient, type HttpMethod, type HttpResponse, header } from "./http-client.ts";
import { type AuthUsed, actionsForMethod, type RegistryAuth } from "./registry-auth.ts";
import { errorFromResponse, readErrorBody, registryErrorInfo } from "./registry-error.ts";
import { isRetryableStatus, parseRetryAfter, type RetryOptions, TransientError, withRetry } from "./retry.ts";

export interface RegistryRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string> | undefined;
  body?: Uint8Array | undefined;
  /** Token scope; default the repository with the method's actions. "" = registry level (`/v2/`). */
  scope?: string | undefined;
}

export interface RegistryClientOptions {
  /** Registry origin, e.g. `https://ghcr.io`. */
  origin: URL;
  repository: string;
  http: HttpClient;
  auth: RegistryAuth;
  retry: RetryOptions;
  logger?: { debug?(msg: string, fields?: Record<string, unknown>): void } | undefined;
}

const MAX_REDIRECTS = 5;
const MAX_CHALLENGES = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export class RegistryClient {
  readonly origin: URL;
  readonly host: string;
  readonly repository: string;
  private readonly http: HttpClient;
  private readonly auth: RegistryAuth;
  private readonly retry: RetryOptions;
  private readonly logger: RegistryClientOptions["logger"];

  constructor(opts: RegistryClientOptions) {
    this.origin = opts.origin;
    this.host = opts.origin.host;
    this.repository = opts.repository;
    this.http = opts.http;
    this.auth = opts.auth;
    this.retry = opts.retry;
    this.logger = opts.logger;
  }

  /** `/v2/<repository>/<rest>` on the registry. */
  repoUrl(rest: string): URL {
    return new URL(`/v2/${this.repository}/${rest}`, this.origin);
  }

  defaultScope(method: string): string {
    return `repository:${this.repository}:${actionsForMethod(method)}`;
  }

  /** One exchange within the retry layer. */
  request(req: RegistryRequest, call: CallContext): Promise<HttpResponse> {
    return this.retrying(() => this.exchange(req, call), call);
  }

  /** Runs a unit of work (one or more exchanges) within the retry layer. */
  retrying<T>(unit: (attempt: number) => Promise<T>, call: CallContext): Promise<T> {
    return withRetry(unit, this.retry, call, {
      onRetry: ({ attempt, waitMs, error }) =>
        this.logger?.debug?.("retrying registry request", {
          what: call.what,
          attempt,
          waitMs: Math.round(waitMs),
          reason: error.reason,
          host: error.host,
        }),
    });
  }

  /**
   * One attempt, without retries: any final status comes back except 401s it could answer and
   * retryable ones, which throw TransientError.
   */
  async exchange(req: RegistryRequest, call: CallContext): Promise<HttpResponse> {
    const scope = req.scope ?? this.defaultScope(req.method);
    const follow = req.method === "GET" || req.method === "HEAD";
    let used: AuthUsed = await this.auth.authorize(scope, call);
    let url = req.url;
    // Upload sessions may live elsewhere (a Location on storage); credentials stay with the registry.
    let sameOrigin = url.origin === this.origin.origin;
    let redirects = 0;
    let challenges = 0;
    for (;;) {
      const headers: Record<string, string> = { ...req.headers };
      if (sameOrigin && used.kind !== "none") headers.authorization = used.value;
      const res = await this.http.send({ method: req.method, url, headers, body: req.body }, call);

      if (res.status === 401 && sameOrigin && challenges < MAX_CHALLENGES) {
        challenges++;
        used = await this.auth.challenged(res, scope, used, call);
        continue;
      }
      if (follow && REDIRECT_STATUSES.has(res.status)) {
        const location = header(res, "location");
        await discard(res);
        if (location === undefined) {
          throw new UnavailableError(`${call.what}: ${url.host} answered ${res.status} without a Location`);
        }
        if (++redirects > MAX_REDIRECTS) {
          throw new UnavailableError(`${call.what}: more than ${MAX_REDIRECTS} redirects from ${this.host}`);
        }
        url = new URL(location, url);
        // Credentials are for the registry only, never for storage it redirects to.
        if (url.origin !== this.origin.origin) sameOrigin = false;
        continue;
      }
      if (isRetryableStatus(res.status, req.method)) {
        const bodyText = await readErrorBody(res.body);
        const err = errorFromResponse(res.status, bodyText, {
          method: req.method,
          host: url.host,
          what: call.what,
        });
        const codes = registryErrorInfo(err)?.registryCodes ?? [];
        throw new TransientError({
          host: url.host,
          reason: `status ${res.status}${codes.length > 0 ? ` ${codes.join(",")}` : ""}`,
          message: err.message,
          retryAfterMs: parseRetryAfter(header(res, "retry-after")),
          cause: err.cause,
        });
      }
      return res;
    }
  }

  /** Reads the error body of an unexpected answer and throws the matching domain error. */
  async fail(res: HttpResponse, method: HttpMethod, call: CallContext): Promise<never> {
    let bodyText = "";
    if (method === "HEAD") await discard(res);
    else bodyText = await readErrorBody(res.body);
    throw errorFromResponse(res.status, bodyText, { method, host: this.host, what: call.what });
  }
}
