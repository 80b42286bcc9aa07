/**
 * Authentication against one registry host: learns the scheme from the first challenge, then
 * authenticates every later request up front (Basic pre-emptively; Bearer from a per-scope token
 * cache, fetching a token for a known realm before the request) so the steady state costs no 401
 * round trips and no token requests.
 */
import {
  InvalidArgumentError,
  isTfstateError,
  PermissionDeniedError,
  type TfstateError,
  UnauthenticatedError,
  UnavailableError,
} from "../errors.ts";
import { type Challenge, challengeScopes, parseChallenges } from "./auth-challenge.ts";
import type { CallContext } from "./call-context.ts";
import { type Credential, type CredentialFunc, hasSecret } from "./credentials.ts";
import { type HttpClient, type HttpResponse, header, headerValues, readResponseBody } from "./http-client.ts";
import { errorFromResponse, readErrorBody } from "./registry-error.ts";
import { isRetryableStatus, parseRetryAfter, TransientError } from "./retry.ts";
import { type FetchedToken, TokenCache } from "./token-cache.ts";

/** How the Authorization header of a request was obtained; decides what a 401 on it means. */
export type AuthUsed =
  | { kind: "none" }
  | { kind: "basic"; value: string }
  | { kind: "access-token"; value: string }
  | { kind: "bearer-cached"; value: string; token: string }
  | { kind: "bearer-fresh"; value: string; token: string; scopes: readonly string[] };

type Scheme =
  | { kind: "unknown" }
  | { kind: "basic" }
  | { kind: "bearer"; realm: URL; service: string | undefined };

const CREDENTIAL_CACHE_MS = 5 * 60_000;
const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
const OAUTH_CLIENT_ID = "oci-tfstate";

export interface RegistryAuthOptions {
  /** Registry host[:port]: the host credentials are looked up for. */
  host: string;
  credentials: CredentialFunc;
  http: HttpClient;
}

/** Actions a request needs, as Distribution's access controller derives them from the method. */
export function actionsForMethod(method: string): string {
  switch (method) {
    case "GET":
    case "HEAD":
      return "pull";
    case "DELETE":
      return "delete";
    default:
      return "pull,push";
  }
}

/** Merges scopes (`repository:a/b:pull` + `repository:a/b:push` → `repository:a/b:pull,push`). */
export function mergeScopes(scopes: readonly string[]): string[] {
  const byResource = new Map<string, Set<string>>();
  const order: string[] = [];
  for (const scope of scopes) {
    const last = scope.lastIndexOf(":");
    const first = scope.indexOf(":");
    if (first < 0 || last === first) {
      // Not type:name:actions; pass it through untouched.
      if (!byResource.has(scope)) {
        byResource.set(scope, new Set());
        order.push(scope);
      }
      continue;
    }
    const resource = scope.slice(0, last);
    let actions = byResource.get(resource);
    if (actions === undefined) {
      actions = new Set();
      byResource.set(resource, actions);
      order.push(resource);
    }
    for (const a of scope.slice(last + 1).split(",")) if (a !== "") actions.add(a);
  }
  return order.map((resource) => {
    const actions = byResource.get(resource) ?? new Set();
    return actions.size === 0 ? resource : `${resource}:${[...actions].sort().join(",")}`;
  });
}

export class RegistryAuth {
  private readonly host: string;
  private readonly credentials: CredentialFunc;
  private readonly http: HttpClient;
  private readonly tokens = new TokenCache();
  private scheme: Scheme = { kind: "unknown" };
  private credentialCache: { value: Credential | undefined; until: number } | undefined;
  /**
   * Scopes to ask the token service for, per scope key, where a challenge asked for more than the
   * key itself (so a renewal after expiry asks for the same and needs no 401 round trip either).
   */
  private readonly learnedScopes = new Map<string, string[]>();

  constructor(opts: RegistryAuthOptions) {
    this.host = opts.host;
    this.credentials = opts.credentials;
    this.http = opts.http;
  }

  /** The host's credential (cached briefly, so a helper is not run per request). */
  async credential(call: CallContext): Promise<Credential | undefined> {
    const cached = this.credentialCache;
    if (cached !== undefined && cached.until > Date.now()) return cached.value;
    let value: Credential | undefined;
    try {
      value = await this.credentials(this.host, call.signal);
    } catch (err) {
      if (call.done) throw call.abortError();
      if (isTfstateError(err)) throw err;
      throw new InvalidArgumentError(`looking up credentials for ${this.host} failed`, { cause: err });
    }
    this.credentialCache = { value, until: Date.now() + CREDENTIAL_CACHE_MS };
    return value;
  }

  private forgetCredential(): void {
    this.credentialCache = undefined;
  }

