/**
 * Deleting through the GitHub Packages REST API, for ghcr.io, which answers every registry DELETE
 * with 405. A manifest is a "package version" whose name is its digest; the version list is paged
 * to its end (no page cap), and a delete that found nothing is reported as NotFoundError, never as
 * success.
 */
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  type TfstateError,
  UnauthenticatedError,
  UnavailableError,
} from "../errors.ts";
import type { CallContext } from "./call-context.ts";
import type { Credential } from "./credentials.ts";
import { isDigest } from "./digest.ts";
import { discard, type HttpClient, type HttpResponse, header, readResponseBody } from "./http-client.ts";
import { errorFromResponse, readErrorBody } from "./registry-error.ts";
import { isRetryableStatus, parseRetryAfter, type RetryOptions, TransientError, withRetry } from "./retry.ts";

export const DEFAULT_GITHUB_API_URL = "https://api.github.com";
const PER_PAGE = 100;
const MAX_PAGE_BYTES = 16 * 1024 * 1024;

export interface GitHubPackagesOptions {
  apiUrl: string;
  /** Registry host the credential belongs to ("ghcr.io"). */
  registryHost: string;
  /** Repository path in the registry: `<owner>/<package...>`. */
  repository: string;
  http: HttpClient;
  credential: (call: CallContext) => Promise<Credential | undefined>;
  retry: RetryOptions;
}

interface PackageVersion {
  id: number;
  name?: string;
  metadata?: { container?: { tags?: string[] } };
}

/** `owner/a/b` → owner `owner`, package `a/b` (the API wants it as one path segment, `a%2Fb`). */
export function splitPackagePath(repository: string): { owner: string; packageName: string } {
  const parts = repository.split("/");
  const owner = parts[0] ?? "";
  const packageName = parts.slice(1).join("/");
  if (owner === "" || packageName === "" || parts.some((p) => p === "")) {
    throw new InvalidArgumentError(
      `repository ${JSON.stringify(repository)} does not name <owner>/<package> as GitHub Packages needs`,
    );
  }
  return { owner, packageName };
}

export class GitHubPackages {
  private readonly apiBase: string;
  private readonly opts: GitHubPackagesOptions;
  private readonly owner: string;
  private readonly packageName: string;
  /** Whether the owner turned out to be an organisation or a user; saves a 404 on later deletes. */
  private ownerKind: "orgs" | "users" | undefined;

  constructor(opts: GitHubPackagesOptions) {
    this.opts = opts;
    this.apiBase = opts.apiUrl.replace(/\/+$/, "");
    const { owner, packageName } = splitPackagePath(opts.repository);
    this.owner = owner;
    this.packageName = packageName;
  }

  /** Deletes the package version of `digest` (or the one tagged `tagHint`). */
  async deleteManifest(digest: string, tagHint: string | undefined, call: CallContext): Promise<void> {
    const token = await this.token(call);
    const kinds: Array<"orgs" | "users"> =
      this.ownerKind !== undefined ? [this.ownerKind] : ["orgs", "users"];
    let packageFound = false;
    for (const kind of kinds) {
      const found = await this.findVersion(kind, digest, tagHint, token, call);
      if (found === "no-package") continue;
      packageFound = true;
      this.ownerKind = kind;
      if (found === undefined) break;
      await this.deleteVersion(kind, found.id, digest, token, call);
      return;
    }
    if (!packageFound) {
      throw new NotFoundError(
        `${call.what}: GitHub Packages has no container package ${this.packageName} owned by ${this.owner}`,
      );
    }
    throw new NotFoundError(
      `${call.what}: GitHub Packages has no version of ${this.owner}/${this.packageName} for ${digest}` +
        (tagHint ? ` or tag ${tagHint}` : ""),
    );
  }

  private packageUrl(kind: "orgs" | "users", suffix: string): URL {
    const owner = encodeURIComponent(this.owner);
    const pkg = encodeURIComponent(this.packageName);
    return new URL(`${this.apiBase}/${kind}/${owner}/packages/container/${pkg}${suffix}`);
  }

  private async token(call: CallContext): Promise<string> {
    const cred = await this.opts.credential(call);
    const token = cred?.accessToken || cred?.password;
    if (!token) {
      throw new UnauthenticatedError(
        `${call.what}: ${this.opts.registryHost} refuses registry deletes and deleting through the GitHub ` +
          `Packages API needs a token: no credentials are configured for ${this.opts.registryHost} ` +
          "(use a token with read:packages and delete:packages)",
      );
    }
    return token;
  }

  private async findVersion(
    kind: "orgs" | "users",
    digest: string,
    tagHint: string | undefined,
    token: string,
    call: CallContext,
  ): Promise<PackageVersion | "no-package" | undefined> {
    for (let page = 1; ; page++) {
      const url = this.packageUrl(kind, "/versions");
      url.searchParams.set("per_page", String(PER_PAGE));
      url.searchParams.set("page", String(page));
      const versions = await this.send("GET", url, token, call, async (res) => {
        if (res.status === 404 && page === 1) {
          await discard(res);
          return "no-package" as const;
        }
        if (res.status !== 200) throw await this.failure(res, "GET", "list package versions", call);
        return readVersions(res, call);
      });
      if (versions === "no-package") return versions;
      if (versions.length === 0) return undefined;
      const match =
        versions.find((v) => v.name === digest) ??
        // By tag only where the version does not name its digest: a version named after another
        // digest is other content (the tag may have moved), and deleting it would lose data.
        (tagHint !== undefined
          ? versions.find((v) => !isDigest(v.name ?? "") && v.metadata?.container?.tags?.includes(tagHint))
          : undefined);
      if (match !== undefined) return match;
    }
  }

  private async deleteVersion(
    kind: "orgs" | "users",
    id: number,
    digest: string,
    token: string,
    call: CallContext,
  ): Promise<void> {
    await this.send("DELETE", this.packageUrl(kind, `/versions/${id}`), token, call, async (res) => {
      if (res.status === 204) {
        await discard(res);
        return;
      }
      if (res.status === 404) {
        await discard(res);
        throw new NotFoundError(`${call.what}: GitHub Packages version ${id} (${digest}) is already gone`);
      }
      throw await this.failure(res, "DELETE", `delete package version ${id}`, call);
    });
  }

  /**
   * One API request and the handling of its answer, inside the retry layer (each request is its own
   * unit; they are all idempotent).
   */
  private send<T>(
    method: "GET" | "DELETE",
    url: URL,
    token: string,
    call: CallContext,
    handle: (res: HttpResponse) => Promise<T>,
  ): Promise<T> {
    return withRetry(
      async () => {
        const res = await this.opts.http.send(
          {
            method,
            url,
            headers: {
              accept: "application/vnd.github+json",
              "x-github-api-version": "2022-11-28",
              authorization: `Bearer ${token}`,
            },
          },
          call,
        );
        if (isRetryableStatus(res.status, method)) {
          const body = await readErrorBody(res.body);
          throw new TransientError({
            host: url.host,
            reason: `GitHub API status ${res.status}`,
            message: `${call.what}: GitHub API ${url.host} answered ${res.status}`,
            retryAfterMs: parseRetryAfter(header(res, "retry-after")),
            cause: errorFromResponse(res.status, body, { method, host: url.host, what: call.what }).cause,
          });
        }
        return handle(res);
      },
      this.opts.retry,
      call,
    );
  }

  private async failure(
    res: HttpResponse,
    method: string,
    op: string,
    call: CallContext,
  ): Promise<TfstateError> {
    const host = new URL(this.apiBase).host;
    const body = await readErrorBody(res.body);
    const cause = errorFromResponse(res.status, body, { method, host, what: call.what }).cause;
    const apiMessage = githubMessage(body);
    const detail = apiMessage ? `: ${apiMessage}` : "";
    if (res.status === 401) {
      return new UnauthenticatedError(
        `${call.what}: GitHub API ${host} rejected the token for ${this.opts.registryHost} (${op})${detail}`,
        { cause },
      );
    }
    if (res.status === 403) {
      return new PermissionDeniedError(
        `${call.what}: GitHub API ${host} refused to ${op}; the token needs read:packages and delete:packages${detail}`,
        { cause },
      );
    }
    return new UnavailableError(
      `${call.what}: GitHub API ${host} could not ${op} (status ${res.status})${detail}`,
      {
        cause,
      },
    );
  }
}

function githubMessage(body: string): string {
  try {
    const message = (JSON.parse(body) as { message?: unknown }).message;
    return typeof message === "string" ? message.slice(0, 200) : "";
  } catch {
    return "";
  }
}

async function readVersions(res: HttpResponse, call: CallContext): Promise<PackageVersion[]> {
  const body = await readResponseBody(
    res,
    MAX_PAGE_BYTES,
    call,
    () => new UnavailableError(`${call.what}: a GitHub API page was larger than ${MAX_PAGE_BYTES} bytes`),
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new UnavailableError(`${call.what}: the GitHub API answered with something that is not JSON`, {
      cause: err,
    });
  }
  if (!Array.isArray(parsed)) {
    throw new UnavailableError(`${call.what}: the GitHub API answered a version list that is not an array`);
  }
  return parsed.filter(
    (v): v is PackageVersion =>
      v !== null && typeof v === "object" && typeof (v as PackageVersion).id === "number",
  );
}