  /** The Authorization header to send with a request needing `scope`, before any challenge. */
  async authorize(scope: string, call: CallContext): Promise<AuthUsed> {
    const scheme = this.scheme;
    if (scheme.kind === "unknown") return { kind: "none" };
    const cred = await this.credential(call);
    if (scheme.kind === "basic") return basicAuth(cred) ?? { kind: "none" };
    if (cred?.accessToken) return { kind: "access-token", value: `Bearer ${cred.accessToken}` };
    const cached = this.tokens.get(scope);
    if (cached !== undefined) return { kind: "bearer-cached", value: `Bearer ${cached}`, token: cached };
    const scopes = this.learnedScopes.get(scope) ?? [scope];
    const token = await this.tokens.fetchFresh(
      scope,
      () => this.fetchToken(scheme, scopes, cred, call),
      call,
    );
    return { kind: "bearer-fresh", value: `Bearer ${token}`, token, scopes };
  }

  /**
   * Handles a 401 from the registry to a request sent with `used`. Returns the header for one more
   * try, or throws UnauthenticatedError / PermissionDeniedError when trying again cannot help.
   * Drains the response body.
   */
  async challenged(res: HttpResponse, scope: string, used: AuthUsed, call: CallContext): Promise<AuthUsed> {
    const bodyText = await readErrorBody(res.body);
    const challenges = parseChallenges(headerValues(res, "www-authenticate"));
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params.realm);
    const basic = challenges.find((c) => c.scheme === "basic");
    const refusal = errorFromResponse(401, bodyText, { method: "", host: this.host, what: call.what });

    if (bearer !== undefined) {
      const scheme = this.learnBearer(bearer, call);
      const asked = challengeScopes(bearer);
      const wanted = mergeScopes([...(this.learnedScopes.get(scope) ?? (scope ? [scope] : [])), ...asked]);
      if (used.kind === "access-token") throw this.refused(bearer, wanted, used, refusal, call);
      if (used.kind === "bearer-fresh") {
        this.tokens.invalidate(scope, used.token);
        // A fresh token refused for a scope it was not asked for: ask once more, for that too.
        const known = new Set(mergeScopes(used.scopes));
        if (wanted.every((s) => known.has(s))) throw this.refused(bearer, wanted, used, refusal, call);
      }
      if (used.kind === "bearer-cached") this.tokens.invalidate(scope, used.token);
      if (wanted.length !== 1 || wanted[0] !== scope) this.learnedScopes.set(scope, wanted);
      const cred = await this.credential(call);
      if (cred?.accessToken) return { kind: "access-token", value: `Bearer ${cred.accessToken}` };
      const token = await this.tokens.fetchFresh(
        scope,
        () => this.fetchToken(scheme, wanted, cred, call),
        call,
      );
      return { kind: "bearer-fresh", value: `Bearer ${token}`, token, scopes: wanted };
    }
    if (basic !== undefined) {
      this.scheme = { kind: "basic" };
      if (used.kind === "basic") {
        this.forgetCredential();
        throw new UnauthenticatedError(`${call.what}: registry ${this.host} rejected the credentials`, {
          cause: refusal.cause,
        });
      }
      const header = basicAuth(await this.credential(call));
      if (header === undefined) {
        throw new UnauthenticatedError(
          `${call.what}: registry ${this.host} requires authentication and no credentials are configured for it`,
          { cause: refusal.cause },
        );
      }
      return header;
    }
    throw new UnauthenticatedError(
      `${call.what}: registry ${this.host} answered 401 without a challenge this client supports`,
      { cause: refusal.cause },
    );
  }

  private learnBearer(challenge: Challenge, call: CallContext): Extract<Scheme, { kind: "bearer" }> {
    const realmText = challenge.params.realm ?? "";
    let realm: URL;
    try {
      realm = new URL(realmText);
    } catch {
      throw new UnavailableError(`${call.what}: registry ${this.host} names an invalid token realm`);
    }
    if (realm.protocol !== "https:" && realm.protocol !== "http:") {
      throw new UnavailableError(
        `${call.what}: registry ${this.host} names a token realm that is not HTTP(S)`,
      );
    }
    const current = this.scheme;
    const service = challenge.params.service;
    if (current.kind === "bearer" && current.realm.href === realm.href && current.service === service)
      return current;
    // A new realm or service invalidates every token obtained from the old one.
    this.tokens.clear();
    this.learnedScopes.clear();
    const next = { kind: "bearer" as const, realm, service };
    this.scheme = next;
    return next;
  }

  private refused(
    challenge: Challenge,
    wanted: string[],
    used: AuthUsed,
    refusal: TfstateError,
    call: CallContext,
  ): TfstateError {
    const scopes = challengeScopes(challenge);
    const named = (scopes.length > 0 ? scopes : wanted).join(" ");
    if (challenge.params.error === "insufficient_scope") {
      return new PermissionDeniedError(
        `${call.what}: registry ${this.host} refused access: the credentials do not grant ${named}`,
        { cause: refusal.cause },
      );
    }
    if (used.kind === "access-token") {
      this.forgetCredential();
      return new UnauthenticatedError(
        `${call.what}: registry ${this.host} rejected the configured access token`,
        {
          cause: refusal.cause,
        },
      );
    }
    return new UnauthenticatedError(
      `${call.what}: registry ${this.host} rejected a token just issued for ${named}` +
        (challenge.params.error ? ` (${challenge.params.error})` : ""),
      { cause: refusal.cause },
    );
  }

  private async fetchToken(
    scheme: Extract<Scheme, { kind: "bearer" }>,
    scopes: readonly string[],
    cred: Credential | undefined,
    call: CallContext,
  ): Promise<FetchedToken> {
    const realm = new URL(scheme.realm.href);
    const usable = scopes.filter((s) => s !== "");
    let res: HttpResponse;
    if (cred?.refreshToken) {
      // OAuth2 refresh-token grant (Docker's identity token).
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: cred.refreshToken });
      if (scheme.service !== undefined) form.set("service", scheme.service);
      form.set("client_id", OAUTH_CLIENT_ID);
      if (usable.length > 0) form.set("scope", usable.join(" "));
      res = await this.http.send(
        {
          method: "POST",
          url: realm,
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: form.toString(),
        },
        call,
      );
    } else {
      if (scheme.service !== undefined) realm.searchParams.set("service", scheme.service);
      for (const s of usable) realm.searchParams.append("scope", s);
      const basic = basicAuth(cred);
      if (cred?.username) realm.searchParams.set("account", cred.username);
      const headers: Record<string, string> = {};
      if (basic !== undefined) headers.authorization = basic.value;
      res = await this.http.send({ method: "GET", url: realm, headers }, call);
    }
    return this.readTokenResponse(res, realm, hasSecret(cred), call);
  }

  private async readTokenResponse(
    res: HttpResponse,
    realm: URL,
    authenticated: boolean,
    call: CallContext,
  ): Promise<FetchedToken> {
    const service = realm.host;
    if (res.status !== 200) {
      const bodyText = await readErrorBody(res.body);
      const cause = errorFromResponse(res.status, bodyText, {
        method: "GET",
        host: service,
        what: call.what,
      }).cause;
      if (isRetryableStatus(res.status, "GET")) {
        throw new TransientError({
          host: service,
          reason: `token service status ${res.status}`,
          message: `${call.what}: token service ${service} answered ${res.status}`,
          retryAfterMs: parseRetryAfter(header(res, "retry-after")),
          cause,
        });
      }
      if (res.status === 401) {
        this.forgetCredential();
        throw new UnauthenticatedError(
          authenticated
            ? `${call.what}: token service ${service} rejected the credentials for ${this.host}`
            : `${call.what}: token service ${service} refused anonymous access to ${this.host}; configure credentials`,
          { cause },
        );
      }
      if (res.status === 403) {
        throw new PermissionDeniedError(
          `${call.what}: token service ${service} denied the requested access`,
          {
            cause,
          },
        );
      }
      throw new UnavailableError(`${call.what}: token service ${service} answered ${res.status}`, { cause });
    }
    const body = await readResponseBody(
      res,
      MAX_TOKEN_RESPONSE_BYTES,
      call,
      () =>
        new UnavailableError(
          `${call.what}: token service ${service} sent more than ${MAX_TOKEN_RESPONSE_BYTES} bytes`,
        ),
    );
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString("utf8")) as typeof parsed;
    } catch (err) {
      throw new UnavailableError(`${call.what}: token service ${service} sent an answer that is not JSON`, {
        cause: err,
      });
    }
    const token =
      typeof parsed.token === "string" && parsed.token !== ""
        ? parsed.token
        : typeof parsed.access_token === "string"
          ? parsed.access_token
          : "";
    if (token === "") {
      throw new UnavailableError(`${call.what}: token service ${service} answered without a token`);
    }
    const expires = typeof parsed.expires_in === "number" ? parsed.expires_in : undefined;
    return { token, expiresInSec: expires };
  }
}

function basicAuth(cred: Credential | undefined): Extract<AuthUsed, { kind: "basic" }> | undefined {
  if (!cred?.username || cred.password === undefined) return undefined;
  const value = `Basic ${Buffer.from(`${cred.username}:${cred.password}`, "utf8").toString("base64")}`;
  return { kind: "basic", value };
}
